//! Golden vectors (format-spec/vectors.json): KDF, key hierarchy, key wrap,
//! blob ids, a sealed blob, chunker table and cut points. A change to any
//! of them is a format change: existing repositories would not open or
//! would stop deduplicating ("or existing repos will bloat").

use kvault::repo::chunker::{Chunker, ChunkerParams, gear_table};
use kvault::repo::crypto::{self, CONTEXT_BLOB_ID, CONTEXT_CHUNKER, CONTEXT_ENCRYPTION, Keys};
use kvault::repo::keyfile::{KdfParams, derive_wrapping_key};
use kvault::repo::pack::{BlobEntry, BlobType, Compression, blob_aad, open_blob};
use serde_json::{Value, json};

const VECTORS: &str = include_str!("../../format-spec/vectors.json");

fn master() -> [u8; 32] {
    std::array::from_fn(|i| i as u8)
}

fn chunk_input() -> Vec<u8> {
    let mut v = vec![0u8; 1 << 20];
    blake3::Hasher::new()
        .update(b"kvault chunker test vector")
        .finalize_xof()
        .fill(&mut v);
    v
}

/// A `__consumer_offsets` offset commit as Kafka writes it (key type 1,
/// value version 3), decoded and stored as a commit log line (§14 "Group
/// commit history").
fn consumer_offsets_vector() -> Value {
    use kvault::image::commits::{Commit, decode, encode};
    let s16 = |s: &str| [&(s.len() as i16).to_be_bytes()[..], s.as_bytes()].concat();
    let key = [
        &1i16.to_be_bytes()[..],
        &s16("orders-app"),
        &s16("orders"),
        &3i32.to_be_bytes(),
    ]
    .concat();
    let value = [
        &3i16.to_be_bytes()[..],
        &1234i64.to_be_bytes(),
        &7i32.to_be_bytes(),
        &s16("m"),
        &1_764_300_000_000i64.to_be_bytes(),
    ]
    .concat();
    let commit = Commit::from_record(decode(&key, Some(&value)).unwrap(), 0).expect("a commit");
    let line = encode(&[commit]).unwrap();
    json!({"note": "key type 1 (orders-app, orders, 3), value version 3 (offset 1234, leader epoch 7, metadata m, commit time 1764300000000)",
           "key": hex::encode(&key), "value": hex::encode(&value),
           "commit_line": String::from_utf8(line).unwrap()})
}

/// Computes every vector from the code.
fn compute() -> Value {
    let m = master();
    let kdf = KdfParams {
        m_cost_kib: 64,
        t_cost: 1,
        p_cost: 1,
    };
    let salt = [0x5au8; 16];
    let wk = derive_wrapping_key(b"correct horse battery staple", &salt, &kdf).unwrap();
    let enc = blake3::derive_key(CONTEXT_ENCRYPTION, &m);
    let idk = blake3::derive_key(CONTEXT_BLOB_ID, &m);
    let chk = blake3::derive_key(CONTEXT_CHUNKER, &m);
    let keys = Keys::from_master(m);
    let plain = b"hello kvault";
    let id = keys.blob_id(plain);
    let nonce = [0x24u8; 24];
    let aad = blob_aad(BlobType::Data, Compression::None, plain.len() as u32, &id);
    let sealed = crypto::seal_with_nonce(&enc, &nonce, &aad, plain).unwrap();
    let table = gear_table(&chk);
    let params = ChunkerParams {
        min_size: 16 * 1024,
        avg_size: 64 * 1024,
        max_size: 256 * 1024,
    };
    let cuts = Chunker::new(&chk, params).unwrap().cuts(&chunk_input());
    let mut rec_enc = kvault::image::record::Encoder::default();
    let mut records = Vec::new();
    use kvault::image::record::{RecordRef, TimestampType};
    for r in [
        RecordRef {
            timestamp: 1_764_300_000_000,
            timestamp_type: TimestampType::CreateTime,
            key: Some(b"k"),
            value: Some(b"v"),
            headers: vec![("h", Some(b"1")), ("n", None)],
        },
        RecordRef {
            timestamp: 1_764_300_000_005,
            timestamp_type: TimestampType::LogAppendTime,
            key: None,
            value: Some(b""),
            headers: vec![],
        },
        RecordRef {
            timestamp: -1,
            timestamp_type: TimestampType::None,
            key: Some(b""),
            value: None,
            headers: vec![],
        },
    ] {
        rec_enc.encode(&r, &mut records);
    }
    json!({
        "kafka_records": {"note": "format-spec §13: (ts 1764300000000 CreateTime, key k, value v, headers h=1, n=null), (ts +5 LogAppendTime, null key, empty value), (no timestamp, empty key, null value)",
                          "encoded": hex::encode(&records)},
        "consumer_offsets": consumer_offsets_vector(),
        "master_key": hex::encode(m),
        "argon2id": {"password": "correct horse battery staple", "salt": hex::encode(salt),
                     "m_cost_kib": 64, "t_cost": 1, "p_cost": 1, "output": hex::encode(wk)},
        "encryption_key": hex::encode(enc),
        "blob_id_key": hex::encode(idk),
        "chunker_key": hex::encode(chk),
        "blob_id_of_hello_kvault": id.to_hex(),
        "sealed_blob": {"plaintext": "hello kvault", "type": 0, "compression": 0, "nonce": hex::encode(nonce),
                        "aad": hex::encode(&aad), "sealed": hex::encode(&sealed)},
        "key_wrap": {"note": "seal(argon2id output, aad, master key) with nonce 24 bytes of 0x11",
                     "aad": "kvault-key-v1|argon2id|19|64|1|1|5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a",
                     "wrapped": hex::encode(crypto::seal_with_nonce(&wk, &[0x11; 24],
                        b"kvault-key-v1|argon2id|19|64|1|1|5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a", &m).unwrap())},
        "gear_table_first_4": table[..4].iter().map(|g| format!("{g:016x}")).collect::<Vec<_>>(),
        "segment_meta": {"note": "format-spec §14: a segment's node meta with two committed transactions' runs (txns), the second dated by its coordinator's completion",
                         "json": segment_meta_json()},
        "segment_meta_erased": {"note": "format-spec §14 \"Erased records\": a segment of offsets 100..110 whose records at 102 and 105..107 were erased; its chunks became one of 7 records keeping the first chunk's ts_base",
                                "json": segment_meta_erased_json()},
        "report_signature": {"note": "format-spec §3: BLAKE3-256 keyed(report key of master_key, the bytes \"{\\\"equal\\\":true}\\n\")",
                             "signature": Keys::from_master(m).report_signature(b"{\"equal\":true}\n").to_hex()},
        "erased_key_hash": {"note": "format-spec §3: BLAKE3-256 keyed(erased-key key of master_key, \"customer-42\")",
                            "hash": Keys::from_master(m).erased_key_hash(b"customer-42").to_hex()},
        "key_filter": {"note": "format-spec §14 \"Key filters\": the filter blob of a segment of two chunks under the key-filter key of master_key, the first chunk holding keys \"a\" and \"b\" (and \"a\" again), the second only null keys",
                       "hex": key_filter_hex(&m)},
        "segment_meta_shared_filter": {"note": "format-spec §14 \"Key filters\": a segment of two chunks whose key filters are chunk filters 3 and 4 of a blob shared with its snapshot's other small segments",
                                       "json": segment_meta_shared_filter_json()},
        "config_object_lock": {"note": "format-spec §6 and §18: a config with the object-lock feature, compliance for 30 days and the default slack (a quarter)",
                               "json": config_object_lock_json()},
        "cluster_state": {"note": "format-spec §14 \"Cluster state\": a prefixed allow and a cluster deny, one SCRAM user with both mechanisms, a user+client quota and the default client quota, a cluster default and a hidden (sensitive) per-broker config",
                          "json": cluster_state_json()},
        "chunker": {"input": "first 1 MiB of BLAKE3 XOF of \"kvault chunker test vector\"",
                    "min_size": 16384, "avg_size": 65536, "max_size": 262144, "cut_lengths": cuts},
    })
}

/// A segment's node meta: offsets 10..20 with gaps at 13 (the commit
/// marker of the transaction of producer 4001, epoch 0, whose records are
/// 10..=12, written at 1,700, its coordinator's completion not read) and
/// at 17 (the marker of producer 4002's transaction, 14..=16, written at
/// 1,800; the transaction completed on all its partitions at 1,802).
fn segment_meta_json() -> String {
    use kvault::image::manifest::SegmentMeta;
    use kvault::image::record::OffsetRuns;
    use kvault::image::types::{ChunkMeta, TxnSpan};
    let m = SegmentMeta {
        start: 10,
        end: 20,
        records: 8,
        runs: OffsetRuns(vec![[10, 3], [14, 3], [18, 2]]),
        chunks: vec![ChunkMeta([10, 8, 1_000, 1_900, 999])],
        txns: Some(vec![TxnSpan::new([10, 12, 13, 1_700, 4_001, 0]), {
            let mut s = TxnSpan::new([14, 16, 17, 1_800, 4_002, 3]);
            s.set_commit_ts(1_802);
            s
        }]),
        erased: vec![],
        filter_at: None,
    };
    let json = serde_json::to_string(&m).unwrap();
    assert_eq!(serde_json::from_str::<SegmentMeta>(&json).unwrap(), m);
    json
}

/// A segment's key-filter blob (format-spec §14 "Key filters").
fn key_filter_hex(m: &[u8; 32]) -> String {
    use kvault::image::keyfilter::{ChunkFilter, KeyHasher, SegmentFilter};
    let h = KeyHasher::new(Keys::from_master(*m).key_filter_key());
    let f = SegmentFilter {
        fingerprint: h.fingerprint(),
        chunks: vec![
            ChunkFilter::build(&[h.hash(b"a"), h.hash(b"b"), h.hash(b"a")]),
            ChunkFilter::build(&[]),
        ],
    };
    let b = f.encode();
    let back = SegmentFilter::decode(&b, "golden").unwrap();
    assert!(back.chunks[0].may_hold(h.hash(b"a")) && back.chunks[0].may_hold(h.hash(b"b")));
    assert!(!back.chunks[1].may_hold(h.hash(b"a")));
    hex::encode(b)
}

/// A segment's node meta after an erasure (format-spec §14 "Erased records").
fn segment_meta_erased_json() -> String {
    use kvault::image::manifest::SegmentMeta;
    use kvault::image::record::OffsetRuns;
    use kvault::image::types::ChunkMeta;
    let m = SegmentMeta {
        start: 100,
        end: 110,
        records: 7,
        runs: OffsetRuns(vec![[100, 2], [103, 2], [107, 3]]),
        chunks: vec![ChunkMeta([100, 7, 5_000, 5_900, 4_999])],
        txns: None,
        erased: vec![[102, 103], [105, 107]],
        filter_at: None,
    };
    let json = serde_json::to_string(&m).unwrap();
    assert_eq!(serde_json::from_str::<SegmentMeta>(&json).unwrap(), m);
    json
}

/// A small segment's node meta whose key filters are in a blob shared
/// with its snapshot's other small segments, from the blob's fourth chunk
/// filter on (format-spec §14 "Key filters").
fn segment_meta_shared_filter_json() -> String {
    use kvault::image::manifest::SegmentMeta;
    use kvault::image::record::OffsetRuns;
    use kvault::image::types::ChunkMeta;
    let m = SegmentMeta {
        start: 40,
        end: 46,
        records: 6,
        runs: OffsetRuns(vec![[40, 6]]),
        chunks: vec![
            ChunkMeta([40, 4, 7_000, 7_300, 6_999]),
            ChunkMeta([44, 2, 7_400, 7_500, 7_399]),
        ],
        txns: None,
        erased: vec![],
        filter_at: Some(3),
    };
    let json = serde_json::to_string(&m).unwrap();
    assert_eq!(serde_json::from_str::<SegmentMeta>(&json).unwrap(), m);
    json
}

/// A cluster state blob (format-spec §14 "Cluster state").
fn cluster_state_json() -> String {
    use std::collections::BTreeMap;

    use kvault::image::cluster::{
        AclBinding, BrokerConfigs, ClusterState, ConfigValue, QuotaEntry, ScramCredential, ScramUser, decode,
        encode,
    };
    let s = ClusterState {
        cluster_id: "q1Sh-9_ISia_zwGINzRvyQ".into(),
        brokers: vec![1, 2],
        acls: vec![
            AclBinding {
                resource_type: 2,
                name: "orders.".into(),
                pattern_type: 4,
                principal: "User:alice".into(),
                host: "*".into(),
                operation: 3,
                permission: 3,
            },
            AclBinding {
                resource_type: 4,
                name: "kafka-cluster".into(),
                pattern_type: 3,
                principal: "User:mallory".into(),
                host: "10.0.0.9".into(),
                operation: 2,
                permission: 2,
            },
        ],
        scram_users: vec![ScramUser {
            name: "alice".into(),
            credentials: vec![
                ScramCredential {
                    mechanism: 1,
                    iterations: 4096,
                },
                ScramCredential {
                    mechanism: 2,
                    iterations: 8192,
                },
            ],
        }],
        quotas: vec![
            QuotaEntry {
                entity: vec![("client-id".into(), None)],
                values: BTreeMap::from([("consumer_byte_rate".into(), 2048.0)]),
            },
            QuotaEntry {
                entity: vec![
                    ("client-id".into(), Some("app".into())),
                    ("user".into(), Some("alice".into())),
                ],
                values: BTreeMap::from([("request_percentage".into(), 50.0)]),
            },
        ],
        broker_configs: vec![
            BrokerConfigs {
                broker: None,
                configs: BTreeMap::from([(
                    "log.retention.ms".into(),
                    ConfigValue {
                        value: Some("604800000".into()),
                        sensitive: false,
                    },
                )]),
            },
            BrokerConfigs {
                broker: Some(2),
                configs: BTreeMap::from([(
                    "listener.name.internal.ssl.key.password".into(),
                    ConfigValue {
                        value: None,
                        sensitive: true,
                    },
                )]),
            },
        ],
        missing: Vec::new(),
    };
    let json = String::from_utf8(encode(&s).unwrap()).unwrap();
    assert_eq!(decode(json.as_bytes()).unwrap(), s);
    json
}

/// A locked repository's config (§6, §18), as `init --object-lock 30d`
/// writes it and as every reader must parse it.
fn config_object_lock_json() -> String {
    use kvault::repo::config::{Config, DEFAULT_COMPRESSION_LEVEL, DEFAULT_PACK_SIZE, OBJECT_LOCK_FEATURE};
    let c = Config {
        version: 1,
        id: "ab".repeat(32).parse().unwrap(),
        created: "2026-12-07T00:00:00Z".into(),
        chunker: ChunkerParams::default(),
        pack_size: DEFAULT_PACK_SIZE,
        compression_level: DEFAULT_COMPRESSION_LEVEL,
        features: vec![OBJECT_LOCK_FEATURE.into()],
        object_lock: Some(kvault::LockPolicy::new(
            kvault::LockMode::Compliance,
            std::time::Duration::from_secs(30 * 86_400),
        )),
    };
    let json = serde_json::to_string(&c).unwrap();
    assert_eq!(Config::decode(json.as_bytes()).unwrap(), c, "it reads back");
    json
}

#[test]
fn golden_vectors_hold() {
    let want: Value = serde_json::from_str(VECTORS).expect("format-spec/vectors.json parses");
    let got = compute();
    for (k, v) in got.as_object().unwrap() {
        assert_eq!(
            want.get(k),
            Some(v),
            "vector {k} changed: this is a format change"
        );
    }
    // The sealed vector opens through the repository's own code path.
    let keys = Keys::from_master(master());
    let sealed = hex::decode(want["sealed_blob"]["sealed"].as_str().unwrap()).unwrap();
    let e = BlobEntry {
        blob_type: BlobType::Data,
        compression: Compression::None,
        stored_len: sealed.len() as u32,
        raw_len: 12,
        id: keys.blob_id(b"hello kvault"),
    };
    assert_eq!(open_blob(&keys, &e, &sealed, "vector").unwrap(), b"hello kvault");
}

/// `cargo test -- --ignored print_golden_vectors --nocapture` prints the
/// vectors, for a deliberate format change.
#[test]
#[ignore]
fn print_golden_vectors() {
    println!("{}", serde_json::to_string_pretty(&compute()).unwrap());
}
