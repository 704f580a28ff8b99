//! `verify`, `verify-report` and `drill` on real brokers (the issue on
//! proving restores): a restore verified equal in translate and exact
//! modes with its group positions; a target tampered by an independent
//! producer (one record changed, the last one missing, one extra) named by
//! partition, offset and kind; the signed report refused once edited; and a
//! drill that leaves no topic and no group behind.

use serde_json::Value;

use crate::cli::{json_line as line, kvault_args as kvault, ok_args as ok};
use crate::kafka::*;
use crate::kafka_restore::{read_partition, target};

/// The partition entry of a verify report for target `t`.
fn partition<'a>(v: &'a Value, t: &str) -> &'a Value {
    v["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["target"] == t)
        .unwrap_or_else(|| panic!("no {t} in {v}"))
}

/// Topics of a cluster.
fn topics(brokers: &str) -> Vec<String> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let c: BaseConsumer = config(brokers).create().unwrap();
    let md = c
        .fetch_metadata(None, std::time::Duration::from_secs(10))
        .unwrap();
    md.topics().iter().map(|t| t.name().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_names_every_difference_and_a_drill_leaves_nothing_behind() {
    let (b, tgt) = (source(), target());
    let topic = unique("ver");
    create_topic(&b, &topic, 3, &[("retention.ms", "-1")]).await;
    let records: Vec<(i32, kvault::image::record::Record)> = (0..900)
        .map(|i| {
            let r = rec(
                now_ms() - 10_000 + i,
                Some(format!("k{i}").as_bytes()),
                Some(format!("value {i}").as_bytes()),
                &[("h", Some(b"1")), ("n", None)],
            );
            ((i % 3) as i32, r)
        })
        .collect();
    produce(&b, &topic, &records);
    let group = unique("verg");
    commit_group(&b, &group, &[(&topic, 0, 120, "m"), (&topic, 1, 300, "")]);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    crate::cli::init(&repo);
    ok(
        &repo,
        &["snapshot", "-b", &b, "--topic", &topic, "--group", &group],
    );

    // A drill restores, verifies and deletes what it made: the topic and
    // the group (absent from the target before).
    let out = ok(&repo, &["drill", "-b", &tgt, "--prefix", "d-", "--json"]);
    let d = line(&out, "drill");
    assert_eq!(d["verify"]["equal"], true, "{d}");
    assert_eq!(d["created_groups"], serde_json::json!([group]));
    assert!(d["verify"]["rto_ms"].as_u64().is_some());
    assert!(
        !topics(&tgt).contains(&format!("d-{topic}")),
        "the drill's topic is gone"
    );
    let c: rdkafka::consumer::BaseConsumer = config(&tgt).create().unwrap();
    use rdkafka::consumer::Consumer;
    let groups = c
        .fetch_group_list(None, std::time::Duration::from_secs(10))
        .unwrap();
    let left: Vec<&str> = groups
        .groups()
        .iter()
        .map(|g| g.name())
        .filter(|n| n.contains(&group) || n.starts_with("kvault-restore"))
        .collect();
    assert!(
        !left.iter().any(|n| *n == group),
        "the drill's group is gone: {left:?}"
    );

    // A restore verified equal, with its group positions, and its signed report.
    ok(&repo, &["restore", "-b", &tgt, "--prefix", "a-"]);
    let report = dir.path().join("report.json");
    let out = ok(
        &repo,
        &[
            "verify",
            "-b",
            &tgt,
            "--prefix",
            "a-",
            "--json",
            "--report",
            report.to_str().unwrap(),
        ],
    );
    let v = line(&out, "verify");
    assert_eq!(v["equal"], true, "{v}");
    assert_eq!(v["records"], 900);
    assert_eq!(v["groups"].as_array().unwrap().len(), 2, "{v}");
    assert!(v["groups"].as_array().unwrap().iter().all(|g| g["equal"] == true));
    assert_eq!(
        v["topics"][0]["equal"], true,
        "partitions and configs as the snapshot's: {v}"
    );
    assert!(!v["cluster_id"].as_str().unwrap().is_empty());
    ok(&repo, &["verify-report", report.to_str().unwrap()]);
    let text = std::fs::read_to_string(&report).unwrap();
    std::fs::write(&report, text.replacen("\"records\": 900", "\"records\": 901", 1)).unwrap();
    let (code, out, _) = kvault(&repo, &["verify-report", report.to_str().unwrap()]);
    assert_eq!(code, 4, "an edited report is refused: {out}");

    // One extra record on the target: named, unless newer records are allowed.
    produce(
        &tgt,
        &format!("a-{topic}"),
        &[(2, rec(now_ms(), Some(b"late"), Some(b"x"), &[]))],
    );
    let (code, out, _) = kvault(&repo, &["verify", "-b", &tgt, "--prefix", "a-", "--json"]);
    assert_eq!(code, 4);
    let v = line(&out, "verify");
    let p = partition(&v, &format!("a-{topic}/2"));
    assert_eq!(
        (
            p["difference"]["offset"].as_i64(),
            p["difference"]["kind"].as_str()
        ),
        (Some(300), Some("extra"))
    );
    assert_eq!(partition(&v, &format!("a-{topic}/0"))["equal"], true);
    ok(&repo, &["verify", "-b", &tgt, "--prefix", "a-", "--allow-newer"]);

    // A copy made by an independent producer: partition 0 with one value
    // changed, partition 1 without its last record, partition 2 whole.
    let copy = format!("b-{topic}");
    create_topic(&tgt, &copy, 3, &[]).await;
    for p in 0..3 {
        let mut rs: Vec<(i32, kvault::image::record::Record)> = read_partition(&b, &topic, p, None)
            .into_iter()
            .map(|(_, r)| (p, r))
            .collect();
        match p {
            0 => rs[5].1.value = Some(b"tampered".to_vec()),
            1 => {
                rs.pop();
            }
            _ => {}
        }
        produce(&tgt, &copy, &rs);
    }
    let (code, out, _) = kvault(
        &repo,
        &["verify", "-b", &tgt, "--prefix", "b-", "--no-groups", "--json"],
    );
    assert_eq!(code, 4);
    let v = line(&out, "verify");
    let d0 = &partition(&v, &format!("{copy}/0"))["difference"];
    assert_eq!(
        (d0["offset"].as_i64(), d0["kind"].as_str()),
        (Some(5), Some("changed")),
        "{v}"
    );
    assert_eq!(d0["fields"], serde_json::json!(["value"]));
    let d1 = &partition(&v, &format!("{copy}/1"))["difference"];
    assert_eq!(
        (d1["offset"].as_i64(), d1["kind"].as_str()),
        (Some(299), Some("missing")),
        "{v}"
    );
    assert_eq!(partition(&v, &format!("{copy}/2"))["equal"], true);
    // The copy was created without the source's retention.ms.
    let differing = v["topics"][0]["configs_differing"].to_string();
    assert!(
        differing.contains("retention.ms: snapshot -1, target unset"),
        "{v}"
    );

    // Offset-exact: verified at the source offsets.
    ok(
        &repo,
        &["restore", "-b", &tgt, "--prefix", "c-", "--offsets", "exact"],
    );
    ok(
        &repo,
        &["verify", "-b", &tgt, "--prefix", "c-", "--offsets", "exact"],
    );
}
