//! Counters owned by the things they count, read by the access log and the stats.

use std::sync::atomic::AtomicUsize;

/// Process-wide counters.
#[derive(Debug, Default)]
pub(crate) struct ProxyCounters {
    /// Client connections open in the whole process (log `ac`).
    pub(crate) connections: AtomicUsize,
}
