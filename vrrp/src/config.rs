//! The typed configuration of VRRP instances. The binary builds these from its YAML schema;
//! this crate never sees YAML.

use std::net::IpAddr;
use std::time::Duration;

/// The VRRP version an instance speaks (vrrp.md §13). One state machine serves both; the
/// version decides the advert layout, the checksum and the Skew_Time formula.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Version {
    /// RFC 3768: whole-second intervals, optional simple password.
    #[default]
    V2,
    /// RFC 5798: centisecond intervals, no authentication, checksum over the IP pseudo-header.
    V3,
}

impl Version {
    /// The number carried in the advert's version nibble.
    pub fn number(self) -> u8 {
        match self {
            Version::V2 => 2,
            Version::V3 => 3,
        }
    }

    pub fn from_number(n: u8) -> Option<Version> {
        match n {
            2 => Some(Version::V2),
            3 => Some(Version::V3),
            _ => None,
        }
    }
}

/// A virtual IP address with its prefix length and optional device (keepalived `dev`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualAddress {
    /// IPv4, or IPv6 in a version 3 instance (one family per instance).
    pub addr: IpAddr,
    pub prefix_len: u8,
    /// Interface to add the address on; `None` = the instance's interface.
    pub dev: Option<String>,
    /// keepalived `label`: the address's IFA_LABEL (`eth1:vip` in `ip addr`); `None` = the
    /// interface's name, as the kernel does.
    pub label: Option<String>,
}

/// Initial state requested in the config (keepalived `state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InitialState {
    #[default]
    Backup,
    Master,
}

/// A `vrrp_script` (keepalived `vrrp_script`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptConfig {
    pub name: String,
    /// Command line, split on whitespace (no shell), as keepalived does.
    pub script: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub weight: i32,
    pub rise: u32,
    pub fall: u32,
    /// Run as this user (None = the daemon's user).
    pub user: Option<String>,
}

/// One tracked script as used by an instance, with the effective weight (a per-use
/// weight overrides the script's own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackScript {
    pub script: ScriptConfig,
    pub weight: i32,
}

/// keepalived `track_interface`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackInterface {
    pub name: String,
    pub weight: i32,
}

/// Native tracking of a load-balancer backend: fewer than `min_up` servers UP applies `weight`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackBackend {
    pub backend: String,
    pub min_up: u32,
    pub weight: i32,
}

/// Notify scripts, run with keepalived's arguments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotifyScripts {
    pub master: Option<String>,
    pub backup: Option<String>,
    pub fault: Option<String>,
    pub stop: Option<String>,
    /// Generic: `<script> INSTANCE <name> <STATE> <priority>`.
    pub generic: Option<String>,
}

/// One `vrrp_instance`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceConfig {
    pub name: String,
    pub interface: String,
    pub vrid: u8,
    /// 1..=254, or 255 for the address owner.
    pub priority: u8,
    pub version: Version,
    /// Centiseconds: v2 whole seconds × 100 (100..=25500), v3 1..=4095 (10 ms..40.95 s).
    pub advert_int: u16,
    pub initial_state: InitialState,
    pub nopreempt: bool,
    pub preempt_delay: Duration,
    /// Taking over from a MASTER that is still up, pass it the segments of its connections
    /// for its hand-back (io/relay.rs).
    pub handover_relay: bool,
    /// VRRPv2 simple password (auth type 1), zero-padded to 8 bytes. None = auth type 0.
    pub auth_pass: Option<[u8; 8]>,
    /// Same family as the VIPs.
    pub unicast_src_ip: Option<IpAddr>,
    /// Non-empty: adverts are sent unicast to each peer instead of to 224.0.0.18 / ff02::12.
    pub unicast_peers: Vec<IpAddr>,
    pub virtual_addresses: Vec<VirtualAddress>,
    pub garp_master_delay: Duration,
    pub garp_master_repeat: u32,
    pub garp_master_refresh: Duration,
    pub track_interfaces: Vec<TrackInterface>,
    pub track_scripts: Vec<TrackScript>,
    pub track_backends: Vec<TrackBackend>,
    pub notify: NotifyScripts,
    /// The `vrrp_sync_groups` entry this instance belongs to, if any.
    pub sync_group: Option<String>,
}

impl InstanceConfig {
    /// The instance speaks IPv6 (VRRPv3 over IPv6, RFC 5798): its VIPs are IPv6. The
    /// configuration guarantees one family per instance.
    pub fn is_ipv6(&self) -> bool {
        self.virtual_addresses
            .first()
            .is_some_and(|v| v.addr.is_ipv6())
    }
}
