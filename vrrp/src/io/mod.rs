//! Everything that touches the kernel: sockets, netlink, ARP.
pub mod garp;
pub mod netlink;
pub mod socket;
