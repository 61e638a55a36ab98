//! TCP mode (lb.md §11): L4 forwarding, SNI inspection of pass-through TLS, and the PROXY
//! protocol header of both modes.

pub mod clienthello;
pub(crate) mod first_bytes;
/// The PROXY header codec lives below every layer (HTTP frontends and server connections
/// use it too); this path stays for the fuzz target and tests.
pub use crate::proxy_header;
mod session;

pub(crate) use session::{serve, TcpFrontend};
