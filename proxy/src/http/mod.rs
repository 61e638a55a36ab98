//! HTTP between a client and the balancer: a frontend's state (frontend.rs), the life of one
//! request (request.rs: route, backend pick, forward, response operations), the exchange that
//! logs it when its response ends (exchange.rs), and the header, cookie, rewrite, error page
//! and routing rules it applies.

pub mod cookie;
pub mod errorpage;
pub mod headers;
pub mod rewrite;
pub mod route;

pub(crate) mod client_conn;
pub(crate) mod exchange;
pub(crate) mod frontend;
pub(crate) mod h2_streams;
pub(crate) mod request;
pub(crate) mod request_rules;
pub(crate) mod upgrade;
