//! `kvault snapshot`, `ls`, `dump`, `diff`: Kafka snapshots.

use anyhow::Result;
use clap::Args;
use kvault::error::exit;
use kvault::kafka::KafkaOptions;
use kvault::ops::snapshot::{SnapshotOptions, connect_early, snapshot, snapshot_connecting};
use serde_json::json;

use super::Ctx;
use super::output::human_bytes;

/// How to reach a Kafka cluster (as kcat takes it).
#[derive(Debug, Args, Clone)]
pub struct KafkaArgs {
    /// Bootstrap servers, host:port[,host:port].
    #[arg(short = 'b', long, env = "KVAULT_BROKERS")]
    brokers: String,
    /// A librdkafka property (repeatable), e.g. -X security.protocol=SASL_SSL.
    #[arg(short = 'X', value_name = "KEY=VALUE")]
    properties: Vec<String>,
    /// A file of librdkafka properties (key=value lines).
    #[arg(long, env = "KVAULT_KAFKA_CONFIG", value_name = "FILE")]
    kafka_config: Option<String>,
    /// How long transient broker errors are retried (default 2m); also how
    /// long the first connection may take (default 8s).
    #[arg(long, env = "KVAULT_KAFKA_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    kafka_timeout: Option<std::time::Duration>,
    /// How to authenticate beyond librdkafka's properties: msk-iam (AWS
    /// MSK IAM over SASL_SSL/OAUTHBEARER, credentials from the AWS default
    /// chain: environment, profile, web identity / IRSA, ECS, EC2).
    #[arg(long, env = "KVAULT_KAFKA_AUTH", value_name = "METHOD")]
    kafka_auth: Option<KafkaAuth>,
    /// The MSK cluster's AWS region (default: AWS_REGION, AWS_DEFAULT_REGION,
    /// or the region in the brokers' host names).
    #[arg(long, env = "KVAULT_MSK_REGION", value_name = "REGION")]
    msk_region: Option<String>,
    /// SASL/OAUTHBEARER with the token this shell command prints (a JWT's
    /// exp and sub give its lifetime and principal), run again before it
    /// expires.
    #[arg(
        long,
        env = "KVAULT_KAFKA_TOKEN_COMMAND",
        value_name = "COMMAND",
        conflicts_with = "kafka_auth"
    )]
    kafka_token_command: Option<String>,
}

/// `--kafka-auth` methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KafkaAuth {
    /// librdkafka's properties say everything (the default).
    Properties,
    /// AWS MSK IAM.
    MskIam,
}

/// The AWS region an MSK broker's host name names
/// (`b-1.c.x1.kafka.eu-west-1.amazonaws.com:9098`).
fn region_of(brokers: &str) -> Option<String> {
    brokers.split(',').find_map(|b| {
        let host = b.trim().rsplit_once(':').map_or(b.trim(), |(h, _)| h);
        let rest = host.split(".kafka.").nth(1)?;
        let region = rest.strip_suffix(".amazonaws.com")?;
        (!region.is_empty() && !region.contains('.')).then(|| region.to_string())
    })
}

impl KafkaArgs {
    pub fn options(&self) -> Result<KafkaOptions> {
        let mut o = KafkaOptions::new(&self.brokers);
        if let Some(f) = &self.kafka_config {
            o = o.with_properties_file(f)?;
        }
        for (k, v) in super::config::kafka_properties() {
            o = o.with_property(&format!("{k}={v}"))?;
        }
        for p in &self.properties {
            o = o.with_property(p)?;
        }
        o.timeout = self.kafka_timeout;
        use kvault::kafka::auth::{TokenKind, Tokens};
        if let Some(cmd) = &self.kafka_token_command {
            o.tokens = Some(Tokens::new(TokenKind::Command(cmd.clone())));
        } else if self.kafka_auth == Some(KafkaAuth::MskIam) {
            let region = self
                .msk_region
                .clone()
                .or_else(|| std::env::var("AWS_REGION").ok())
                .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
                .filter(|r| !r.is_empty())
                .or_else(|| region_of(&self.brokers))
                .ok_or_else(|| {
                    super::Usage(
                        "--kafka-auth msk-iam needs the cluster's region: --msk-region or AWS_REGION".into(),
                    )
                })?;
            o.tokens = Some(Tokens::new(TokenKind::MskIam { region }));
        }
        built_with(&o)?;
        Ok(o)
    }
}

/// Refuses, in one line, an authentication method the linked librdkafka
/// lacks (cargo features `gssapi`, `oidc`; docs/operations.md "Builds and
/// authentication methods"), instead of librdkafka's "recompile" advice.
/// Decided by librdkafka's own `builtin.features`, not by the cargo
/// feature alone: what counts is what was linked.
fn built_with(o: &KafkaOptions) -> Result<()> {
    built_with_features(o, &kvault::kafka::client_library().builtin_features)
}

fn built_with_features(o: &KafkaOptions, builtin: &[String]) -> Result<()> {
    let prop = |k: &str| o.properties.get(k).map(|v| v.trim().to_ascii_lowercase());
    let has = |f: &str| builtin.iter().any(|b| b == f);
    if prop("sasl.mechanism")
        .or_else(|| prop("sasl.mechanisms"))
        .as_deref()
        == Some("gssapi")
        && !has("sasl_gssapi")
    {
        return Err(super::Usage(
            "sasl.mechanism=GSSAPI: this kvault was built without Kerberos; use the container image or `cargo install --features gssapi` (needs libsasl2-dev)".into(),
        )
        .into());
    }
    if prop("sasl.oauthbearer.method").as_deref() == Some("oidc") && !has("oidc") {
        return Err(super::Usage(
            "sasl.oauthbearer.method=oidc: this kvault was built without librdkafka's OIDC client; use the container image, `cargo install --features oidc` (needs libcurl4-openssl-dev) or --kafka-token-command".into(),
        )
        .into());
    }
    Ok(())
}

/// Topic globs plus `--topic-regex` expressions, as one pattern list.
pub(super) fn with_regexes(mut globs: Vec<String>, regexes: &[String]) -> Vec<String> {
    globs.extend(
        regexes
            .iter()
            .map(|r| format!("{}{r}", kvault::kafka::filter::REGEX_PREFIX)),
    );
    globs
}

#[derive(Debug, Args)]
pub struct SnapshotArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    /// Topics to include (glob, repeatable; default all non-internal topics).
    #[arg(long = "topic", value_name = "PATTERN")]
    topics: Vec<String>,
    /// Topics to include by regular expression matching the whole name
    /// (repeatable; adds to --topic).
    #[arg(long = "topic-regex", value_name = "REGEX")]
    topic_regex: Vec<String>,
    /// Topics to exclude (glob, repeatable).
    #[arg(long = "exclude", value_name = "PATTERN")]
    exclude: Vec<String>,
    /// Consumer groups to capture (glob, repeatable; default all).
    #[arg(long = "group", value_name = "PATTERN")]
    groups: Vec<String>,
    /// Tag the snapshot (repeatable).
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// Print the plan (per partition: reuse, read which offsets, keep which
    /// segments) and stop; nothing is read or written.
    #[arg(long)]
    dry_run: bool,
    /// Keep running: take an incremental snapshot every DURATION (e.g. 5m),
    /// logging each result. SIGTERM or SIGINT lets the snapshot in progress
    /// finish, then exits; a second signal aborts it.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, conflicts_with = "dry_run")]
    every: Option<std::time::Duration>,
    /// Snapshot shard K of N (0-based) of a sharded run: the partitions the
    /// assignment gives shard K. The run becomes one snapshot when its last
    /// shard finishes (docs/scale.md).
    #[arg(long, value_name = "K/N", conflicts_with_all = ["shards", "every"])]
    shard: Option<String>,
    /// A sharded run of N shards; this process's K is JOB_COMPLETION_INDEX
    /// (a Kubernetes Indexed Job).
    #[arg(long, value_name = "N", conflicts_with = "every")]
    shards: Option<u32>,
    /// The run's id, the same for every shard (default: the current UTC
    /// hour, e.g. 2026-11-29T02).
    #[arg(long, env = "KVAULT_RUN", value_name = "ID")]
    run: Option<String>,
}

impl SnapshotArgs {
    /// `--shard K/N`, or `--shards N` with K from JOB_COMPLETION_INDEX.
    fn shard_spec(&self) -> Result<Option<kvault::ops::snapshot::shard::ShardSpec>> {
        let Some((spec, flag)) = shard_arg(&self.shard, self.shards)? else {
            return Ok(None);
        };
        let run = self.run.clone().unwrap_or_else(|| {
            let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
            now.get(..13).unwrap_or(&now).to_string()
        });
        kvault::ops::snapshot::shard::ShardSpec::parse(&spec, &run)
            .map(Some)
            .map_err(|e| match &e {
                kvault::Error::BadValue { what: "run id", .. } => super::flag_error("--run", e),
                _ => super::flag_error(flag, e),
            })
    }
}

impl SnapshotArgs {
    /// Whether the command handles SIGTERM itself (`--every`).
    pub fn handles_signals(&self) -> bool {
        self.every.is_some()
    }
}

pub async fn run_snapshot(ctx: &Ctx, a: SnapshotArgs) -> Result<i32> {
    if let Some(every) = a.every {
        return run_every(ctx, a, every).await;
    }
    let shard = a.shard_spec()?;
    let kafka = a.kafka.options()?;
    // Reach the cluster while the key is derived.
    let connecting = connect_early(&kafka);
    let repo = match ctx.open().await {
        Ok(r) => r,
        Err(e) => {
            let _ = connecting.finish().await;
            return Err(e);
        }
    };
    let opts = SnapshotOptions {
        kafka,
        topics: with_regexes(a.topics, &a.topic_regex),
        exclude: a.exclude,
        groups: a.groups,
        tags: a.tags,
        shard,
    };
    let bar = ctx.out.progress();
    if a.dry_run {
        let plan = kvault::ops::snapshot::dry_run(&repo, connecting, &opts, &bar).await?;
        ctx.out.emit("snapshot_plan", json!(plan), || {
            let reads: Vec<_> = plan.partitions.iter().filter(|p| p.reads()).collect();
            let reused = plan.partitions.iter().filter(|p| p.reuse.is_some()).count();
            let records: i64 = reads.iter().map(|p| p.end - p.start).sum();
            let mut s = format!(
                "would snapshot cluster {}{}\n  {} topic(s), {} partition(s): {} unchanged, {} to read ({} records)",
                plan.cluster_id,
                plan.parent.map(|p| format!(" (incremental to {})", p.short())).unwrap_or_default(),
                plan.topics.len(),
                plan.partitions.len(),
                reused,
                reads.len(),
                records,
            );
            for p in &reads {
                s.push_str(&format!(
                    "\n  {}/{}: read {}..{}, keep {} segment(s)",
                    p.topic,
                    p.partition,
                    p.start,
                    p.end,
                    p.kept.len()
                ));
            }
            for w in &plan.warnings {
                s.push_str(&format!("\n  warning: {w}"));
            }
            s
        });
        return Ok(exit::OK);
    }
    let r = snapshot_connecting(&repo, connecting, &opts, &bar).await?;
    Ok(print_summary(ctx, &r))
}

/// Prints a snapshot's summary; returns the exit code it deserves.
fn print_summary(ctx: &Ctx, r: &kvault::SnapshotResult) -> i32 {
    use super::metrics::set;
    super::metrics::set_cluster(&r.cluster_id);
    set(
        "kvault_snapshot_records_read",
        "Records read by the last snapshot.",
        r.records_read as f64,
    );
    set(
        "kvault_snapshot_bytes_read",
        "Encoded bytes read by the last snapshot.",
        r.bytes_read as f64,
    );
    set(
        "kvault_snapshot_new_bytes_stored",
        "New bytes stored by the last snapshot.",
        r.new_bytes_stored as f64,
    );
    set(
        "kvault_snapshot_partitions",
        "Partitions in the last snapshot.",
        r.partitions as f64,
    );
    set(
        "kvault_snapshot_groups",
        "Consumer groups in the last snapshot.",
        r.groups as f64,
    );
    set(
        "kvault_snapshot_commits",
        "Offset commits captured by the last snapshot.",
        r.commits as f64,
    );
    set(
        "kvault_snapshot_expired_offsets",
        "Offsets that expired before any snapshot read them (last snapshot).",
        r.expired_offsets as f64,
    );
    ctx.out.emit("summary", json!(r), || {
        format!(
            "snapshot {} of cluster {} saved{}\n  {} topic(s), {} partition(s) ({} read), {} group(s)\n  read {} records ({}), stored {} new; {} already in the repository\n  {} records in the image; {:.1} s",
            r.snapshot.short(),
            r.cluster_id,
            r.parent.map(|p| format!(" (incremental to {})", p.short())).unwrap_or_default(),
            r.topics,
            r.partitions,
            r.partitions_read,
            r.groups,
            r.records_read,
            human_bytes(r.bytes_read),
            human_bytes(r.new_bytes_stored),
            human_bytes(r.dedup_saved_bytes),
            r.records_total,
            r.seconds
        ) + &r
            .cluster_state
            .map(|c| {
                format!(
                    "\n  cluster state: {} ACL binding(s), {} SCRAM user(s), {} quota entit(ies), {} broker config(s)",
                    c.acls, c.scram_users, c.quotas, c.broker_configs
                )
            })
            .unwrap_or_default()
            + &match (r.run_snapshot, r.run_waiting.as_slice()) {
            (Some(id), _) => format!("\n  the run is complete: snapshot {}", id.short()),
            (None, []) => String::new(),
            (None, w) => format!(
                "\n  the run waits for shard(s) {}",
                w.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
            ),
        }
    });
    // Saved, but with data lost to retention: alertable (README "Exit codes").
    if r.expired_offsets > 0 {
        exit::INCOMPLETE
    } else {
        exit::OK
    }
}

/// `snapshot --every`: a snapshot per tick until a signal. A failed
/// snapshot is reported and the next tick tries again; the exit code is
/// that of the last snapshot.
async fn run_every(ctx: &Ctx, a: SnapshotArgs, every: std::time::Duration) -> Result<i32> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let repo = ctx.open().await?;
    let opts = SnapshotOptions {
        kafka: a.kafka.options()?,
        topics: with_regexes(a.topics, &a.topic_regex),
        exclude: a.exclude,
        groups: a.groups,
        tags: a.tags,
        shard: None,
    };
    let signals = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(tokio::sync::Notify::new());
    // The second signal drops the snapshot in progress (its partial outputs
    // are removed) and returns to `main`, which joins the runtime before it
    // exits: `exit` from here would run the C exit handlers while other
    // threads still use librdkafka.
    let abort = Arc::new(tokio::sync::Notify::new());
    {
        let (signals, stop, abort) = (signals.clone(), stop.clone(), abort.clone());
        tokio::spawn(async move {
            loop {
                let s = super::signal().await;
                if signals.fetch_add(1, Ordering::SeqCst) == 0 {
                    eprintln!("kvault: {s}: stopping after the snapshot in progress (again to abort)");
                    stop.notify_waiters();
                    stop.notify_one();
                } else {
                    eprintln!("kvault: interrupted ({s})");
                    abort.notify_one();
                }
            }
        });
    }
    ctx.out.note(&format!(
        "taking a snapshot every {}; SIGTERM stops after the one in progress",
        humantime::format_duration(every)
    ));
    let mut code = exit::OK;
    let mut next = tokio::time::Instant::now();
    while signals.load(Ordering::SeqCst) == 0 {
        // Printed once the loop has committed to this tick: a signal from
        // here on finds the snapshot in progress.
        ctx.out.note(&format!(
            "snapshot started at {}",
            humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        ));
        let bar = ctx.out.progress();
        let started = std::time::Instant::now();
        let taken = tokio::select! {
            r = snapshot(&repo, &opts, &bar) => r,
            () = abort.notified() => return Ok(exit::INTERRUPTED),
        };
        code = match taken {
            Ok(r) => print_summary(ctx, &r),
            Err(e) => super::report(&anyhow::Error::new(e), ctx.out.json),
        };
        let sinks = ctx.metrics();
        if let Err(e) = super::metrics::emit(&sinks, "snapshot", code, started.elapsed().as_secs_f64()).await
        {
            eprintln!("kvault: {e:#}");
        }
        if signals.load(Ordering::SeqCst) > 0 {
            break;
        }
        // The next tick; ticks missed by a long snapshot are skipped.
        let now = tokio::time::Instant::now();
        while next <= now {
            next += every;
        }
        tokio::select! {
            () = tokio::time::sleep_until(next) => {}
            () = stop.notified() => break,
        }
    }
    Ok(code)
}

async fn load_kafka(
    ctx: &Ctx,
    snap: &str,
    segments: bool,
) -> Result<(kvault::Repository, kvault::Id, kvault::Manifest)> {
    let repo = ctx.open().await?;
    // Under a shared lock: a prune cannot remove trees while they are read.
    let (id, m) = ctx
        .reading(&repo, || async {
            repo.load_index().await?;
            kvault::ops::ls::load_kafka(&repo, snap, segments).await
        })
        .await?;
    Ok((repo, id, m))
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Snapshot id, unique prefix, or `latest`.
    snapshot: String,
}

pub async fn run_ls(ctx: &Ctx, a: LsArgs) -> Result<i32> {
    let (repo, _, m) = load_kafka(ctx, &a.snapshot, true).await?;
    let state = ctx.reading(&repo, || m.cluster_state(&repo)).await?;
    let listing = kvault::ops::ls::ls(&m);
    for t in &listing.topics {
        ctx.out
            .emit("topic", json!({"topic": t.topic, "meta": t.meta}), || {
                let cfg: Vec<String> = t.meta.configs.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!(
                    "topic {}  partitions={} replication={}{}",
                    t.topic,
                    t.meta.partitions,
                    t.meta.replication_factor,
                    if cfg.is_empty() {
                        String::new()
                    } else {
                        format!("  {}", cfg.join(" "))
                    }
                )
            });
        for p in &t.partitions {
            ctx.out.emit("partition", json!(p), || {
                let g: Vec<String> = p
                    .gap_causes
                    .iter()
                    .flat_map(|(cause, v)| v.iter().map(move |g| format!("{}..{} ({cause})", g[0], g[1])))
                    .collect();
                let open: Vec<String> = p
                    .open_transactions
                    .iter()
                    .map(|o| format!("from {} (producer {})", o.first_offset, o.producer_id))
                    .collect();
                format!(
                    "  {:>4}  offsets {}..{}  {} records in {} segment(s), {} chunk(s){}{}",
                    p.partition,
                    p.log_start,
                    p.end,
                    p.records,
                    p.segments,
                    p.chunks,
                    if g.is_empty() {
                        String::new()
                    } else {
                        format!("  gaps {}", g.join(" "))
                    },
                    if open.is_empty() {
                        String::new()
                    } else {
                        format!("  open transactions {}", open.join(", "))
                    }
                )
            });
        }
    }
    for g in &listing.groups {
        ctx.out.emit("group", json!(g), || {
            format!("group {}  {}", g.group, offsets_text(&g.offsets))
        });
    }
    if let Some(s) = &state {
        ctx.out.emit("cluster_state", json!(s), || s.report());
    }
    Ok(exit::OK)
}

/// A group's offsets as `topic/partition=offset ...`.
fn offsets_text(offsets: &[kvault::ops::ls::GroupOffset]) -> String {
    offsets
        .iter()
        .map(|o| format!("{}/{}={}", o.topic, o.partition, o.offset))
        .collect::<Vec<_>>()
        .join(" ")
}

fn parse_time_ms(s: &str) -> Result<i64> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    let t = humantime::parse_rfc3339_weak(s)
        .map_err(|e| anyhow::anyhow!("{s:?} is not RFC 3339 or epoch milliseconds: {e}"))?;
    let d = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| anyhow::anyhow!("{s:?}: {e}"))?;
    Ok(i64::try_from(d.as_millis())?)
}

#[derive(Debug, Args)]
pub struct DumpArgs {
    /// Snapshot id, unique prefix, or `latest`.
    snapshot: String,
    /// Topic to dump.
    #[arg(long)]
    topic: String,
    /// Only this partition.
    #[arg(long)]
    partition: Option<i32>,
    /// First offset (inclusive).
    #[arg(long)]
    from_offset: Option<i64>,
    /// Last offset (exclusive).
    #[arg(long)]
    to_offset: Option<i64>,
    /// Earliest timestamp (RFC 3339 or epoch ms, inclusive).
    #[arg(long)]
    from_time: Option<String>,
    /// Latest timestamp (RFC 3339 or epoch ms, inclusive).
    #[arg(long)]
    to_time: Option<String>,
}

pub async fn run_dump(ctx: &Ctx, a: DumpArgs) -> Result<i32> {
    use std::io::Write;
    let (repo, _, m) = load_kafka(ctx, &a.snapshot, true).await?;
    let opts = kvault::ops::dump::DumpOptions {
        topic: a.topic,
        partition: a.partition,
        filter: kvault::ops::dump::RecordFilter {
            from_offset: a.from_offset,
            to_offset: a.to_offset,
            from_time: a.from_time.as_deref().map(parse_time_ms).transpose()?,
            to_time: a.to_time.as_deref().map(parse_time_ms).transpose()?,
        },
    };
    let mut print = |d: kvault::ops::dump::DumpedRecord| -> kvault::Result<()> {
        let line = serde_json::to_string(&d).map_err(kvault::Error::encode)?;
        let mut out = std::io::stdout().lock();
        if let Err(e) = writeln!(out, "{line}") {
            super::output::quit_on_broken_pipe(&e);
            return Err(kvault::Error::io("writing output", e));
        }
        Ok(())
    };
    // Records stream out as they are read: hold a shared lock throughout,
    // so a prune cannot cut the output short.
    ctx.reading(&repo, || kvault::ops::dump::dump(&repo, &m, &opts, &mut print))
        .await?;
    Ok(exit::OK)
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The older snapshot.
    a: String,
    /// The newer snapshot.
    b: String,
}

pub async fn run_diff(ctx: &Ctx, a: DiffArgs) -> Result<i32> {
    use kvault::ops::ls::Change;
    let (repo, ia, ma) = load_kafka(ctx, &a.a, false).await?;
    let (_, ib, mb) = load_kafka(ctx, &a.b, false).await?;
    let (sa, sb) = ctx
        .reading(&repo, || async {
            Ok((ma.cluster_state(&repo).await?, mb.cluster_state(&repo).await?))
        })
        .await?;
    ctx.out
        .note(&format!("comparing {} with {}", ia.short(), ib.short()));
    for c in kvault::ops::ls::diff(&ma, &mb) {
        match c {
            Change::TopicRemoved(n) => ctx
                .out
                .emit("diff", json!({"topic": n, "change": "removed"}), || {
                    format!("-  topic {n}")
                }),
            Change::TopicAdded(n) => ctx.out.emit("diff", json!({"topic": n, "change": "added"}), || {
                format!("+  topic {n}")
            }),
            Change::Settings { topic, before, after } => ctx.out.emit(
                "diff",
                json!({"topic": topic, "change": "settings", "before": before, "after": after}),
                || format!("M  topic {topic}: settings changed"),
            ),
            Change::Records {
                topic,
                partition,
                before,
                after,
            } => ctx.out.emit(
                "diff",
                json!({"topic": topic, "partition": partition, "change": "records", "before": before, "after": after}),
                || {
                    format!(
                        "M  {topic}/{partition}: offsets {}..{} -> {}..{}, records {} -> {}",
                        before.log_start, before.end, after.log_start, after.end, before.records, after.records
                    )
                },
            ),
            Change::Group { group, before, after } => {
                ctx.out
                    .emit("diff", json!({"group": group, "before": before, "after": after}), || {
                        let fmt = |v: &Option<Vec<kvault::ops::ls::GroupOffset>>| {
                            v.as_deref().map_or("-".to_string(), offsets_text)
                        };
                        format!("M  group {group}: {} -> {}", fmt(&before), fmt(&after))
                    });
            }
        }
    }
    // The cluster's own state, when both snapshots hold one.
    if let (Some(sa), Some(sb)) = (&sa, &sb) {
        for c in sa.diff(sb) {
            ctx.out.emit("diff", json!({"cluster_state": c}), || {
                format!("{}  {} {}", c.change, c.kind.name(), c.what)
            });
        }
    }
    Ok(exit::OK)
}

/// What a restore writes, as `restore`, `verify` and `drill` select it:
/// the snapshot, the cluster, the topics and groups, the time and the
/// offset mode.
#[derive(Debug, Args)]
pub struct RestoreSelection {
    /// Snapshot id, unique prefix, or `latest` (the default).
    #[arg(default_value = "latest")]
    pub(super) snapshot: String,
    #[command(flatten)]
    pub(super) kafka: KafkaArgs,
    /// Source topics (glob, repeatable; default all).
    #[arg(long = "topic", value_name = "PATTERN")]
    topics: Vec<String>,
    /// Source topics by regular expression matching the whole name
    /// (repeatable; adds to --topic).
    #[arg(long = "topic-regex", value_name = "REGEX")]
    topic_regex: Vec<String>,
    /// Consumer groups (glob, repeatable; default all).
    #[arg(long = "group", value_name = "PATTERN")]
    groups: Vec<String>,
    /// No consumer-group offsets.
    #[arg(long)]
    no_groups: bool,
    /// The log as of this time: RFC 3339, epoch milliseconds, or relative ("2h ago").
    #[arg(long, value_name = "TIME")]
    at: Option<String>,
    /// Compacted topics with every record the repository holds, instead
    /// of only the latest value per key.
    #[arg(long)]
    no_compact: bool,
    /// Where records land: `translate` (after what the target holds; group
    /// offsets translated) or `exact` (at their source offsets, gaps
    /// reproduced with placeholders and transaction markers, group offsets
    /// verbatim; a restore needs every target partition new).
    #[arg(long, value_name = "MODE", default_value = "translate", value_parser = ["translate", "exact"])]
    offsets: String,
}

impl RestoreSelection {
    /// The library's restore options for this selection, with the target
    /// names `--rename` and `--prefix` give; the rest at their defaults.
    pub(super) fn options(
        &self,
        rename: &[String],
        prefix: &str,
    ) -> Result<kvault::ops::restore::RestoreOptions> {
        Ok(kvault::ops::restore::RestoreOptions {
            kafka: self.kafka.options()?,
            topics: with_regexes(self.topics.clone(), &self.topic_regex),
            rename: from_to_pairs("--rename", rename)?,
            prefix: prefix.to_string(),
            groups: self.groups.clone(),
            no_groups: self.no_groups,
            at: self.at.as_deref().map(parse_at).transpose()?,
            no_compact: self.no_compact,
            offsets: super::flag_value("--offsets", &self.offsets)?,
            ..Default::default()
        })
    }
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    sel: RestoreSelection,
    /// Restore topic FROM as TO (repeatable).
    #[arg(long = "rename", value_name = "FROM=TO")]
    rename: Vec<String>,
    /// Prefix every target topic name.
    #[arg(long, default_value = "")]
    prefix: String,
    /// Commit group offsets even if the group has active members on the target.
    #[arg(long)]
    force: bool,
    /// Print the plan (topics, partitions, records, group offsets) and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Where resume state is kept (default ~/.local/state/kvault/restore).
    #[arg(long, env = "KVAULT_STATE_DIR", value_name = "DIR")]
    state_dir: Option<std::path::PathBuf>,
    /// A target partition that already holds records: fail (nothing is
    /// written), append after them, or purge them first (DeleteRecords).
    #[arg(long, value_name = "POLICY", default_value = "fail", value_parser = ["fail", "append", "purge"])]
    if_not_empty: String,
    /// Restore into existing topics with a different partition count,
    /// spreading records by key (the Java client's murmur2; keyless records
    /// round-robin). Group offsets become approximate across partitions.
    #[arg(long)]
    repartition: bool,
    /// Produce at most this many records per second.
    #[arg(long, value_name = "N")]
    max_records_per_sec: Option<u64>,
    /// Produce at most this many bytes (keys, values, headers) per second;
    /// suffixes K, M, G (powers of 1024).
    #[arg(long, value_name = "BYTES", value_parser = super::size::parse_size)]
    max_bytes_per_sec: Option<u64>,
    /// Restore no cluster state (ACLs, SCRAM users, quotas, broker
    /// configs): records, topics and groups only.
    #[arg(long, conflicts_with = "metadata_only")]
    no_metadata: bool,
    /// Restore only the cluster state (ACLs, SCRAM users, quotas, broker
    /// configs), before any topic: no record is written.
    #[arg(long)]
    metadata_only: bool,
    /// Rewrite a principal of restored ACLs (and quota users) for a target
    /// with other identities: `User:alice=User:dr-alice` (repeatable).
    #[arg(long = "acl-principal-map", value_name = "FROM=TO")]
    acl_principal_map: Vec<String>,
    /// Passwords of the SCRAM users to re-create, one `USER MECHANISM
    /// PASSWORD` a line (Kafka never returns credentials, so users without
    /// one are listed, not re-created).
    #[arg(long, env = "KVAULT_SCRAM_CREDENTIALS", value_name = "FILE")]
    scram_credentials: Option<std::path::PathBuf>,
    /// A quota, broker config or SCRAM user the target has with another
    /// value: `keep` it (and report it) or `replace` it.
    #[arg(long, value_name = "POLICY", default_value = "keep", value_parser = ["keep", "replace"])]
    if_exists: String,
    /// Restore worker K of N (0-based): the partitions the assignment gives
    /// K, each worker resumable on its own; a group is committed by the
    /// worker that completes its last partition (docs/scale.md).
    #[arg(long, value_name = "K/N", conflicts_with = "shards")]
    shard: Option<String>,
    /// A restore by N workers; this process's K is JOB_COMPLETION_INDEX
    /// (a Kubernetes Indexed Job).
    #[arg(long, value_name = "N")]
    shards: Option<u32>,
}

/// `--shard K/N` as given, or `--shards N` with K from
/// JOB_COMPLETION_INDEX; the flag it came from.
fn shard_arg(shard: &Option<String>, shards: Option<u32>) -> Result<Option<(String, &'static str)>> {
    Ok(match (shard, shards) {
        (Some(s), _) => Some((s.clone(), "--shard")),
        (None, Some(n)) => {
            let k = std::env::var("JOB_COMPLETION_INDEX").map_err(|_| {
                super::Usage("--shards N takes its shard index from JOB_COMPLETION_INDEX, which is not set (or give --shard K/N)".into())
            })?;
            Some((format!("{}/{n}", k.trim()), "--shards"))
        }
        (None, None) => None,
    })
}

/// Parses `--at`: RFC 3339, epoch milliseconds, or "DURATION ago".
pub(super) fn parse_at(s: &str) -> Result<i64> {
    if let Some(d) = s.trim().strip_suffix("ago") {
        let d = humantime::parse_duration(d.trim()).map_err(|e| anyhow::anyhow!("--at {s:?}: {e}"))?;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
        return Ok(i64::try_from(now.saturating_sub(d).as_millis())?);
    }
    parse_time_ms(s)
}

pub async fn run_restore(ctx: &Ctx, a: RestoreArgs) -> Result<i32> {
    super::metrics::set_cluster(&a.sel.kafka.brokers);
    let repo = ctx.open().await?;
    let id = repo.find_id(kvault::FileKind::Snapshot, &a.sel.snapshot).await?;
    let opts = restore_options(a)?;
    let bar = ctx.out.progress();
    let r = kvault::ops::restore::restore(&repo, &id, &opts, &bar).await?;
    restore_metrics(&r);
    if let Some(g) = &r.groups_from {
        ctx.out.note(g);
    }
    for w in &r.warnings {
        ctx.out.note(&format!("warning: {w}"));
    }
    let kind = if r.dry_run { "restore_plan" } else { "restore" };
    ctx.out.emit(kind, json!(r), || restore_text(&r));
    Ok(exit::OK)
}

/// `FROM=TO` values of `flag` (`--rename`, `--acl-principal-map`) as pairs.
pub(super) fn from_to_pairs(flag: &str, values: &[String]) -> Result<Vec<(String, String)>> {
    values
        .iter()
        .map(|m| {
            m.split_once('=')
                .map(|(f, t)| (f.to_string(), t.to_string()))
                .ok_or_else(|| anyhow::anyhow!("{flag} {m:?} is not FROM=TO"))
        })
        .collect()
}

/// The library's restore options from the command line.
fn restore_options(a: RestoreArgs) -> Result<kvault::ops::restore::RestoreOptions> {
    let base = a.sel.options(&a.rename, &a.prefix)?;
    let acl_principal_map = from_to_pairs("--acl-principal-map", &a.acl_principal_map)?;
    let scram_credentials = match &a.scram_credentials {
        Some(f) => {
            let text = std::fs::read_to_string(f)
                .map_err(|e| anyhow::anyhow!("--scram-credentials {}: {e}", f.display()))?;
            kvault::ops::restore::parse_scram_credentials(&text)
                .map_err(|e| super::flag_error("--scram-credentials", e))?
        }
        None => Vec::new(),
    };
    let metadata = match (a.no_metadata, a.metadata_only) {
        (true, _) => kvault::ops::restore::Metadata::Without,
        (_, true) => kvault::ops::restore::Metadata::Only,
        _ => kvault::ops::restore::Metadata::With,
    };
    let shard = match shard_arg(&a.shard, a.shards)? {
        Some((spec, flag)) => {
            Some(kvault::ops::snapshot::shard::Share::parse(&spec).map_err(|e| super::flag_error(flag, e))?)
        }
        None => None,
    };
    Ok(kvault::ops::restore::RestoreOptions {
        force: a.force,
        dry_run: a.dry_run,
        state_dir: a.state_dir,
        if_not_empty: super::flag_value("--if-not-empty", &a.if_not_empty)?,
        repartition: a.repartition,
        max_records_per_sec: a.max_records_per_sec,
        max_bytes_per_sec: a.max_bytes_per_sec,
        metadata,
        acl_principal_map,
        scram_credentials,
        if_exists: super::flag_value("--if-exists", &a.if_exists)?,
        shard,
        ..base
    })
}

/// The restore's figures for `--metrics-file` / `--metrics-push`.
fn restore_metrics(r: &kvault::ops::restore::RestoreResult) {
    use super::metrics::set;
    set(
        "kvault_restore_records_written",
        "Records the last restore wrote and the target confirmed.",
        r.records_written as f64,
    );
    set(
        "kvault_restore_partitions",
        "Partitions the last restore wrote.",
        r.partitions.len() as f64,
    );
    set(
        "kvault_restore_groups",
        "Group offsets the last restore committed.",
        r.groups.len() as f64,
    );
}

/// The restore (or its plan) for humans: topics created, targets that held
/// records, each partition's records and offsets, spread partitions, and
/// each group's translated offset.
fn restore_text(r: &kvault::ops::restore::RestoreResult) -> String {
    let mut s = String::new();
    let verb = if r.dry_run { "would restore" } else { "restored" };
    for t in &r.created_topics {
        s.push_str(&format!(
            "{} topic {t}\n",
            if r.dry_run { "would create" } else { "created" }
        ));
    }
    for n in &r.non_empty {
        let purged = if r.purged_records > 0 { " (purged)" } else { "" };
        s.push_str(&format!("target {n} before the restore{purged}\n"));
    }
    let from = |t: Option<i64>| t.map(|t| format!(", target from offset {t}")).unwrap_or_default();
    for p in &r.partitions {
        s.push_str(&format!(
            "{verb} {}/{} -> {}/{}: {} records (source offsets {}..{}){}{}\n",
            p.source_topic,
            p.partition,
            p.target_topic,
            p.target_partition.map_or("*".to_string(), |q| q.to_string()),
            p.records,
            p.source_range[0],
            p.source_range[1],
            from(p.target_start),
            if p.compacted_away > 0 {
                format!(", {} compacted away", p.compacted_away)
            } else {
                String::new()
            }
        ));
        if let Some(e) = &p.exact {
            s.push_str(&format!(
                "  at the source offsets: log start {}, end {}, {} gap(s) by as many transactions, {} placeholder(s)\n",
                e.log_start, e.end, e.transactions, e.placeholders
            ));
        }
    }
    for sp in &r.spread {
        s.push_str(&format!(
            "  spread by key into {}/{}: {} records{}\n",
            sp.topic,
            sp.partition,
            sp.records,
            from(sp.target_start)
        ));
    }
    for g in &r.groups {
        let source = if g.approximate {
            "first record not consumed (approximate across partitions)".to_string()
        } else {
            format!("source offset {}", g.source_offset)
        };
        s.push_str(&format!(
            "group {} {}/{}: {source} -> target offset {}\n",
            g.group,
            g.topic,
            g.partition,
            g.target_offset.map_or("?".into(), |t| t.to_string())
        ));
    }
    if let Some(m) = &r.metadata {
        s.push_str(&metadata_text(m, r.dry_run));
    }
    if let Some(o) = &r.shard {
        s.push_str(&format!("worker {} of {}", o.index, o.count));
        if !r.dry_run {
            s.push_str(&format!(
                ": {} of {} partitions of the restore are in",
                o.partitions_done, o.partitions_total
            ));
            if !o.groups_waiting.is_empty() {
                s.push_str(&format!(
                    "; groups waiting for other workers: {}",
                    o.groups_waiting.join(", ")
                ));
            }
        }
        s.push('\n');
    }
    // `--metadata-only` writes no record: no line about records.
    let records = !(r.partitions.is_empty() && r.spread.is_empty() && r.metadata.is_some());
    if !r.dry_run && records {
        s.push_str(&format!(
            "{} records written and confirmed by the target",
            r.records_written
        ));
    }
    s.trim_end().to_string()
}

/// The cluster-state lines of a restore's text output.
fn metadata_text(m: &kvault::ops::restore::MetadataResult, dry_run: bool) -> String {
    let (created, set) = if dry_run {
        ("would create", "would set")
    } else {
        ("created", "set")
    };
    let lists: [(String, &[String]); 7] = [
        (format!("{created} ACL"), &m.acls_created),
        (format!("{created} SCRAM user"), &m.users_created),
        (format!("{set} quota"), &m.quotas_set),
        (format!("{set} broker config"), &m.configs_set),
        ("conflict:".into(), &m.conflicts),
        ("not re-created: SCRAM user".into(), &m.users_not_created),
        ("not restored:".into(), &m.not_restored),
    ];
    let mut s = String::new();
    for (i, (what, items)) in lists.iter().enumerate() {
        for x in *items {
            s.push_str(&format!("{what} {x}\n"));
        }
        if i == 0 && m.acls_present > 0 {
            s.push_str(&format!(
                "{} ACL binding(s) already on the target\n",
                m.acls_present
            ));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::{KafkaOptions, built_with, built_with_features, region_of};

    /// An authentication method the linked librdkafka lacks is refused up
    /// front, naming the cargo feature; one it has passes.
    #[test]
    fn methods_librdkafka_lacks_are_refused_naming_the_feature() {
        let with = |k: &str, v: &str| {
            KafkaOptions::new("b:9092")
                .with_property(&format!("{k}={v}"))
                .unwrap()
        };
        let (gssapi, oidc) = (
            with("sasl.mechanism", "GSSAPI"),
            with("sasl.oauthbearer.method", "OIDC"),
        );
        let plain: Vec<String> = vec!["sasl_scram".into(), "sasl_oauthbearer".into()];
        let e = built_with_features(&gssapi, &plain).unwrap_err().to_string();
        assert!(e.contains("--features gssapi"), "{e}");
        let e = built_with_features(&oidc, &plain).unwrap_err().to_string();
        assert!(e.contains("--features oidc"), "{e}");
        let full: Vec<String> = vec!["sasl_gssapi".into(), "oidc".into()];
        built_with_features(&gssapi, &full).unwrap();
        built_with_features(&oidc, &full).unwrap();
        built_with_features(&with("sasl.mechanism", "SCRAM-SHA-512"), &plain).unwrap();
        // This build: the cargo features and librdkafka agree.
        assert_eq!(built_with(&gssapi).is_ok(), cfg!(feature = "gssapi"));
        assert_eq!(built_with(&oidc).is_ok(), cfg!(feature = "oidc"));
    }

    #[test]
    fn an_msk_broker_names_its_region() {
        let b = "b-1.backups.x1y2z3.c4.kafka.eu-west-1.amazonaws.com:9098,b-2.backups.x1y2z3.c4.kafka.eu-west-1.amazonaws.com:9098";
        assert_eq!(region_of(b).as_deref(), Some("eu-west-1"));
        assert_eq!(region_of("127.0.0.1:9092"), None);
        assert_eq!(region_of("kafka.internal:9092"), None);
    }
}
