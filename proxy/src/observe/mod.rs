//! What the balancer shows of itself: the access log (accesslog.rs), the counters owned by
//! the things counted (counters.rs, meters.rs), the snapshot they are copied into, and its
//! renderings (stats page, CSV, JSON, Prometheus) served by the stats listener. Read by every
//! layer; reads none of them.

pub mod accesslog;
pub(crate) mod counters;
pub mod meters;
pub mod metrics;
pub mod snapshot;
pub mod stats_csv;
pub mod stats_html;
pub mod stats_server;
