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
}

/// Discards every event.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}
