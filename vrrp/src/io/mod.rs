//! Everything that touches the kernel: sockets, netlink, ARP, the timer.
pub mod alarm;
pub mod garp;
pub mod netlink;
pub mod relay;
pub mod socket;
pub mod stale;
