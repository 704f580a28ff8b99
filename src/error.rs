//! The library's error type.
//!
//! Every fallible public function returns [`Result`]. Variants carry the
//! context a user needs to act (which object, which key, which location), and
//! [`Error::exit_code`] maps them onto the documented CLI exit codes (README,
//! "Exit codes"), modelled on restic's table.

use std::fmt;

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, with enough context to name the object involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No repository (no config object) at the location.
    #[error("no repository at {location}: {reason}")]
    NoRepository {
        /// The repository location as the user gave it.
        location: String,
        /// Why it is not a repository.
        reason: String,
    },
    /// A repository already exists where `init` was asked to create one.
    #[error("a repository already exists at {0}")]
    AlreadyInitialized(String),
    /// Another process holds a conflicting lock.
    #[error("repository is locked: {0}")]
    Locked(String),
    /// This process's lock on the repository stopped protecting it (a
    /// refresh failed for too long, or the lock file was removed): nothing
    /// was reported saved.
    #[error("repository lock lost: {0}; nothing was saved")]
    LockLost(String),
    /// No key file could be opened with the password.
    #[error("wrong password or no key found for this repository")]
    WrongPassword,
    /// Authentication or structural check of stored bytes failed.
    #[error("{object} is corrupt or tampered: {detail}")]
    Corrupt {
        /// The object, e.g. `pack 3fa2…` or `index 09bc…`.
        object: String,
        /// What did not check out.
        detail: String,
    },
    /// Sealing failed (no randomness, or the AEAD refused the message):
    /// the write stops, nothing stands in for the sealed bytes.
    #[error("cannot seal: {0}")]
    Seal(String),
    /// A referenced object does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// A value the caller gave that kvault cannot take. The CLI names the
    /// flag or file it came from.
    #[error("{what} {value:?}: expected {expected}")]
    BadValue {
        /// What the value is, e.g. `shard` or `pack size`.
        what: &'static str,
        /// The value as given.
        value: String,
        /// What would have been taken.
        expected: String,
    },
    /// A repository location that names no usable storage.
    #[error(transparent)]
    Location(crate::backend::location::LocationError),
    /// An operation refused to act, and changed nothing. The CLI adds the
    /// flags or commands that change its mind.
    #[error(transparent)]
    Refused(Refusal),
    /// The repository uses a format version or feature this build lacks.
    #[error("unsupported repository format: {0}")]
    Unsupported(String),
    /// A storage operation failed.
    /// (Not its `source`: the one-line report would say it twice.)
    #[error("storage: {0}")]
    Backend(crate::backend::BackendError),
    /// A local I/O operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A Kafka request failed (after retries, when its error was transient).
    #[error("kafka {op}: {detail}")]
    Kafka {
        /// What was asked, with topic and partition where there is one.
        op: String,
        /// librdkafka's message, and how long it was retried.
        detail: String,
        /// librdkafka's error code, when there is one.
        code: Option<String>,
        /// Whether the error was of a kind that goes away by itself.
        transient: bool,
    },
    /// No broker of a cluster answered.
    #[error("cannot reach Kafka at {brokers}: {detail}")]
    KafkaUnreachable {
        /// The bootstrap servers as given.
        brokers: String,
        /// What went wrong.
        detail: String,
    },
    /// A restore failed after it started writing to the target.
    #[error("{error}; {left_behind}")]
    RestoreFailed {
        /// Why it failed.
        error: Box<Error>,
        /// What it left on the target, and how to resume or undo it.
        left_behind: String,
    },
    /// The operation was interrupted (SIGINT).
    #[error("interrupted")]
    Interrupted,
    /// The operation finished but could not do everything it was asked.
    #[error("incomplete: {0}")]
    Incomplete(String),
    /// A thread or task of this process stopped (panicked, was cancelled,
    /// or dropped its channel) before it answered.
    #[error("{what} stopped: {detail}")]
    Worker {
        /// The worker, e.g. `upload task`.
        what: &'static str,
        /// How it stopped.
        detail: String,
    },
    /// One of kvault's own values could not be encoded (a bug in kvault).
    #[error("internal error: cannot encode: {0}")]
    Encode(String),
    /// An invariant broke: a bug in kvault, where it was found.
    #[error("internal error at {at}: {detail}")]
    Bug {
        /// The source file and line that found it.
        at: String,
        /// What broke.
        detail: String,
    },
}

/// Why an operation refused to act. Each says what is wrong in the
/// library's terms; `cli` adds what the user can do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// Target partitions of a restore already hold records.
    #[error("{} target partition(s) already hold records ({}); nothing was written", .partitions.len(), first_few(.partitions))]
    TargetNotEmpty {
        /// `topic/partition: N records` of each.
        partitions: Vec<String>,
    },
    /// A target topic has fewer partitions than the snapshot's.
    #[error("target topic {topic} has {have} partitions; the snapshot needs {need}")]
    TooFewPartitions {
        /// The target topic.
        topic: String,
        /// Its partitions.
        have: i32,
        /// The source topic's partitions.
        need: i32,
    },
    /// A group to be restored has active members on the target.
    #[error("group {group} has {members} active member(s) on the target")]
    GroupActive {
        /// The group.
        group: String,
        /// Its active members.
        members: usize,
    },
    /// The restore this state file belongs to already completed.
    #[error("this restore already completed (state in {state})")]
    RestoreCompleted {
        /// The state file.
        state: String,
    },
    /// Something else keeps writing to the restore's target partitions.
    #[error("the end of {} keeps growing: something else is writing to the restore target", .partitions.join(", "))]
    TargetGrowing {
        /// The partitions whose ends moved.
        partitions: Vec<String>,
    },
    /// The key to remove is the one that opened the repository.
    #[error("refusing to remove key {key}, which opened the repository")]
    KeyInUse {
        /// Its short id.
        key: String,
    },
    /// The key to remove is the repository's last.
    #[error("refusing to remove the last key")]
    LastKey,
    /// A sharded run cannot be merged: some partitions are in no shard.
    #[error("run {run}: no shard holds {} (its shards planned against different parent snapshots)", .uncovered.join(", "))]
    RunIncomplete {
        /// The run id.
        run: String,
        /// `topic/partition` of each partition no shard holds.
        uncovered: Vec<String>,
    },
    /// Prune changes nothing while an index file is unreadable.
    #[error("{cause}; prune changes nothing while an index file is unreadable")]
    UnreadableIndex {
        /// The unreadable index file's error.
        cause: Box<Error>,
    },
    /// A snapshot of another kind than the command works on.
    #[error("snapshot {id} is a {kind} snapshot, not {want}")]
    WrongSnapshotKind {
        /// Its short id.
        id: String,
        /// Its kind.
        kind: String,
        /// What the command needs.
        want: String,
    },
    /// A restore without the idempotent producer (exactly once needs it).
    #[error("restore needs enable.idempotence=true (exactly once)")]
    IdempotenceOff,
    /// An offset-exact restore into partitions that hold (or held) records.
    #[error(
        "{} target partition(s) are not new (their end is above 0: {}); an offset-exact restore writes from offset 0, nothing was written",
        .partitions.len(), first_few(.partitions)
    )]
    TargetUsed {
        /// `topic/partition: end N` of each.
        partitions: Vec<String>,
    },
    /// A source gap an offset-exact restore cannot reproduce: one offset at
    /// offset 0, with no record before it to carry its marker.
    #[error(
        "{partition}: the gap of one offset at offset {offset} cannot be reproduced (no record before it to carry a marker); nothing was written"
    )]
    GapNotReproducible {
        /// `topic/partition`.
        partition: String,
        /// Where.
        offset: i64,
    },
    /// A rerun of an offset-exact restore finds a partition ended where no
    /// step of its layout ends (what is there is not a prefix of the plan).
    #[error(
        "{partition} ends at {end}, where a killed run's open transaction was aborted: the offsets of its records are taken"
    )]
    NotExactlyResumable {
        /// `topic/partition` on the target.
        partition: String,
        /// Its end.
        end: i64,
    },
    /// A locked repository's storage refuses this credential deletes (an
    /// append-only writer's): forget and prune need one that may.
    #[error("the storage at {location} refuses this credential deletes; nothing was removed")]
    CannotDelete {
        /// The repository.
        location: String,
    },
    /// An offset-exact restore into a different partition layout.
    #[error("an offset-exact restore keeps every partition: it cannot spread {topic} by key")]
    ExactNeedsPartitions {
        /// The topic.
        topic: String,
    },
    /// A sharded restore of a topic spread by key: every worker would write
    /// every target partition.
    #[error(
        "a sharded restore gives each worker whole partitions: it cannot spread {topic} by key (restore it without --shard)"
    )]
    ShardSpread {
        /// The topic.
        topic: String,
    },
}

/// The first five of `items`, then an ellipsis.
fn first_few(items: &[String]) -> String {
    let mut s = items.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
    if items.len() > 5 {
        s.push_str(", …");
    }
    s
}

/// Process exit codes (README "Exit codes"; restic's table is the model).
pub mod exit {
    /// Success.
    pub const OK: i32 = 0;
    /// Any error not listed below (including corruption found by `check`).
    pub const ERROR: i32 = 1;
    /// Command line usage error (clap's default).
    pub const USAGE: i32 = 2;
    /// The command finished but could not do everything (e.g. some files unreadable).
    pub const INCOMPLETE: i32 = 3;
    /// `verify` or `drill` found the cluster different from the snapshot;
    /// `verify-report` found a report edited.
    pub const DIFFERS: i32 = 4;
    /// No repository at the location.
    pub const NO_REPOSITORY: i32 = 10;
    /// The repository is locked by another process.
    pub const LOCKED: i32 = 11;
    /// Wrong password.
    pub const WRONG_PASSWORD: i32 = 12;
    /// Interrupted by SIGINT.
    pub const INTERRUPTED: i32 = 130;
}

impl From<crate::backend::BackendError> for Error {
    fn from(e: crate::backend::BackendError) -> Self {
        Error::Backend(e)
    }
}

impl From<crate::backend::location::LocationError> for Error {
    fn from(e: crate::backend::location::LocationError) -> Self {
        use crate::backend::location::LocationError as L;
        match e {
            L::Io { context, source } => Error::Io { context, source },
            other => Error::Location(other),
        }
    }
}

impl Error {
    /// The documented CLI exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::NoRepository { .. } => exit::NO_REPOSITORY,
            Error::Locked(_) | Error::LockLost(_) => exit::LOCKED,
            Error::WrongPassword => exit::WRONG_PASSWORD,
            Error::Interrupted => exit::INTERRUPTED,
            Error::Incomplete(_) => exit::INCOMPLETE,
            Error::RestoreFailed { error, .. } => error.exit_code(),
            _ => exit::ERROR,
        }
    }

    /// A stable one-word name of the error's kind (the `error` field of a
    /// JSON error line).
    pub fn kind(&self) -> &'static str {
        match self {
            Error::NoRepository { .. } => "no_repository",
            Error::AlreadyInitialized(_) => "already_initialized",
            Error::Locked(_) => "locked",
            Error::LockLost(_) => "lock_lost",
            Error::WrongPassword => "wrong_password",
            Error::Corrupt { .. } => "corrupt",
            Error::Seal(_) => "seal",
            Error::NotFound(_) => "not_found",
            Error::BadValue { .. } | Error::Location(_) => "invalid",
            Error::Refused(_) => "refused",
            Error::Unsupported(_) => "unsupported",
            Error::Backend(_) => "storage",
            Error::Io { .. } => "io",
            Error::Kafka { .. } => "kafka",
            Error::KafkaUnreachable { .. } => "kafka_unreachable",
            Error::RestoreFailed { error, .. } => error.kind(),
            Error::Interrupted => "interrupted",
            Error::Incomplete(_) => "incomplete",
            Error::Worker { .. } | Error::Encode(_) | Error::Bug { .. } => "internal",
        }
    }

    /// A value `value` of `what` that is not what was `expected`.
    pub fn bad_value(what: &'static str, value: impl fmt::Display, expected: impl fmt::Display) -> Self {
        Error::BadValue {
            what,
            value: value.to_string(),
            expected: expected.to_string(),
        }
    }

    /// A worker `what` stopped.
    pub fn worker(what: &'static str, e: impl fmt::Display) -> Self {
        Error::Worker {
            what,
            detail: e.to_string(),
        }
    }

    /// kvault could not encode one of its own values.
    pub fn encode(e: impl fmt::Display) -> Self {
        Error::Encode(e.to_string())
    }

    /// A broken invariant, found by the caller's line.
    #[track_caller]
    pub fn bug(detail: impl fmt::Display) -> Self {
        let at = std::panic::Location::caller();
        Error::Bug {
            at: format!("{}:{}", at.file(), at.line()),
            detail: detail.to_string(),
        }
    }

    /// A corruption error naming `object`.
    pub fn corrupt(object: impl fmt::Display, detail: impl fmt::Display) -> Self {
        Error::Corrupt {
            object: object.to_string(),
            detail: detail.to_string(),
        }
    }

    /// An I/O error with context.
    pub fn io(context: impl fmt::Display, source: std::io::Error) -> Self {
        Error::Io {
            context: context.to_string(),
            source,
        }
    }
}
