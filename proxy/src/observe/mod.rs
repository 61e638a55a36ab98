//! What the balancer tells about itself: the access log (accesslog.rs) and the counters the
//! stats read (counters.rs). Read by every layer; reads none of them.

pub mod accesslog;

pub(crate) mod counters;
