//! A cluster as kvault talks to it outside the data path: its id, topics
//! (partitions, replication factor, non-default configs), log bounds of
//! many partitions at once, consumer groups' committed offsets, and the
//! changes a restore makes (create topics, delete records, commit offsets).
//!
//! Every request is retried while its error is transient ([`super::retry`]),
//! and the bounds of any number of partitions come from batched ListOffsets
//! requests (one per leader broker, through `rd_kafka_offsets_for_times`
//! with the special timestamps "earliest" and "latest"), never one round
//! trip per partition. The metadata client reads with read_committed, so
//! "latest" is the last stable offset.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use kvault_rdkafka_ext::configs;
use kvault_rdkafka_ext::fetch;
use kvault_rdkafka_ext::request::{self, Broker, RequestError};
use rdkafka::admin::{AdminClient, AdminOptions, AlterConfig, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::metadata::Metadata;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use super::KafkaOptions;
use super::auth::{self, Tokens};
use super::batches::{self, FetchedPartition};
use super::filter::{NameFilter, is_literal};
use super::protocol::{Api, ProtoError};
use super::retry::{Backoff, Transient, kafka_error, retry};
use crate::error::{Error, Result};
pub use crate::image::types::{GroupOffset, TopicInfo};
use crate::image::types::{OpenTxn, TopicPartition, TxnSpan};

/// Bytes asked of the leader per raw fetch when scanning for transactions.
const TXN_SCAN_BYTES: i32 = 8 << 20;

/// Partitions per ListOffsets call (see [`Cluster::offsets`]).
pub const LIST_OFFSETS_BATCH: usize = 500;

/// One group's committed offsets.
type GroupOffsets = (String, Vec<GroupOffset>);

/// Groups whose committed offsets are fetched at once.
pub const GROUP_FETCHERS: usize = 8;

/// A client context that remembers the last client-level error librdkafka
/// reported (e.g. "Connection refused"), so a failure can say why, and
/// answers librdkafka's SASL/OAUTHBEARER token refreshes.
#[derive(Debug, Default)]
pub struct Context {
    last_error: Mutex<Option<String>>,
    tokens: Option<Arc<Tokens>>,
}

impl Context {
    /// A context for a client of `opts`.
    pub fn new(opts: &KafkaOptions) -> Context {
        Context {
            last_error: Mutex::new(None),
            tokens: opts.tokens.clone(),
        }
    }

    /// The last client-level error, if any.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|g| g.clone())
    }
}

impl ClientContext for Context {
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

    fn generate_oauth_token(
        &self,
        _config: Option<&str>,
    ) -> std::result::Result<rdkafka::client::OAuthToken, Box<dyn std::error::Error>> {
        auth::refresh(self.tokens.as_deref())
    }

    fn error(&self, error: KafkaError, reason: &str) {
        // Shown with -v: why a broker does not answer (refused, TLS, SASL).
        log::info!(target: "librdkafka", "{error}: {reason}");
        if let Ok(mut g) = self.last_error.lock() {
            *g = Some(if reason.is_empty() {
                error.to_string()
            } else {
                reason.to_string()
            });
        }
    }
}

impl ConsumerContext for Context {}

/// Which end of a partition's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The log start offset (ListOffsets "earliest").
    Start,
    /// The last stable offset (ListOffsets "latest" under read_committed).
    Latest,
    /// The first offset whose record timestamp is at or after this time
    /// (ms since the epoch); −1 when no record is that late.
    At(i64),
    /// The high watermark (ListOffsets "latest" under read_uncommitted):
    /// past the last stable offset by the records of open transactions.
    High,
}

/// A topic to create.
#[derive(Debug, Clone)]
pub struct TopicSpec {
    /// Name.
    pub name: String,
    /// Partitions.
    pub partitions: i32,
    /// Replication factor.
    pub replication_factor: i32,
    /// Configs.
    pub configs: BTreeMap<String, String>,
}

struct Inner {
    opts: KafkaOptions,
    consumer: BaseConsumer<Context>,
    /// Made on first use (a restore's changes): rdkafka's admin client
    /// takes up to 100 ms to drop (its polling thread), which a snapshot,
    /// whose one admin request goes through the consumer, need not pay.
    admin: OnceLock<AdminClient<Context>>,
    admin_init: Mutex<()>,
    /// A read_uncommitted client for high watermarks (ListOffsets answers
    /// by the client's isolation level), made on first use.
    uncommitted: OnceLock<BaseConsumer<Context>>,
}

impl Inner {
    /// The admin client, made on first use.
    fn admin(&self) -> Result<&AdminClient<Context>> {
        if let Some(a) = self.admin.get() {
            return Ok(a);
        }
        let _one = self.admin_init.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(a) = self.admin.get() {
            return Ok(a);
        }
        let a: AdminClient<Context> = auth::create(
            &self.opts.client_config(),
            Context::new(&self.opts),
            &self.opts,
            "kafka admin client",
        )?;
        Ok(self.admin.get_or_init(|| a))
    }

    /// The read_uncommitted client, made on first use.
    fn uncommitted(&self) -> Result<&BaseConsumer<Context>> {
        if let Some(c) = self.uncommitted.get() {
            return Ok(c);
        }
        let _one = self.admin_init.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = self.uncommitted.get() {
            return Ok(c);
        }
        let mut cfg = self.opts.client_config();
        cfg.set("enable.auto.commit", "false")
            .set("isolation.level", "read_uncommitted");
        let c: BaseConsumer<Context> =
            auth::create(&cfg, Context::new(&self.opts), &self.opts, "kafka client")?;
        Ok(self.uncommitted.get_or_init(|| c))
    }
}

/// A connection to one cluster for everything but reading and writing
/// records. Cheap to clone; blocking librdkafka calls run off the async
/// workers.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Cluster({})", self.inner.opts.brokers)
    }
}

/// A list of `(topic, partition, offset)`. Built element by element:
/// rdkafka's `add_partition_offset` searches the list first, which is
/// quadratic (10,000 partitions: seconds).
fn tpl_of(parts: &[TopicPartition], offset: Offset) -> Result<TopicPartitionList> {
    let mut tpl = TopicPartitionList::with_capacity(parts.len());
    for tp in parts {
        tpl.add_partition(&tp.topic, tp.partition)
            .set_offset(offset)
            .map_err(|e| Error::Kafka {
                op: format!("listing {tp}"),
                detail: e.to_string(),
                code: None,
                transient: false,
            })?;
    }
    Ok(tpl)
}

impl Cluster {
    /// Creates the clients and checks that the cluster answers within
    /// [`KafkaOptions::connect_timeout`].
    ///
    /// # Errors
    /// [`Error::KafkaUnreachable`] when no broker answers in time; invalid
    /// librdkafka properties.
    pub async fn connect(opts: &KafkaOptions) -> Result<Cluster> {
        let opts = opts.clone();
        tokio::task::spawn_blocking(move || Self::connect_blocking(opts))
            .await
            .map_err(|e| Error::worker("connecting to Kafka", e))?
    }

    fn connect_blocking(opts: KafkaOptions) -> Result<Cluster> {
        let mut c = opts.client_config();
        c.set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed");
        let consumer: BaseConsumer<Context> = auth::create(&c, Context::new(&opts), &opts, "kafka client")?;
        let t0 = Instant::now();
        if let Err(e) = consumer.fetch_metadata(None, opts.connect_timeout()) {
            // The reason (refused, TLS handshake, SASL authentication) and
            // librdkafka's log lines wait on the consumer's queue: drain it.
            for _ in 0..20 {
                if consumer.context().last_error().is_some() {
                    break;
                }
                let _ = consumer.poll(std::time::Duration::from_millis(25));
            }
            let why = consumer.context().last_error().unwrap_or_else(|| e.to_string());
            return Err(Error::KafkaUnreachable {
                brokers: opts.brokers.clone(),
                detail: format!("{why} (no answer within {:.0} s)", t0.elapsed().as_secs_f64()),
            });
        }
        let tokens = opts.tokens.clone();
        let inner = Arc::new(Inner {
            opts,
            consumer,
            admin: OnceLock::new(),
            admin_init: Mutex::new(()),
            uncommitted: OnceLock::new(),
        });
        // Neither client is polled for rdkafka's token refresh: renew their
        // tokens from a thread while the cluster is in use.
        if let Some(t) = tokens {
            auth::keep_fresh(Arc::downgrade(&inner), t, |i, t| {
                auth::prime(i.consumer.client(), t)?;
                if let Some(c) = i.uncommitted.get() {
                    auth::prime(c.client(), t)?;
                }
                match i.admin.get() {
                    Some(a) => auth::prime(a.inner(), t),
                    None => Ok(()),
                }
            });
        }
        Ok(Cluster { inner })
    }

    /// The admin client, made on first use on the blocking pool (making
    /// it may run a token command).
    async fn admin(&self) -> Result<&AdminClient<Context>> {
        if self.inner.admin.get().is_none() {
            self.blocking(|i| i.admin().map(|_| ())).await?;
        }
        self.inner.admin()
    }

    /// The options this cluster was reached with.
    pub fn options(&self) -> &KafkaOptions {
        &self.inner.opts
    }

    /// Runs a blocking request on the blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| Error::worker("a Kafka request", e))?
    }

    /// The cluster id.
    ///
    /// # Errors
    /// The broker does not say within the retry deadline.
    pub async fn cluster_id(&self) -> Result<String> {
        self.blocking(|i| {
            let mut b = Backoff::until(Instant::now() + i.opts.retry_timeout());
            loop {
                if let Some(id) = i.consumer.client().fetch_cluster_id(i.opts.request_timeout()) {
                    return Ok(id);
                }
                match b.next_pause() {
                    Some(d) => std::thread::sleep(d),
                    None => {
                        return Err(Error::Kafka {
                            op: "cluster id".into(),
                            detail: format!("Kafka at {} did not give a cluster id", i.opts.brokers),
                            code: None,
                            transient: true,
                        });
                    }
                }
            }
        })
        .await
    }

    /// The cluster's metadata (all topics).
    fn metadata(i: &Inner) -> Result<Metadata> {
        retry(&i.opts, "metadata", Transient::Usual, |t| {
            i.consumer.fetch_metadata(None, t)
        })
    }

    /// Broker count and every topic's partition count.
    ///
    /// # Errors
    /// Metadata requests failing.
    pub async fn layout(&self) -> Result<(usize, BTreeMap<String, i32>)> {
        self.blocking(|i| {
            let md = Self::metadata(i)?;
            let topics = md
                .topics()
                .iter()
                .filter(|t| t.error().is_none())
                .map(|t| (t.name().to_string(), t.partitions().len() as i32))
                .collect();
            Ok((md.brokers().len().max(1), topics))
        })
        .await
    }

    /// Selected topics (internal `__` topics never), sorted by name, with
    /// their non-default configs.
    ///
    /// # Errors
    /// A named (non-glob) topic that does not exist; requests failing.
    pub async fn topics(&self, include: &[String], exclude: &[String]) -> Result<Vec<TopicInfo>> {
        let selection = NameFilter::new("topic pattern", include, exclude)?;
        let include = include.to_vec();
        let mut out = self
            .blocking(move |i| {
                let md = Self::metadata(i)?;
                let mut out = Vec::new();
                for t in md.topics() {
                    if t.name().starts_with("__") || !selection.matches(t.name()) || t.error().is_some() {
                        continue;
                    }
                    let rf = t
                        .partitions()
                        .iter()
                        .find(|p| p.id() == 0)
                        .map_or(1, |p| p.replicas().len() as i32);
                    out.push(TopicInfo {
                        name: t.name().to_string(),
                        partitions: t.partitions().len() as i32,
                        replication_factor: rf,
                        configs: BTreeMap::new(),
                    });
                }
                out.sort_by(|a, b| a.name.cmp(&b.name));
                if let Some(m) = include
                    .iter()
                    .find(|p| is_literal(p) && !out.iter().any(|t| &t.name == *p))
                {
                    return Err(Error::NotFound(format!("topic {m} on {}", i.opts.brokers)));
                }
                Ok(out)
            })
            .await?;
        if out.is_empty() {
            return Ok(out);
        }
        let opts = &self.inner.opts;
        let names: Arc<Vec<String>> = Arc::new(out.iter().map(|t| t.name.clone()).collect());
        let timeout = opts.request_timeout();
        let mut backoff = Backoff::until(Instant::now() + opts.retry_timeout());
        let results = loop {
            let names = names.clone();
            let r = self
                .blocking(move |i| {
                    let topics: Vec<&str> = names.iter().map(String::as_str).collect();
                    Ok(configs::describe_topic_configs(
                        i.consumer.client(),
                        &topics,
                        timeout,
                    ))
                })
                .await?;
            match r {
                Ok(r) => break r,
                Err(e) if super::retry::is_transient(&e, Transient::Usual) => match backoff.next_pause() {
                    Some(d) => tokio::time::sleep(d).await,
                    None => return Err(kafka_error(opts, "describe configs", &e, 2)),
                },
                Err(e) => return Err(kafka_error(opts, "describe configs", &e, 1)),
            }
        };
        for (t, r) in out.iter_mut().zip(results) {
            // A topic deleted meanwhile has no configs; the read will notice.
            if let Ok(entries) = r {
                for e in entries {
                    if e.topic_level && !e.sensitive {
                        if let Some(v) = e.value {
                            t.configs.insert(e.name, v);
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// One end of every partition's log, from batched ListOffsets requests.
    ///
    /// # Errors
    /// A partition that does not exist; requests failing past the deadline.
    pub async fn offsets(&self, parts: &[TopicPartition], end: End) -> Result<Vec<i64>> {
        self.offsets_when(parts, end, Transient::Usual).await
    }

    async fn offsets_when(&self, parts: &[TopicPartition], end: End, when: Transient) -> Result<Vec<i64>> {
        if parts.is_empty() {
            return Ok(Vec::new());
        }
        let parts = parts.to_vec();
        self.blocking(move |i| Self::offsets_blocking(i, &parts, end, when))
            .await
    }

    fn offsets_blocking(i: &Inner, parts: &[TopicPartition], end: End, when: Transient) -> Result<Vec<i64>> {
        // librdkafka reads the special timestamps -2 (earliest) and -1
        // (latest) from the offset field.
        let spec = match end {
            End::Start => Offset::Beginning,
            End::Latest => Offset::End,
            End::At(ts) => Offset::Offset(ts),
            End::High => Offset::End,
        };
        let consumer = match end {
            End::High => i.uncommitted()?,
            _ => &i.consumer,
        };
        let what = match parts {
            [tp] => format!("offsets of {tp}"),
            _ => format!("offsets of {} partitions", parts.len()),
        };
        // librdkafka matches results to the request list by linear search:
        // quadratic in the list's length (10,000 partitions took 3 s), so
        // ask in batches — still one request per leader broker per batch.
        let mut by: BTreeMap<TopicPartition, i64> = BTreeMap::new();
        for batch in parts.chunks(LIST_OFFSETS_BATCH) {
            // A partition's own error (a leader just elected, a topic not yet
            // known to every broker) fails the attempt, so it is retried
            // like a failed request instead of surfacing as a missing offset.
            let got = retry(&i.opts, &what, when, |t| {
                let got =
                    consumer.offsets_for_times(tpl_of(batch, spec).map_err(|_| KafkaError::Canceled)?, t)?;
                for e in got.elements() {
                    e.error()?;
                    let none_that_late = matches!(end, End::At(_)) && e.offset() == Offset::End;
                    if !matches!(e.offset(), Offset::Offset(_)) && !none_that_late {
                        return Err(KafkaError::OffsetFetch(RDKafkaErrorCode::OffsetNotAvailable));
                    }
                }
                Ok(got)
            })
            .map_err(|e| Self::leaderless(i, batch).unwrap_or(e))?;
            for e in got.elements() {
                let o = match e.offset() {
                    Offset::Offset(o) => o,
                    _ => -1,
                };
                by.insert(TopicPartition::new(e.topic(), e.partition()), o);
            }
        }
        parts
            .iter()
            .map(|tp| {
                by.get(tp).copied().ok_or_else(|| Error::Kafka {
                    op: format!("offsets of {tp}"),
                    detail: "the broker returned no offset".into(),
                    code: None,
                    transient: false,
                })
            })
            .collect()
    }

    /// A request about `parts` that gave up, named by its likely cause:
    /// the first of them without a leader in a fresh metadata answer.
    /// librdkafka reports such a partition as its own error when it knows
    /// in time, and as a timed-out request when it does not.
    fn leaderless(i: &Inner, parts: &[TopicPartition]) -> Option<Error> {
        let md = i.consumer.fetch_metadata(None, i.opts.request_timeout()).ok()?;
        let tp = parts.iter().find(|tp| {
            md.topics().iter().any(|t| {
                t.name() == tp.topic
                    && t.partitions()
                        .iter()
                        .any(|p| p.id() == tp.partition && (p.leader() < 0 || p.error().is_some()))
            })
        })?;
        Some(Error::Kafka {
            op: format!("offsets of {tp}"),
            detail: "the partition has no leader (its brokers are down or an election is under way)".into(),
            code: Some("LeaderNotAvailable".into()),
            transient: true,
        })
    }

    /// Node ids of the cluster's brokers, sorted.
    ///
    /// # Errors
    /// Metadata requests failing.
    pub async fn broker_ids(&self) -> Result<Vec<i32>> {
        self.blocking(|i| {
            let mut ids: Vec<i32> = Self::metadata(i)?.brokers().iter().map(|b| b.id()).collect();
            ids.sort_unstable();
            Ok(ids)
        })
        .await
    }

    /// One raw request of `api` to `broker`, in the highest version both
    /// speak, its answer decoded; transient failures are retried. The
    /// outer result is the exchange, the inner one the broker's answer.
    ///
    /// # Errors
    /// No broker or no common version; the request failing past the retry
    /// deadline; raw requests unavailable in this build.
    pub async fn request<T: Send + 'static>(
        &self,
        broker: Broker,
        api: Api,
        encode: impl Fn(i16) -> Vec<u8> + Send + 'static,
        decode: impl Fn(i16, &[u8]) -> std::result::Result<T, ProtoError> + Send + 'static,
    ) -> Result<std::result::Result<T, ProtoError>> {
        self.blocking(move |i| {
            let client = i.consumer.client();
            let failed =
                |e: RequestError, attempts: u32| raw_error(format!("{} request", api.name), &e, attempts);
            let mut backoff = Backoff::until(Instant::now() + i.opts.retry_timeout());
            let mut attempts = 0;
            loop {
                attempts += 1;
                let t = backoff.remaining().min(i.opts.request_timeout());
                let sent =
                    request::api_version(client, broker, api.key, (api.min, api.max), t).and_then(|v| {
                        request::request_raw(client, broker, (api.key, v, api.flexible(v)), &encode(v), t)
                            .map(|b| (v, b))
                    });
                match sent {
                    Ok((v, body)) => return Ok(decode(v, &body)),
                    Err(RequestError::Kafka(RDKafkaErrorCode::UnsupportedFeature)) => {
                        return Ok(Err(ProtoError::Unsupported { api: api.name }));
                    }
                    Err(e @ RequestError::Kafka(c))
                        if super::retry::is_transient_code(c, Transient::Usual) =>
                    {
                        match backoff.next_pause() {
                            Some(d) => std::thread::sleep(d),
                            None => return Err(failed(e, attempts)),
                        }
                    }
                    Err(e) => return Err(failed(e, attempts)),
                }
            }
        })
        .await
    }

    /// The record batches the leader of `tp` holds from `from` (at most
    /// `max_bytes` of them, uncommitted ones included), read raw: their
    /// producer ids, transactional flags and the transaction markers, which
    /// the consumer does not hand out (`kvault_rdkafka_ext::fetch`,
    /// decoded by [`super::batches`]).
    ///
    /// # Errors
    /// A build without the librdkafka shim, the request failing past the
    /// deadline, or an answer that does not decode.
    pub async fn batches(&self, tp: &TopicPartition, from: i64, max_bytes: i32) -> Result<FetchedPartition> {
        let tp = tp.clone();
        self.blocking(move |i| {
            let what = format!("reading the batches of {tp} from {from}");
            let timeout = i.opts.request_timeout();
            let raw = fetch::fetch_raw(
                i.consumer.client(),
                &tp.topic,
                tp.partition,
                from,
                max_bytes,
                timeout,
            )
            .map_err(|e| raw_error(what.clone(), &e, 1))?;
            batches::decode(raw.version, &raw.body).map_err(|e| Error::Kafka {
                op: what,
                detail: e.to_string(),
                code: None,
                transient: false,
            })
        })
        .await
    }

    /// The batch headers of `[start, end)` of `tp`, from raw fetches of
    /// the range.
    ///
    /// # Errors
    /// As [`Cluster::batches`]; a partition error (e.g. retention moved the
    /// log start past the range: the scan would not be the whole range).
    async fn batches_in(
        &self,
        tp: &TopicPartition,
        start: i64,
        end: i64,
    ) -> Result<Vec<batches::BatchHeader>> {
        let mut headers = Vec::new();
        let mut from = start;
        while from < end {
            let got = self.batches(tp, from, TXN_SCAN_BYTES).await?;
            if got.error_code != 0 {
                return Err(Error::Kafka {
                    op: format!("reading the batches of {tp} from {from}"),
                    detail: format!("the broker answered error code {}", got.error_code),
                    code: Some(got.error_code.to_string()),
                    transient: false,
                });
            }
            let Some(last) = got.batches.last().map(|b| b.last_offset) else {
                break;
            };
            headers.extend(
                got.batches
                    .into_iter()
                    .filter(|b| b.last_offset >= from && b.base_offset < end),
            );
            from = last + 1;
        }
        Ok(headers)
    }

    /// The committed transactions whose records lie in `[start, end)` of
    /// `tp` ([`batches::committed_spans`]), from raw fetches of the range.
    ///
    /// # Errors
    /// As [`Cluster::batches`].
    pub async fn transactions(&self, tp: &TopicPartition, start: i64, end: i64) -> Result<Vec<TxnSpan>> {
        let headers = self.batches_in(tp, start, end).await?;
        Ok(batches::committed_spans(&headers)
            .into_iter()
            .filter(|s| s.marker() < end)
            .collect())
    }

    /// The transactions open in `[from, to)` of `tp` (`from` the last
    /// stable offset, `to` the high watermark), from raw fetches of the
    /// range: each producer with records there and no marker after them.
    ///
    /// # Errors
    /// As [`Cluster::batches`].
    pub async fn open_transactions(&self, tp: &TopicPartition, from: i64, to: i64) -> Result<Vec<OpenTxn>> {
        Ok(batches::open_transactions(&self.batches_in(tp, from, to).await?))
    }

    /// `(log start, last stable offset)` of every partition.
    ///
    /// # Errors
    /// As [`Cluster::offsets`].
    pub async fn bounds(&self, parts: &[TopicPartition]) -> Result<Vec<(i64, i64)>> {
        // Both ends at once: two round trips in parallel, not one after the
        // other (a fixed cost of every snapshot, unchanged ones included).
        let (starts, ends) =
            tokio::try_join!(self.offsets(parts, End::Start), self.offsets(parts, End::Latest))?;
        // Read at about the same moment, a log start that retention (or
        // DeleteRecords up to the high watermark, past an open
        // transaction's last stable offset) moved past the end is the end:
        // the bounds of a partition never cross.
        Ok(starts.into_iter().zip(ends).map(|(s, e)| (s.min(e), e)).collect())
    }

    /// Waits until topics kvault just created, given as (name, partition
    /// count), are usable: every partition
    /// is in the metadata with a leader, and the leaders answer ListOffsets.
    ///
    /// # Errors
    /// Not ready within the retry deadline.
    pub async fn wait_ready(&self, topics: &[(String, i32)]) -> Result<()> {
        let topics = topics.to_vec();
        let parts: Vec<TopicPartition> = topics
            .iter()
            .flat_map(|(t, n)| (0..*n).map(move |p| TopicPartition::new(t, p)))
            .collect();
        self.blocking(move |i| {
            let mut b = Backoff::until(Instant::now() + i.opts.retry_timeout());
            loop {
                let md = Self::metadata(i)?;
                let missing = topics.iter().find(|(name, n)| {
                    !md.topics().iter().any(|t| {
                        t.name() == name
                            && t.error().is_none()
                            && t.partitions().len() as i32 >= *n
                            && t.partitions()
                                .iter()
                                .all(|p| p.leader() >= 0 && p.error().is_none())
                    })
                });
                match missing {
                    None => break,
                    Some((name, _)) => match b.next_pause() {
                        Some(d) => std::thread::sleep(d),
                        None => {
                            return Err(Error::Kafka {
                                op: format!("waiting for topic {name}"),
                                detail: "not every partition has a leader yet".into(),
                                code: None,
                                transient: true,
                            });
                        }
                    },
                }
            }
            Self::offsets_blocking(i, &parts, End::Latest, Transient::AfterCreate).map(|_| ())
        })
        .await
    }

    /// Committed offsets of every selected group for the given partitions
    /// (OffsetFetch with the group's id; kvault never joins a group).
    ///
    /// # Errors
    /// Listing groups or fetching offsets failing.
    pub async fn group_offsets(
        &self,
        partitions: &[TopicPartition],
        include: &[String],
    ) -> Result<BTreeMap<String, Vec<GroupOffset>>> {
        let partitions = partitions.to_vec();
        let selection = NameFilter::new("group pattern", include, &[])?;
        self.blocking(move |i| {
            let names: Vec<String> = Self::groups(i)?
                .into_iter()
                .map(|g| g.0)
                .filter(|g| selection.matches(g))
                .collect();
            let mut out = BTreeMap::new();
            if names.is_empty() {
                return Ok(out);
            }
            let tpls = partitions
                .chunks(LIST_OFFSETS_BATCH)
                .map(|b| tpl_of(b, Offset::Invalid))
                .collect::<Result<Vec<_>>>()?;
            // Groups are asked in parallel (one client each: the group id is
            // a client setting); a cluster may have hundreds.
            let next = std::sync::atomic::AtomicUsize::new(0);
            let found: std::sync::Mutex<Vec<Result<GroupOffsets>>> = Default::default();
            std::thread::scope(|scope| {
                for _ in 0..GROUP_FETCHERS.min(names.len()) {
                    scope.spawn(|| {
                        while let Some(g) = names.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
                        {
                            let r = Self::committed(i, g, &tpls).map(|o| (g.clone(), o));
                            let failed = r.is_err();
                            if let Ok(mut f) = found.lock() {
                                f.push(r);
                            }
                            if failed {
                                break;
                            }
                        }
                    });
                }
            });
            for r in found
                .into_inner()
                .map_err(|_| Error::worker("the group offset fetchers", "one panicked"))?
            {
                let (g, offs) = r?;
                if !offs.is_empty() {
                    out.insert(g, offs);
                }
            }
            Ok(out)
        })
        .await
    }

    /// One group's committed offsets for `partitions` (those it has).
    ///
    /// # Errors
    /// The fetch failing.
    pub async fn group_committed(
        &self,
        group: &str,
        partitions: &[TopicPartition],
    ) -> Result<Vec<GroupOffset>> {
        let (group, partitions) = (group.to_string(), partitions.to_vec());
        self.blocking(move |i| {
            let tpls = partitions
                .chunks(LIST_OFFSETS_BATCH)
                .map(|b| tpl_of(b, Offset::Invalid))
                .collect::<Result<Vec<_>>>()?;
            Self::committed(i, &group, &tpls)
        })
        .await
    }

    /// One group's committed offsets for the partitions of `tpls`.
    fn committed(i: &Inner, g: &str, tpls: &[TopicPartitionList]) -> Result<Vec<GroupOffset>> {
        let mut cfg = i.opts.client_config();
        cfg.set("group.id", g).set("enable.auto.commit", "false");
        let c: BaseConsumer<Context> = auth::create(&cfg, Context::new(&i.opts), &i.opts, "kafka client")?;
        // In batches: librdkafka matches the answer to the request list by
        // linear search (quadratic in partitions).
        let mut offs: Vec<GroupOffset> = Vec::new();
        for tpl in tpls {
            // A partition's own error (an unstable transactional commit, a
            // coordinator moving) fails the attempt: dropping that partition
            // would restore the group without its offset.
            let committed = retry(&i.opts, &format!("offsets of group {g}"), Transient::Usual, |t| {
                let got = c.committed_offsets(tpl.clone(), t)?;
                got.elements().iter().try_for_each(|e| e.error())?;
                Ok(got)
            })?;
            offs.extend(committed.elements().iter().filter_map(|e| match e.offset() {
                Offset::Offset(o) => Some(GroupOffset {
                    topic: e.topic().to_string(),
                    partition: e.partition(),
                    offset: o,
                    metadata: e.metadata().to_string(),
                }),
                _ => None,
            }));
        }
        Ok(offs)
    }

    /// Every group with its number of active members, sorted by name.
    fn groups(i: &Inner) -> Result<Vec<(String, usize)>> {
        let list = retry(&i.opts, "list groups", Transient::Usual, |t| {
            i.consumer.fetch_group_list(None, t)
        })?;
        let mut v: Vec<(String, usize)> = list
            .groups()
            .iter()
            .map(|g| (g.name().to_string(), g.members().len()))
            .collect();
        v.sort();
        Ok(v)
    }

    /// Those of `names` that have active members: `(group, members)`.
    ///
    /// # Errors
    /// Listing groups failing.
    pub async fn live_groups(&self, names: &[String]) -> Result<Vec<(String, usize)>> {
        let names = names.to_vec();
        self.blocking(move |i| {
            Ok(Self::groups(i)?
                .into_iter()
                .filter(|(g, m)| *m > 0 && names.contains(g))
                .collect())
        })
        .await
    }

    /// Creates topics; one that exists already (e.g. created by an earlier
    /// attempt whose answer was lost) is not an error.
    ///
    /// # Errors
    /// The broker refuses a topic (bad config, policy, authorization).
    pub async fn create_topics(&self, specs: &[TopicSpec]) -> Result<()> {
        if specs.is_empty() {
            return Ok(());
        }
        let opts = &self.inner.opts;
        let new: Vec<NewTopic<'_>> = specs
            .iter()
            .map(|s| {
                let mut t = NewTopic::new(
                    &s.name,
                    s.partitions,
                    TopicReplication::Fixed(s.replication_factor),
                );
                for (k, v) in &s.configs {
                    t = t.set(k, v);
                }
                t
            })
            .collect();
        let admin_opts = AdminOptions::new()
            .request_timeout(Some(opts.request_timeout()))
            .operation_timeout(Some(opts.request_timeout()));
        let mut backoff = Backoff::until(Instant::now() + opts.retry_timeout());
        let mut pending: Vec<&NewTopic<'_>> = new.iter().collect();
        let mut attempts = 0;
        while !pending.is_empty() {
            attempts += 1;
            let results = match self
                .admin()
                .await?
                .create_topics(pending.iter().copied(), &admin_opts)
                .await
            {
                Ok(r) => r,
                Err(e) if super::retry::is_transient(&e, Transient::Usual) => match backoff.next_pause() {
                    Some(d) => {
                        tokio::time::sleep(d).await;
                        continue;
                    }
                    None => return Err(kafka_error(opts, "creating topics", &e, attempts)),
                },
                Err(e) => return Err(kafka_error(opts, "creating topics", &e, attempts)),
            };
            let mut again = Vec::new();
            for r in results {
                match r {
                    Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                    Err((t, c)) if super::retry::is_transient_code(c, Transient::Usual) => {
                        if let Some(n) = pending.iter().find(|n| n.name == t) {
                            again.push(*n);
                        }
                    }
                    Err((t, c)) => {
                        return Err(Error::Kafka {
                            op: format!("creating topic {t}"),
                            detail: c.to_string(),
                            code: Some(format!("{c:?}")),
                            transient: false,
                        });
                    }
                }
            }
            if !again.is_empty() {
                match backoff.next_pause() {
                    Some(d) => tokio::time::sleep(d).await,
                    None => {
                        return Err(Error::Kafka {
                            op: "creating topics".into(),
                            detail: format!(
                                "{} topic(s) still refused after {attempts} attempts",
                                again.len()
                            ),
                            code: None,
                            transient: true,
                        });
                    }
                }
            }
            pending = again;
        }
        Ok(())
    }

    /// Every consumer group the cluster knows, sorted.
    ///
    /// # Errors
    /// Listing failing past the deadline.
    pub async fn group_names(&self) -> Result<Vec<String>> {
        self.blocking(|i| Ok(Self::groups(i)?.into_iter().map(|(g, _)| g).collect()))
            .await
    }

    /// Deletes topics (a drill's scratch topics); a topic already gone is
    /// not an error.
    ///
    /// # Errors
    /// The cluster refusing (authorization) or not answering.
    pub async fn delete_topics(&self, names: &[String]) -> Result<()> {
        if names.is_empty() {
            return Ok(());
        }
        let opts = &self.inner.opts;
        let admin_opts = AdminOptions::new()
            .request_timeout(Some(opts.request_timeout()))
            .operation_timeout(Some(opts.request_timeout()));
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let results = self
            .admin()
            .await?
            .delete_topics(&refs, &admin_opts)
            .await
            .map_err(|e| kafka_error(opts, "deleting topics", &e, 1))?;
        for r in results {
            match r {
                Ok(_) | Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => {}
                Err((t, c)) => {
                    return Err(Error::Kafka {
                        op: format!("deleting topic {t}"),
                        detail: c.to_string(),
                        code: Some(format!("{c:?}")),
                        transient: false,
                    });
                }
            }
        }
        Ok(())
    }

    /// Deletes consumer groups (a drill's); a group already gone is not an
    /// error.
    ///
    /// # Errors
    /// The cluster refusing (a group with members, authorization).
    pub async fn delete_groups(&self, names: &[String]) -> Result<()> {
        if names.is_empty() {
            return Ok(());
        }
        let opts = &self.inner.opts;
        let admin_opts = AdminOptions::new().request_timeout(Some(opts.request_timeout()));
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let results = self
            .admin()
            .await?
            .delete_groups(&refs, &admin_opts)
            .await
            .map_err(|e| kafka_error(opts, "deleting groups", &e, 1))?;
        for r in results {
            match r {
                Ok(_) | Err((_, RDKafkaErrorCode::GroupIdNotFound)) => {}
                Err((g, c)) => {
                    return Err(Error::Kafka {
                        op: format!("deleting group {g}"),
                        detail: c.to_string(),
                        code: Some(format!("{c:?}")),
                        transient: false,
                    });
                }
            }
        }
        Ok(())
    }

    /// Sets a topic's configs (AlterConfigs: the whole set; configs not
    /// named return to their defaults).
    ///
    /// # Errors
    /// The broker refuses (authorization, bad value) after retries.
    pub async fn set_topic_configs(&self, topic: &str, configs: &BTreeMap<String, String>) -> Result<()> {
        let opts = &self.inner.opts;
        let mut alter = AlterConfig::new(ResourceSpecifier::Topic(topic));
        for (k, v) in configs {
            alter = alter.set(k, v);
        }
        let admin_opts = AdminOptions::new().request_timeout(Some(opts.request_timeout()));
        let op = format!("setting the configs of topic {topic}");
        let mut backoff = Backoff::until(Instant::now() + opts.retry_timeout());
        let mut attempts = 0;
        loop {
            attempts += 1;
            let code = match self.admin().await?.alter_configs([&alter], &admin_opts).await {
                Ok(rs) => match rs.into_iter().next() {
                    Some(Ok(_)) | None => return Ok(()),
                    Some(Err((_, c))) => c,
                },
                Err(e) if super::retry::is_transient(&e, Transient::Usual) => match backoff.next_pause() {
                    Some(d) => {
                        tokio::time::sleep(d).await;
                        continue;
                    }
                    None => return Err(kafka_error(opts, &op, &e, attempts)),
                },
                Err(e) => return Err(kafka_error(opts, &op, &e, attempts)),
            };
            let transient = super::retry::is_transient_code(code, Transient::Usual);
            match backoff.next_pause() {
                Some(d) if transient => tokio::time::sleep(d).await,
                _ => {
                    return Err(Error::Kafka {
                        op,
                        detail: code.to_string(),
                        code: Some(format!("{code:?}")),
                        transient,
                    });
                }
            }
        }
    }

    /// Deletes every record below `offset` in each partition (DeleteRecords).
    ///
    /// # Errors
    /// The broker refuses (authorization, unknown partition).
    pub async fn delete_records(&self, upto: &[(String, i32, i64)]) -> Result<()> {
        if upto.is_empty() {
            return Ok(());
        }
        let opts = &self.inner.opts;
        let mut tpl = TopicPartitionList::with_capacity(upto.len());
        for (t, p, o) in upto {
            tpl.add_partition(t, *p)
                .set_offset(Offset::Offset(*o))
                .map_err(|e| Error::Kafka {
                    op: format!("deleting records of {t}/{p}"),
                    detail: e.to_string(),
                    code: None,
                    transient: false,
                })?;
        }
        let admin_opts = AdminOptions::new()
            .request_timeout(Some(opts.request_timeout()))
            .operation_timeout(Some(opts.request_timeout()));
        let mut backoff = Backoff::until(Instant::now() + opts.retry_timeout());
        let mut attempts = 0;
        loop {
            attempts += 1;
            let err = match self.admin().await?.delete_records(&tpl, &admin_opts).await {
                Ok(res) => match res
                    .elements()
                    .iter()
                    .find_map(|e| e.error().err().map(|x| (e.topic().to_string(), e.partition(), x)))
                {
                    None => return Ok(()),
                    Some((t, p, e)) => (format!("deleting records of {t}/{p}"), e),
                },
                Err(e) => ("deleting records".to_string(), e),
            };
            if super::retry::is_transient(&err.1, Transient::Usual) {
                if let Some(d) = backoff.next_pause() {
                    tokio::time::sleep(d).await;
                    continue;
                }
            }
            return Err(kafka_error(opts, &err.0, &err.1, attempts));
        }
    }

    /// Commits a group's offsets (`(topic, partition, offset, metadata)`)
    /// without joining it. The group must have no active members: the
    /// broker refuses commits from outside a live generation.
    ///
    /// # Errors
    /// The commit is refused (live group, authorization) or keeps failing.
    pub async fn commit_group(&self, group: &str, offsets: &[(String, i32, i64, String)]) -> Result<()> {
        let (group, offsets) = (group.to_string(), offsets.to_vec());
        self.blocking(move |i| {
            let mut tpl = TopicPartitionList::with_capacity(offsets.len());
            for (t, p, o, meta) in &offsets {
                let mut el = tpl.add_partition(t, *p);
                el.set_offset(Offset::Offset(*o)).map_err(|e| Error::Kafka {
                    op: format!("committing {t}/{p}"),
                    detail: e.to_string(),
                    code: None,
                    transient: false,
                })?;
                el.set_metadata(meta.clone());
            }
            let mut cfg = i.opts.client_config();
            cfg.set("group.id", &group).set("enable.auto.commit", "false");
            let c: BaseConsumer<Context> =
                auth::create(&cfg, Context::new(&i.opts), &i.opts, "kafka client")?;
            let mut backoff = Backoff::until(Instant::now() + i.opts.retry_timeout());
            let mut attempts = 0;
            loop {
                attempts += 1;
                match c.commit(&tpl, CommitMode::Sync) {
                    Ok(()) => return Ok(()),
                    Err(e) if super::retry::is_transient(&e, Transient::Usual) => {
                        match backoff.next_pause() {
                            Some(d) => std::thread::sleep(d),
                            None => return Err(commit_error(&i.opts, &group, &e, attempts)),
                        }
                    }
                    Err(e) => return Err(commit_error(&i.opts, &group, &e, attempts)),
                }
            }
        })
        .await
    }
}

/// An [`Error::Kafka`] for a raw request (a Fetch or any other) that
/// failed after `attempts`.
fn raw_error(op: String, e: &RequestError, attempts: u32) -> Error {
    Error::Kafka {
        op,
        transient: matches!(e, RequestError::Kafka(c) if super::retry::is_transient_code(*c, Transient::Usual)),
        code: match e {
            RequestError::Kafka(c) => Some(format!("{c:?}")),
            RequestError::Unavailable => None,
        },
        detail: if attempts > 1 {
            format!("{e} (tried {attempts} times)")
        } else {
            e.to_string()
        },
    }
}

/// A refused group commit. A live group refuses commits from outside its
/// generation; the records are restored by then, so a rerun of the same
/// command (once the consumers stop) only commits the groups.
fn commit_error(opts: &KafkaOptions, group: &str, e: &KafkaError, attempts: u32) -> Error {
    use rdkafka::types::RDKafkaErrorCode as C;
    let live = matches!(
        e.rdkafka_error_code(),
        Some(C::UnknownMemberId | C::IllegalGeneration | C::RebalanceInProgress)
    );
    if live {
        Error::Kafka {
            op: format!("committing offsets of group {group}"),
            detail: "the group has active members on the target, and the broker refuses offsets from outside them; \
                     the records are restored: stop the group's consumers and run the same command again to commit its offsets"
                .into(),
            code: e.rdkafka_error_code().map(|c| format!("{c:?}")),
            transient: false,
        }
    } else {
        kafka_error(opts, &format!("committing offsets of group {group}"), e, attempts)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rdkafka::mocking::MockCluster;
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

    use super::*;

    fn parts() -> Vec<TopicPartition> {
        vec![TopicPartition::new("t", 0), TopicPartition::new("t", 1)]
    }

    /// A partition left out of an answer that succeeded for the others is
    /// reported with its own cause; it used to be "the broker returned no
    /// offset", which named nothing a user could act on.
    #[tokio::test]
    async fn a_partition_without_a_leader_is_named_with_its_cause() {
        let mock = MockCluster::new(1).expect("mock cluster");
        mock.create_topic("t", 2, 1).expect("topic");
        mock.partition_leader("t", 1, None).expect("leaderless");
        let mut opts = KafkaOptions::new(&mock.bootstrap_servers());
        opts.timeout = Some(Duration::from_secs(2));
        let cluster = Cluster::connect(&opts).await.expect("connect");
        let e = cluster
            .offsets(&parts(), End::Latest)
            .await
            .expect_err("no leader");
        let msg = e.to_string();
        assert!(
            msg.contains("eader") && !msg.contains("returned no offset"),
            "{msg}"
        );
    }

    /// Transient ListOffsets errors are retried; others fail at once.
    #[tokio::test]
    async fn list_offsets_retries_transient_errors_only() {
        let mock = MockCluster::new(1).expect("mock cluster");
        mock.create_topic("t", 2, 1).expect("topic");
        let cluster = Cluster::connect(&KafkaOptions::new(&mock.bootstrap_servers()))
            .await
            .expect("connect");
        mock.request_errors(
            RDKafkaApiKey::ListOffsets,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_OFFSET_NOT_AVAILABLE; 3],
        );
        assert_eq!(
            cluster.offsets(&parts(), End::Latest).await.expect("offsets"),
            vec![0, 0]
        );

        mock.request_errors(
            RDKafkaApiKey::ListOffsets,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED],
        );
        let e = cluster.offsets(&parts(), End::Latest).await.expect_err("refused");
        assert!(e.to_string().contains("uthoriz"), "{e}");
    }
}
