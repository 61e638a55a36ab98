//! The client side's sockets: binding and the accept loop within `maxconn` (listener.rs), the
//! VRRP gate that opens and closes gated frontends (gate.rs), and one accepted connection with
//! the timeouts hyper does not enforce (conn.rs), and its cheap view of a drain request
//! (drain.rs).

pub(crate) mod conn;
pub(crate) mod drain;
pub(crate) mod gate;
pub(crate) mod listener;
pub(crate) mod proxied;
pub(crate) mod stats;
pub mod tls;
