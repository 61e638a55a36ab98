//! VRRP engine, versions 2 (RFC 3768) and 3 (RFC 5798, IPv4), with keepalived-compatible
//! extensions.
//!
//! Layout (see ../shared/docs/architecture.md):
//! - [`packet`]: advertisement codec and receive validation (pure).
//! - [`machine`]: the state machine (pure; time is an input, actions are the output).
//! - [`logs`]: keepalived-worded log lines (pure).
//! - [`io`]: raw IP socket, netlink (addresses, links), gratuitous ARP.
//! - [`track`]: script and interface trackers.
//! - [`notify`]: notify scripts.
//! - [`sync_group`]: keepalived's `vrrp_sync_group` (members move together).
//! - [`stats`]: counters, last transition and heartbeat for the stats page and watchdog.
//! - [`instance`]: the async driver that feeds the machine and runs its actions.
//! - [`config`]: the typed configuration the binary hands us.

pub mod config;
pub mod instance;
pub mod io;
pub mod logs;
pub mod machine;
pub mod notify;
pub mod packet;
pub mod stats;
pub mod sync_group;
pub mod track;

pub use config::*;
