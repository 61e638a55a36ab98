//! TCP mode (lb.md §11): L4 forwarding, SNI inspection of pass-through TLS, and the PROXY
//! protocol header of both modes.

pub mod clienthello;
mod first_bytes;
pub mod proxy_header;
mod session;
mod tunnel;

pub(crate) use session::{serve, TcpFrontend};
