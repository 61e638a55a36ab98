//! Log message bodies worded exactly as keepalived 2.2 writes them (vrrp.md §11), because
//! users' alerting greps for them. Pure string builders: the caller picks the level
//! (info for transitions, priority and script lines whatever the verbosity; debug for the
//! lines keepalived prints only with `--log-detail`, see [`LogLine::is_detail`]).

use std::net::IpAddr;

use crate::machine::{Action, LogLine, State};
use crate::packet::DropReason;

/// `(VI_1) Entering MASTER STATE`, with ` (init)` when a Backup/FAULT state is the first one.
/// `None` for the return to Initialize (shutdown logs [`sent_zero_priority`],
/// [`removing_vips`] and [`stopped`] instead).
pub fn transition(instance: &str, from: State, to: State) -> Option<String> {
    let init = if from == State::Initialize && matches!(to, State::Backup | State::Fault) {
        " (init)"
    } else {
        ""
    };
    match to {
        State::Initialize => None,
        State::Master | State::Backup | State::Fault => {
            Some(format!("({instance}) Entering {to} STATE{init}"))
        }
    }
}

pub fn priority_changed(instance: &str, from: u8, to: u8) -> String {
    format!("({instance}) Changing effective priority from {from} to {to}")
}

/// The machine's decisions on adverts and timers.
pub fn line(instance: &str, line: &LogLine) -> String {
    match line {
        LogLine::ReceiveTimeout => format!("({instance}) Receive advertisement timeout"),
        LogLine::MasterReceivedHigher {
            from,
            priority,
            ours,
        } => format!(
            "({instance}) Master received advert from {from} with higher priority {priority}, ours {ours}"
        ),
        LogLine::MasterReceivedSameHigherIp { from, priority } => format!(
            "({instance}) Master received advert from {from} with same priority {priority} but higher IP address than ours"
        ),
        LogLine::MasterReceivedLower {
            from,
            priority,
            ours,
        } => format!(
            "({instance}) Received advert from {from} with lower priority {priority}, ours {ours}, forcing new election"
        ),
        LogLine::BackupDiscardedLower { from, priority } => format!(
            "({instance}) received lower priority ({priority}) advert from {from} - discarding"
        ),
        LogLine::BackupReceivedPriorityZero => {
            format!("({instance}) Backup received priority 0 advertisement")
        }
        LogLine::MasterReceivedPriorityZero => {
            format!("({instance}) Master received priority 0 message")
        }
        LogLine::HeldByGroup => format!(
            "({instance}) master down, but another member of the sync group still hears its master: staying BACKUP until the group goes MASTER together"
        ),
    }
}

/// The log line an action carries, if any (transitions, priority changes, decisions).
pub fn action(instance: &str, action: &Action) -> Option<String> {
    match action {
        Action::Transition { from, to, .. } => transition(instance, *from, *to),
        Action::PriorityChanged { from, to } => Some(priority_changed(instance, *from, *to)),
        Action::Log(l) => Some(line(instance, l)),
        Action::SendAdvert { .. }
        | Action::AddVips
        | Action::RemoveVips
        | Action::SendGarp { .. }
        | Action::Notify(_) => None,
    }
}

/// A dropped advert: `(VI_1) Invalid VRRPv2 checksum` and the like.
pub fn bad_advert(instance: &str, reason: &DropReason) -> String {
    format!("({instance}) {reason}")
}

pub fn script_succeeded(script: &str) -> String {
    format!("VRRP_Script({script}) succeeded")
}

pub fn script_failed_status(script: &str, status: i32) -> String {
    format!("VRRP_Script({script}) failed (exited with status {status})")
}

pub fn script_failed_signal(script: &str, signal: i32) -> String {
    format!("VRRP_Script({script}) failed (due to signal {signal})")
}

pub fn script_timed_out(script: &str) -> String {
    format!("VRRP_Script({script}) timed_out")
}

pub fn script_now_returning(script: &str, status: i32) -> String {
    format!("Script `{script}` now returning {status}")
}

pub fn script_overrun(script: &str) -> String {
    format!("Track script {script} is already running, expect idle - skipping run")
}

pub fn link_changed(interface: &str, up: bool) -> String {
    let state = if up { "up" } else { "down" };
    format!("Netlink reports {interface} {state}")
}

pub fn setting_vips(instance: &str) -> String {
    format!("({instance}) setting VIPs.")
}

pub fn removing_vips(instance: &str) -> String {
    format!("({instance}) removing VIPs.")
}

/// Once per VIP before a burst.
/// keepalived's line for a VIP's burst: gratuitous ARPs for IPv4, unsolicited Neighbour
/// Advertisements for IPv6.
pub fn sending_garps(instance: &str, interface: &str, vip: IpAddr) -> String {
    match vip {
        IpAddr::V4(_) => {
            format!("({instance}) Sending/queueing gratuitous ARPs on {interface} for {vip}")
        }
        IpAddr::V6(_) => format!(
            "({instance}) Sending/queueing Unsolicited Neighbour Adverts on {interface} for {vip}"
        ),
    }
}

/// Once per frame.
pub fn sending_garp(interface: &str, vip: IpAddr) -> String {
    match vip {
        IpAddr::V4(_) => format!("Sending gratuitous ARP on {interface} for {vip}"),
        IpAddr::V6(_) => format!("Sending unsolicited Neighbour Advert on {interface} for {vip}"),
    }
}

pub fn sent_zero_priority(instance: &str) -> String {
    format!("({instance}) sent 0 priority")
}

pub fn stopped() -> &'static str {
    "Stopped"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::Reason;

    const PEER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 12));
    const VIP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 100));

    #[test]
    fn transition_lines() {
        let t = |from, to| transition("VI_1", from, to);
        assert_eq!(
            t(State::Initialize, State::Backup).as_deref(),
            Some("(VI_1) Entering BACKUP STATE (init)")
        );
        assert_eq!(
            t(State::Initialize, State::Fault).as_deref(),
            Some("(VI_1) Entering FAULT STATE (init)")
        );
        assert_eq!(
            t(State::Initialize, State::Master).as_deref(),
            Some("(VI_1) Entering MASTER STATE")
        );
        assert_eq!(
            t(State::Backup, State::Master).as_deref(),
            Some("(VI_1) Entering MASTER STATE")
        );
        assert_eq!(
            t(State::Master, State::Backup).as_deref(),
            Some("(VI_1) Entering BACKUP STATE")
        );
        assert_eq!(
            t(State::Fault, State::Backup).as_deref(),
            Some("(VI_1) Entering BACKUP STATE")
        );
        assert_eq!(
            t(State::Backup, State::Fault).as_deref(),
            Some("(VI_1) Entering FAULT STATE")
        );
        assert_eq!(t(State::Master, State::Initialize), None);
    }

    #[test]
    fn advert_decision_lines() {
        let l = |x| line("VI_1", &x);
        assert_eq!(
            l(LogLine::ReceiveTimeout),
            "(VI_1) Receive advertisement timeout"
        );
        assert_eq!(
            l(LogLine::MasterReceivedHigher {
                from: PEER,
                priority: 150,
                ours: 100
            }),
            "(VI_1) Master received advert from 192.0.2.12 with higher priority 150, ours 100"
        );
        assert_eq!(
            l(LogLine::MasterReceivedSameHigherIp {
                from: PEER,
                priority: 100
            }),
            "(VI_1) Master received advert from 192.0.2.12 with same priority 100 but higher IP address than ours"
        );
        assert_eq!(
            l(LogLine::MasterReceivedLower {
                from: PEER,
                priority: 90,
                ours: 100
            }),
            "(VI_1) Received advert from 192.0.2.12 with lower priority 90, ours 100, forcing new election"
        );
        assert_eq!(
            l(LogLine::BackupDiscardedLower {
                from: PEER,
                priority: 90
            }),
            "(VI_1) received lower priority (90) advert from 192.0.2.12 - discarding"
        );
        assert_eq!(
            l(LogLine::BackupReceivedPriorityZero),
            "(VI_1) Backup received priority 0 advertisement"
        );
        assert_eq!(
            l(LogLine::MasterReceivedPriorityZero),
            "(VI_1) Master received priority 0 message"
        );
        assert!(LogLine::ReceiveTimeout.is_detail());
        assert!(!LogLine::BackupDiscardedLower {
            from: PEER,
            priority: 1
        }
        .is_detail());
    }

    #[test]
    fn action_lines() {
        assert_eq!(
            action("VI_1", &Action::PriorityChanged { from: 100, to: 80 }).as_deref(),
            Some("(VI_1) Changing effective priority from 100 to 80")
        );
        assert_eq!(
            action(
                "VI_1",
                &Action::Transition {
                    from: State::Backup,
                    to: State::Master,
                    reason: Reason::MasterDownTimer
                }
            )
            .as_deref(),
            Some("(VI_1) Entering MASTER STATE")
        );
        assert_eq!(action("VI_1", &Action::AddVips), None);
    }

    #[test]
    fn script_and_link_lines() {
        assert_eq!(
            script_succeeded("chk_web"),
            "VRRP_Script(chk_web) succeeded"
        );
        assert_eq!(
            script_failed_status("chk_web", 1),
            "VRRP_Script(chk_web) failed (exited with status 1)"
        );
        assert_eq!(
            script_failed_signal("chk_web", 9),
            "VRRP_Script(chk_web) failed (due to signal 9)"
        );
        assert_eq!(
            script_timed_out("chk_web"),
            "VRRP_Script(chk_web) timed_out"
        );
        assert_eq!(
            script_now_returning("chk_web", 1),
            "Script `chk_web` now returning 1"
        );
        assert_eq!(
            script_overrun("chk_web"),
            "Track script chk_web is already running, expect idle - skipping run"
        );
        assert_eq!(link_changed("eth1", false), "Netlink reports eth1 down");
        assert_eq!(link_changed("eth1", true), "Netlink reports eth1 up");
    }

    #[test]
    fn vip_garp_and_shutdown_lines() {
        assert_eq!(setting_vips("VI_1"), "(VI_1) setting VIPs.");
        assert_eq!(removing_vips("VI_1"), "(VI_1) removing VIPs.");
        assert_eq!(
            sending_garps("VI_1", "eth0", VIP),
            "(VI_1) Sending/queueing gratuitous ARPs on eth0 for 192.0.2.100"
        );
        assert_eq!(
            sending_garp("eth0", VIP),
            "Sending gratuitous ARP on eth0 for 192.0.2.100"
        );
        assert_eq!(sent_zero_priority("VI_1"), "(VI_1) sent 0 priority");
        assert_eq!(stopped(), "Stopped");
    }

    #[test]
    fn bad_advert_lines() {
        let b = |r| bad_advert("VI_1", &r);
        assert_eq!(
            b(DropReason::IntervalMismatch {
                got: 200,
                expected: 100
            }),
            "(VI_1) advertisement interval mismatch mine=1 sec rcv'd=2 sec"
        );
        assert_eq!(
            b(DropReason::BadPassword),
            "(VI_1) received an invalid passwd!"
        );
        assert_eq!(
            b(DropReason::AuthTypeMismatch {
                got: 0,
                expected: 1
            }),
            "(VI_1) received a 0 auth, expecting 1!"
        );
        assert_eq!(
            b(DropReason::BadChecksum { version: 2 }),
            "(VI_1) Invalid VRRPv2 checksum"
        );
        assert_eq!(
            b(DropReason::BadTtl { got: 64 }),
            "(VI_1) invalid TTL/HL. Received 64 and expect 255"
        );
        assert_eq!(
            b(DropReason::VersionMismatch {
                got: 3,
                expected: 2
            }),
            "(VI_1) wrong version. Received 3 and expect 2"
        );
        assert_eq!(
            b(DropReason::AddressCountMismatch {
                got: 2,
                expected: 1
            }),
            "(VI_1) received an unexpected ip number count 2, expected 1!"
        );
        assert_eq!(
            b(DropReason::AddressMismatch {
                vrid: 51,
                missing: VIP
            }),
            "(VI_1) ip address associated with VRID 51 not present in MASTER advert: 192.0.2.100"
        );
    }
}
