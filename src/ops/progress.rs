//! Progress reporting, injected into operations so the library never prints
//! (the CLI draws bars on a terminal; tests and library users pass
//! [`NoProgress`]).

/// What a counter counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Bytes (shown with rate and ETA).
    Bytes,
    /// Items (packs, snapshots, partitions).
    Items,
}

/// Why offsets of a partition hold no records in a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GapCause {
    /// Retention deleted them before any snapshot read them.
    Expired,
    /// Retention deleted them while the snapshot was reading.
    DeletedWhileReading,
}

/// A typed progress event, for sinks that count (metrics) rather than
/// draw: every event a snapshot or restore reports as text is also one of
/// these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<'a> {
    /// Records read from (snapshot) or written to (restore) a partition,
    /// and their key+value bytes where known.
    Records {
        /// Records.
        records: u64,
        /// Bytes of the records as kvault encodes them (snapshot) or of
        /// their keys and values (restore).
        bytes: u64,
    },
    /// A partition is done.
    PartitionDone {
        /// Topic.
        topic: &'a str,
        /// Partition.
        partition: i32,
        /// Key+value bytes read or written.
        bytes: u64,
    },
    /// Offsets with no records, recorded as a gap.
    Gap {
        /// Topic.
        topic: &'a str,
        /// Partition.
        partition: i32,
        /// First offset of the gap.
        from: i64,
        /// End of the gap (exclusive).
        to: i64,
        /// Why.
        cause: GapCause,
    },
}

/// Receives progress events. All methods default to doing nothing.
pub trait Progress: Send + Sync {
    /// A phase starts; `total` when known.
    fn start(&self, _phase: &str, _total: Option<u64>, _unit: Unit) {}
    /// `n` more units done.
    fn inc(&self, _n: u64) {}
    /// Replaces the phase's description (e.g. with partitions done).
    fn set_message(&self, _msg: &str) {}
    /// The phase ended.
    fn finish(&self) {}
    /// Something the user should know that is not an error.
    fn warn(&self, _msg: &str) {}
    /// A typed event (see [`Event`]).
    fn event(&self, _e: &Event<'_>) {}
}

/// Discards every event.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}
