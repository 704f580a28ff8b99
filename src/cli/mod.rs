//! The command line: clap definitions, global options, dispatch to one file
//! per command group, and the mapping of errors to exit codes.

mod check;
mod config;
mod find;
mod inspect;
mod kafka;
mod keys;
mod lifecycle;
mod log;
mod man;
pub mod metrics;
mod output;
mod password;
mod repair;
mod rewrite;
mod size;
mod stream;
mod verify;
mod version;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use kvault::error::exit;
use kvault::ops::init::{ChunkerParams, DEFAULT_COMPRESSION_LEVEL, DEFAULT_PACK_SIZE};
use kvault::{AzureOptions, BackendOptions, GcsOptions, S3Options};
use kvault::{InitOptions, KdfParams, Repository};
use serde_json::json;

pub use output::Out;

/// kvault: encrypted, deduplicating, point-in-time backups of Apache Kafka.
#[derive(Debug, Parser)]
#[command(name = "kvault", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

/// Parses the command line, with the configuration file's values as the
/// flags' defaults. A malformed configuration file exits 2, in one line.
pub fn parse() -> Cli {
    use clap::{CommandFactory, FromArgMatches};
    // Arguments as the OS gives them: one that is not UTF-8 reaches clap,
    // which refuses it as a usage error (exit 2) where a text value is
    // wanted, instead of `std::env::args` panicking.
    let os_args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let args: Vec<String> = os_args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
    let cmd = match config::apply(Cli::command(), &args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("kvault: {e:#}");
            std::process::exit(exit::USAGE);
        }
    };
    let matches = cmd.get_matches_from(os_args);
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

impl Cli {
    /// Whether `--json` was given (errors are JSON lines then too).
    pub fn json(&self) -> bool {
        self.global.json
    }

    /// Where the run's metrics go, and the command's name for them.
    pub fn metrics(&self) -> (metrics::Sinks, String) {
        let sinks = self.global.metric_sinks();
        let cmd = <Cli as clap::CommandFactory>::command();
        let names: Vec<String> = cmd.get_subcommands().map(|c| c.get_name().to_string()).collect();
        let name = std::env::args_os()
            .map(|a| a.to_string_lossy().into_owned())
            .skip(1)
            .find(|a| names.contains(a))
            .unwrap_or_else(|| "kvault".into());
        (sinks, name)
    }

    /// Whether the command handles SIGINT and SIGTERM itself.
    pub fn handles_signals(&self) -> bool {
        matches!(&self.command, Command::Snapshot(a) if a.handles_signals())
    }
}

/// Waits for SIGINT or (on Unix) SIGTERM; names the one that came.
pub async fn signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            return tokio::select! {
                _ = tokio::signal::ctrl_c() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            };
        }
    }
    let _ = tokio::signal::ctrl_c().await;
    "SIGINT"
}

/// Options every command takes (listed after each command's own).
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// A configuration file (TOML: repository, password-file, brokers,
    /// [s3], [kafka] librdkafka properties, …); default
    /// ~/.config/kvault/kvault.toml when it exists.
    #[arg(long, env = "KVAULT_CONFIG", value_name = "FILE", global = true)]
    config: Option<String>,
    /// Use the configuration file's [profile.NAME] (its keys override the
    /// file's top-level ones).
    #[arg(long, env = "KVAULT_PROFILE", value_name = "NAME", global = true)]
    profile: Option<String>,
    /// Repository location: a path, fs://PATH, s3://BUCKET/PREFIX, gcs://BUCKET/PREFIX, azblob://CONTAINER/PREFIX.
    #[arg(short = 'r', long = "repo", env = "KVAULT_REPOSITORY", global = true)]
    repo: Option<String>,
    /// Read the repository password from this file.
    #[arg(long, env = "KVAULT_PASSWORD_FILE", global = true)]
    password_file: Option<String>,
    /// Run this shell command and use its output as the password.
    #[arg(long, env = "KVAULT_PASSWORD_COMMAND", global = true)]
    password_command: Option<String>,
    /// Print results as JSON Lines (one object per line, with message_type).
    #[arg(long, global = true)]
    json: bool,
    /// Print only errors.
    #[arg(short, long, global = true)]
    quiet: bool,
    /// Log more on stderr: -v retries, phases and librdkafka's errors, -vv
    /// debug, -vvv everything with librdkafka's broker, TLS and SASL debug
    /// log (KVAULT_LOG or RUST_LOG directives override: `debug`,
    /// `warn,kvault::kafka=debug`).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Log lines as `text` or `json` (JSON lines with message_type "log";
    /// the default under --json).
    #[arg(long, env = "KVAULT_LOG_FORMAT", value_name = "FORMAT", global = true)]
    log_format: Option<LogFormat>,
    /// Never draw progress bars.
    #[arg(long, global = true)]
    no_progress: bool,
    /// Write the run's metrics (Prometheus text format) to FILE, atomically
    /// (node_exporter's textfile collector).
    #[arg(long, env = "KVAULT_METRICS_FILE", value_name = "FILE", global = true)]
    metrics_file: Option<String>,
    /// Push the run's metrics to a Prometheus Pushgateway at URL.
    #[arg(long, env = "KVAULT_METRICS_PUSH", value_name = "URL", global = true)]
    metrics_push: Option<String>,
    /// Read without taking a lock (read-only storage); a concurrent prune
    /// may then make a read fail part-way.
    #[arg(long, global = true)]
    no_lock: bool,
    /// How long --password-command may run.
    #[arg(long, global = true, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    password_command_timeout: std::time::Duration,
    /// Wait up to this long (e.g. 10m) for a conflicting lock to go, instead of failing at once.
    #[arg(long, env = "KVAULT_RETRY_LOCK", global = true, value_name = "DURATION", value_parser = humantime::parse_duration)]
    retry_lock: Option<std::time::Duration>,
    #[command(flatten)]
    storage: StorageArgs,
}

impl GlobalArgs {
    /// Where the run's metrics go (`--metrics-file`, `--metrics-push`).
    fn metric_sinks(&self) -> metrics::Sinks {
        metrics::Sinks {
            file: self.metrics_file.clone(),
            push: self.metrics_push.clone(),
        }
    }
}

/// Object-store settings: one group of flags per service, named
/// `--SERVICE-KEY` (the configuration file's `[SERVICE]` section takes
/// the same keys, `cli::config`).
#[derive(Debug, Args)]
#[command(next_help_heading = "Storage options")]
struct StorageArgs {
    #[command(flatten)]
    s3: S3Args,
    #[command(flatten)]
    gcs: GcsArgs,
    #[command(flatten)]
    azure: AzureArgs,
}

/// S3 settings.
#[derive(Debug, Args)]
struct S3Args {
    /// S3 endpoint URL (e.g. http://127.0.0.1:8333); default AWS.
    #[arg(long, env = "KVAULT_S3_ENDPOINT", global = true)]
    s3_endpoint: Option<String>,
    /// S3 region.
    #[arg(long, env = "AWS_REGION", global = true)]
    s3_region: Option<String>,
    /// S3 access key id.
    #[arg(long, env = "AWS_ACCESS_KEY_ID", hide_env_values = true, global = true)]
    s3_access_key_id: Option<String>,
    /// A file holding the S3 secret access key (or AWS_SECRET_ACCESS_KEY;
    /// never on the command line, where `ps` shows it).
    #[arg(long, value_name = "FILE", global = true)]
    s3_secret_access_key_file: Option<String>,
    /// A profile of the shared AWS config and credentials files (without
    /// explicit keys, credentials come from AWS's default chain: env,
    /// profile, SSO, web identity / IRSA, ECS container, EC2 instance).
    #[arg(long, env = "AWS_PROFILE", global = true)]
    s3_profile: Option<String>,
    /// A role to assume (STS AssumeRole) with the credentials found.
    #[arg(long, env = "KVAULT_S3_ROLE_ARN", global = true)]
    s3_role_arn: Option<String>,
    /// Storage class of new objects (e.g. STANDARD_IA, INTELLIGENT_TIERING).
    #[arg(long, env = "KVAULT_S3_STORAGE_CLASS", global = true)]
    s3_storage_class: Option<String>,
    /// Server-side encryption of new objects with this KMS key (aws:kms).
    #[arg(long, env = "KVAULT_S3_SSE_KMS_KEY_ID", global = true)]
    s3_sse_kms_key_id: Option<String>,
}

/// Google Cloud Storage settings.
#[derive(Debug, Args)]
struct GcsArgs {
    /// GCS service-account credential file.
    #[arg(long, env = "GOOGLE_APPLICATION_CREDENTIALS", global = true)]
    gcs_credential_path: Option<String>,
    /// GCS endpoint.
    #[arg(long, env = "KVAULT_GCS_ENDPOINT", global = true)]
    gcs_endpoint: Option<String>,
}

/// Azure Blob Storage settings.
#[derive(Debug, Args)]
struct AzureArgs {
    /// Azure storage account.
    #[arg(long, env = "AZURE_STORAGE_ACCOUNT", global = true)]
    azure_account_name: Option<String>,
    /// A file holding the Azure storage account key (or AZURE_STORAGE_KEY).
    #[arg(long, value_name = "FILE", global = true)]
    azure_account_key_file: Option<String>,
    /// Azure blob endpoint.
    #[arg(long, env = "AZURE_STORAGE_ENDPOINT", global = true)]
    azure_endpoint: Option<String>,
}

/// A non-empty environment variable.
fn env(k: &str) -> Option<String> {
    std::env::var(k).ok().filter(|v| !v.is_empty())
}

impl S3Args {
    fn options(&self) -> Result<S3Options> {
        Ok(S3Options {
            endpoint: self.s3_endpoint.clone().or_else(|| env("AWS_ENDPOINT_URL")),
            region: self.s3_region.clone().or_else(|| env("AWS_DEFAULT_REGION")),
            access_key_id: self.s3_access_key_id.clone(),
            secret_access_key: secret(self.s3_secret_access_key_file.as_deref(), "AWS_SECRET_ACCESS_KEY")?,
            session_token: env("AWS_SESSION_TOKEN"),
            profile: self.s3_profile.clone(),
            role_arn: self.s3_role_arn.clone(),
            storage_class: self.s3_storage_class.clone(),
            sse_kms_key_id: self.s3_sse_kms_key_id.clone(),
        })
    }
}

impl GcsArgs {
    fn options(&self) -> GcsOptions {
        GcsOptions {
            endpoint: self.gcs_endpoint.clone(),
            credential_path: self.gcs_credential_path.clone(),
        }
    }
}

impl AzureArgs {
    fn options(&self) -> Result<AzureOptions> {
        Ok(AzureOptions {
            endpoint: self.azure_endpoint.clone(),
            account_name: self.azure_account_name.clone(),
            account_key: secret(self.azure_account_key_file.as_deref(), "AZURE_STORAGE_KEY")?,
            sas_token: env("AZURE_STORAGE_SAS_TOKEN"),
        })
    }
}

/// A secret from a file (trailing newline dropped), else from the environment.
fn secret(file: Option<&str>, env: &str) -> Result<Option<String>> {
    match file {
        Some(f) => {
            let s = std::fs::read_to_string(f).with_context(|| format!("reading {f}"))?;
            Ok(Some(s.trim_end_matches(['\n', '\r']).to_string()))
        }
        None => Ok(std::env::var(env).ok().filter(|v| !v.is_empty())),
    }
}

impl StorageArgs {
    fn options(&self) -> Result<BackendOptions> {
        Ok(BackendOptions {
            s3: self.s3.options()?,
            gcs: self.gcs.options(),
            azure: self.azure.options()?,
        })
    }
}

/// `--chunk-size`: a power of two KiB in 1..=65536 (a usage error otherwise).
fn chunk_kib(s: &str) -> std::result::Result<u32, String> {
    match s.parse::<u32>() {
        Ok(n) if n.is_power_of_two() && n <= 65536 => Ok(n),
        _ => Err(format!("{s:?} is not a power of two between 1 and 65536")),
    }
}

/// Argon2id cost flags for new keys.
#[derive(Debug, Args, Clone)]
struct KdfArgs {
    /// Argon2id memory in MiB for the new key (default 64).
    #[arg(long, value_name = "MIB")]
    kdf_memory_mib: Option<u32>,
    /// Argon2id passes (default 3).
    #[arg(long, value_name = "N")]
    kdf_iterations: Option<u32>,
    /// Argon2id lanes, filled in parallel (default 4).
    #[arg(long, value_name = "N")]
    kdf_parallelism: Option<u32>,
    /// Use the cheapest Argon2id parameters (tests and throwaway repositories only).
    #[arg(long, hide = true)]
    insecure_fast_kdf: bool,
}

impl KdfArgs {
    fn params(&self) -> KdfParams {
        if self.insecure_fast_kdf {
            return KdfParams::insecure_fast();
        }
        let d = KdfParams::default();
        KdfParams {
            m_cost_kib: self
                .kdf_memory_mib
                .map_or(d.m_cost_kib, |m| m.saturating_mul(1024)),
            t_cost: self.kdf_iterations.unwrap_or(d.t_cost),
            p_cost: self.kdf_parallelism.unwrap_or(d.p_cost),
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a new repository.
    Init {
        /// Average chunk size in KiB (a power of two, 1..=65536; min = avg/4, max = avg*4).
        #[arg(long, default_value_t = 1024, value_name = "KIB", value_parser = chunk_kib)]
        chunk_size: u32,
        /// Target pack size in MiB (1..=1024).
        #[arg(long, default_value_t = DEFAULT_PACK_SIZE / (1024 * 1024), value_name = "MIB",
              value_parser = clap::value_parser!(u32).range(1..=1024))]
        pack_size: u32,
        /// zstd compression level (-7..=22).
        #[arg(long, default_value_t = DEFAULT_COMPRESSION_LEVEL, allow_hyphen_values = true,
              value_parser = clap::value_parser!(i32).range(-7..=22))]
        compression: i32,
        #[command(flatten)]
        kdf: KdfArgs,
        /// Lock every object on an S3 bucket with Object Lock enabled: no
        /// snapshot (nor anything it needs) can be deleted or overwritten,
        /// by any credential, until DURATION after it was taken.
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        object_lock: Option<std::time::Duration>,
        /// compliance: binding on everyone; governance: a principal with
        /// s3:BypassGovernanceRetention may lift it.
        #[arg(long, value_name = "MODE", default_value = "compliance", requires = "object_lock",
              value_parser = ["compliance", "governance"])]
        object_lock_mode: String,
        /// How much longer than --object-lock new objects are locked, so
        /// that the objects snapshots reuse are extended once per this
        /// (default: a quarter of --object-lock).
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, requires = "object_lock")]
        object_lock_slack: Option<std::time::Duration>,
    },
    /// Manage the keys (passwords) of a repository.
    Key {
        #[command(subcommand)]
        cmd: keys::KeyCmd,
    },
    /// Snapshot a Kafka cluster: records, topic configs, consumer-group offsets.
    Snapshot(kafka::SnapshotArgs),
    /// Restore a Kafka snapshot to a cluster, translating consumer-group offsets.
    Restore(kafka::RestoreArgs),
    /// Compare a cluster with what a restore of a snapshot writes: records,
    /// offsets, group positions; exit 4 when they differ.
    Verify(verify::VerifyArgs),
    /// Check a verification report's signature with the repository key.
    VerifyReport(verify::VerifyReportArgs),
    /// Restore into a scratch prefix, verify, write the report, delete what
    /// was restored; exit 4 when anything differs.
    Drill(verify::DrillArgs),
    /// Every version of a record key across all snapshots (topic,
    /// partition, offset, time, value, the snapshots holding it).
    Find(find::FindArgs),
    /// List a Kafka snapshot: topics, partitions, offset ranges, gaps, groups.
    Ls(kafka::LsArgs),
    /// Print a Kafka snapshot's records as JSON lines.
    Dump(kafka::DumpArgs),
    /// Compare two Kafka snapshots.
    Diff(kafka::DiffArgs),
    /// Store a byte stream (a file or stdin) as a snapshot.
    Put(stream::PutArgs),
    /// Write the byte stream of a `put` snapshot to stdout or a file.
    Get(stream::GetArgs),
    /// List snapshots.
    Snapshots(inspect::SnapshotsArgs),
    /// Verify the repository's structure and, with --read-data, its data.
    Check(check::CheckArgs),
    /// Show sizes, dedup and compression ratios.
    Stats,
    /// Print a repository object, decrypted (for debugging).
    Cat(inspect::CatArgs),
    /// Remove snapshots by a retention policy (restic's --keep-* rules).
    Forget(lifecycle::ForgetArgs),
    /// Remove data no snapshot references; repack partly used packs.
    Prune(lifecycle::PruneCmd),
    /// Copy snapshots from another repository (e.g. local to S3), storing only what is missing.
    Copy(lifecycle::CopyArgs),
    /// Erase records by key from snapshots (an erasure request): new snapshots without them.
    Rewrite(rewrite::RewriteArgs),
    /// Repair a damaged repository: rebuild the index, mend snapshots.
    Repair {
        #[command(subcommand)]
        cmd: repair::RepairCmd,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff): `kvault man > kvault.1`; `--dir DIR` writes one page per command.
    Man(man::ManArgs),
    /// Print kvault's version, build commit, features, librdkafka's version and the compiler's.
    Version,
    /// Remove stale locks (or, with --remove-all, every lock).
    Unlock {
        /// Remove all locks, even live ones.
        #[arg(long)]
        remove_all: bool,
    },
}

/// Context handed to commands.
pub struct Ctx {
    global: GlobalArgs,
    out: Out,
}

impl Ctx {
    /// Where the run's metrics go.
    pub fn metrics(&self) -> metrics::Sinks {
        self.global.metric_sinks()
    }

    fn location(&self) -> Result<&str> {
        self.global
            .repo
            .as_deref()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                anyhow::Error::new(kvault::Error::NoRepository {
                    location: "(none)".into(),
                    reason: "no repository given: use -r/--repo or KVAULT_REPOSITORY".into(),
                })
            })
    }

    /// Opens the repository, asking for the password; the repository's
    /// warnings (skipped key or index files) go to stderr.
    async fn open(&self) -> Result<Repository> {
        let loc = self.location()?;
        let pw = password::repository_password(&self.global, false)?;
        let out = self.out;
        let warn = move |m: &str| out.warn(m);
        let backend = kvault::open_backend(loc, &self.global.storage.options()?)?;
        let repo = Repository::open_warning(backend, &pw, &warn).await?;
        repo.set_warn(std::sync::Arc::new(warn));
        self.lock_wait(&repo);
        Ok(repo)
    }

    /// Runs a read under a shared lock (none with `--no-lock`).
    async fn reading<T, F, Fut>(&self, repo: &Repository, f: F) -> kvault::Result<T>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = kvault::Result<T>>,
    {
        if self.global.no_lock {
            f().await
        } else {
            kvault::ops::with_lock(repo, false, f).await
        }
    }

    /// Applies `--retry-lock` to a repository.
    fn lock_wait(&self, repo: &Repository) {
        if let Some(d) = self.global.retry_lock {
            repo.set_lock_wait(d);
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// `TIME LEVEL TARGET: message`.
    Text,
    /// One JSON object per line.
    Json,
}

/// Runs the parsed command line; returns the exit code.
pub async fn run(cli: Cli) -> Result<i32> {
    let json_logs = match cli.global.log_format {
        Some(f) => f == LogFormat::Json,
        None => cli.global.json,
    };
    log::init(log::filter(cli.global.verbose, cli.global.quiet), json_logs);
    let out = Out {
        json: cli.global.json,
        quiet: cli.global.quiet,
        progress: !cli.global.no_progress,
    };
    let ctx = Ctx {
        global: cli.global,
        out,
    };
    match cli.command {
        Command::Init {
            chunk_size,
            pack_size,
            compression,
            kdf,
            object_lock,
            object_lock_mode,
            object_lock_slack,
        } => {
            let loc = ctx.location()?;
            let chunker = ChunkerParams::with_average(chunk_size.saturating_mul(1024))
                .context("--chunk-size must be a power of two between 1 and 65536 KiB")?;
            let opts = InitOptions {
                chunker,
                pack_size: pack_size.saturating_mul(1024 * 1024),
                compression_level: compression,
                kdf: kdf.params(),
                object_lock: object_lock.map(|period| {
                    let mode = if object_lock_mode == "governance" {
                        kvault::LockMode::Governance
                    } else {
                        kvault::LockMode::Compliance
                    };
                    let mut p = kvault::LockPolicy::new(mode, period);
                    if let Some(s) = object_lock_slack {
                        p.slack_secs = s.as_secs();
                    }
                    p
                }),
            };
            let pw = password::repository_password(&ctx.global, true)?;
            let (_, s) = kvault::ops::init::init(loc, &ctx.global.storage.options()?, &pw, &opts).await?;
            ctx.out.emit("init", json!(s), || {
                format!("created kvault repository {} at {}\nkeep your password safe: without it the data cannot be read", s.repository_id.short(), s.location)
            });
            Ok(exit::OK)
        }
        Command::Key { cmd } => keys::run(&ctx, cmd).await,
        Command::Snapshot(a) => kafka::run_snapshot(&ctx, a).await,
        Command::Restore(a) => kafka::run_restore(&ctx, a).await,
        Command::Verify(a) => verify::run_verify(&ctx, a).await,
        Command::VerifyReport(a) => verify::run_verify_report(&ctx, a).await,
        Command::Drill(a) => verify::run_drill(&ctx, a).await,
        Command::Find(a) => find::run(&ctx, a).await,
        Command::Ls(a) => kafka::run_ls(&ctx, a).await,
        Command::Dump(a) => kafka::run_dump(&ctx, a).await,
        Command::Diff(a) => kafka::run_diff(&ctx, a).await,
        Command::Put(a) => stream::put(&ctx, a).await,
        Command::Get(a) => stream::get(&ctx, a).await,
        Command::Snapshots(a) => inspect::snapshots(&ctx, a).await,
        Command::Check(a) => check::run(&ctx, a).await,
        Command::Stats => inspect::stats(&ctx).await,
        Command::Forget(a) => lifecycle::run_forget(&ctx, a).await,
        Command::Prune(a) => lifecycle::run_prune(&ctx, a).await,
        Command::Copy(a) => lifecycle::run_copy(&ctx, a).await,
        Command::Rewrite(a) => rewrite::run(&ctx, a).await,
        Command::Repair { cmd } => repair::run(&ctx, cmd).await,
        Command::Cat(a) => inspect::cat(&ctx, a).await,
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "kvault", &mut std::io::stdout());
            Ok(exit::OK)
        }
        Command::Man(a) => man::run(&ctx, &a),
        Command::Version => version::run(&ctx),
        Command::Unlock { remove_all } => {
            let repo = ctx.open().await?;
            let removed = kvault::ops::unlock(&repo, remove_all).await?;
            ctx.out.emit("unlock", json!({"removed": removed}), || {
                format!("removed {} lock(s)", removed.len())
            });
            Ok(exit::OK)
        }
    }
}

/// A command line that parses but cannot work (a needed setting missing):
/// exit 2, like clap's own usage errors.
#[derive(Debug)]
pub struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// Prints an error as one line on stderr (a JSON line under `--json`) and
/// returns its exit code.
pub fn report(e: &anyhow::Error, json: bool) -> i32 {
    if e.chain().any(|c| c.is::<Usage>()) {
        return report_line(&format!("{e:#}"), "usage", exit::USAGE, json);
    }
    for cause in e.chain() {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            output::quit_on_broken_pipe(io);
        }
    }
    let kv = e.chain().find_map(|c| c.downcast_ref::<kvault::Error>());
    let code = kv.map_or(exit::ERROR, kvault::Error::exit_code);
    let hint = kv.and_then(hint).map(|h| format!("; {h}")).unwrap_or_default();
    report_line(
        &format!("{e:#}{hint}"),
        kv.map_or("error", kvault::Error::kind),
        code,
        json,
    )
}

/// What the user can do about an error, in the CLI's terms (its flags
/// and commands): the library's errors say what is wrong, not which flag
/// changes it.
pub fn hint(e: &kvault::Error) -> Option<&'static str> {
    use kvault::{Error, Refusal};
    Some(match e {
        Error::Refused(r) => match r {
            Refusal::TargetNotEmpty { .. } => {
                "restore into new topics (--prefix, --rename), or use --if-not-empty append or purge"
            }
            Refusal::TooFewPartitions { .. } => {
                "--repartition spreads the records over the target's partitions by key"
            }
            Refusal::GroupActive { .. } => "stop its consumers or use --force",
            Refusal::RestoreCompleted { .. } => "delete that file to restore again",
            Refusal::KeyInUse { .. } => "use `kvault key passwd`, or open the repository with another key",
            Refusal::RunIncomplete { .. } => "run every shard of it again, or start a new run",
            Refusal::UnreadableIndex { .. } => "run `kvault repair index`",
            Refusal::IdempotenceOff => "remove -X enable.idempotence",
            Refusal::CannotDelete { .. } => {
                "forget and prune need the admin credential, not the append-only writer's"
            }
            Refusal::TargetUsed { .. } => {
                "restore into new topics (--prefix, --rename), or use --offsets translate"
            }
            Refusal::NotExactlyResumable { .. } => "delete that target topic and run the same command again",
            Refusal::GapNotReproducible { .. } | Refusal::ExactNeedsPartitions { .. } => {
                "use --offsets translate"
            }
            _ => return None,
        },
        Error::RestoreFailed { .. } => "or undo it with --if-not-empty purge or by deleting the topics",
        Error::Kafka { transient: true, .. } | Error::KafkaUnreachable { .. } => {
            "raise --kafka-timeout to wait longer"
        }
        Error::Location(kvault::LocationError::Empty) => "give one with -r or KVAULT_REPOSITORY",
        Error::LockLost(_) => "was `kvault unlock --remove-all` run meanwhile?",
        Error::Locked(_) => "`kvault unlock --remove-all` removes stale or unreadable locks",
        _ => return None,
    })
}

/// `value` of `--flag` parsed by the library; a value it cannot take is a
/// usage error naming the flag.
pub fn flag_value<T>(flag: &str, value: &str) -> Result<T>
where
    T: std::str::FromStr<Err = kvault::Error>,
{
    value.parse().map_err(|e| flag_error(flag, e))
}

/// A library error about a flag's value, as a usage error naming the flag.
pub fn flag_error(flag: &str, e: kvault::Error) -> anyhow::Error {
    match e {
        kvault::Error::BadValue { value, expected, .. } => {
            Usage(format!("{flag} {value:?}: expected {expected}")).into()
        }
        e => e.into(),
    }
}

/// Prints one error line and returns `code`.
pub fn report_line(message: &str, kind: &str, code: i32, json: bool) -> i32 {
    if json {
        let line = json!({
            "message_type": "error",
            "kvault_json": output::JSON_SCHEMA,
            "error": kind,
            "message": message,
            "exit_code": code,
        });
        eprintln!("{line}");
    } else {
        eprintln!("kvault: {message}");
    }
    code
}
