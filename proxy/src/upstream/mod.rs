//! The server side: backend state and server choice (backend.rs, balance.rs), the server
//! connection pool (connector.rs), sending a request with retries (forward.rs) over the
//! hand-written HTTP/1 client (h1.rs) or hyper, the request body on its way (body.rs), the
//! header fields both sides share (fields.rs), health checks (health.rs, probe.rs) and TLS to
//! the servers (tls.rs: client configuration and handshake; io.rs: a server connection's
//! stream, plain or TLS), the byte relay of every tunnel (relay.rs, splice.rs), and a timeout
//! moved later on every request without a timer update each time (deadline.rs; the client
//! side's too).

pub mod balance;
pub mod fields;
pub mod health;
pub mod probe;
pub mod tls;

pub(crate) mod backend;
pub(crate) mod body;
pub(crate) mod connector;
pub(crate) mod deadline;
pub(crate) mod forward;
pub(crate) mod h1;
pub(crate) mod io;
pub(crate) mod relay;
pub(crate) mod response_rules;
pub(crate) mod splice;
pub(crate) mod stats;
