//! The driver's one timer, a `timerfd` watched by tokio's reactor like the VRRP socket.
//!
//! Why not `tokio::time::sleep_until`: tokio keeps timers in a wheel whose second level has
//! 64 ms slots, so a deadline 100 ms or 1 s away wakes the thread once early (the slot opens
//! and the timer moves down a level) and again when due; and every new sleep earlier than the
//! wheel's next wake-up writes the runtime's eventfd to shorten the current park. At 100 ms
//! adverts that doubled the engine's wake-ups (20 a second for 10 adverts, keepalived 10).
//! The kernel's timer wakes us exactly once, at the deadline.

use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::{Duration, Instant};

use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// `AsyncFd` wants `AsRawFd`; nix's `TimerFd` offers `AsFd`.
struct Fd(TimerFd);

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// A one-shot alarm: [`Alarm::set`] a time, then [`Alarm::fired`] completes once it passed.
pub struct Alarm {
    fd: AsyncFd<Fd>,
    /// The time the kernel timer is armed for; None when disarmed (or fired).
    armed: Option<Instant>,
}

impl Alarm {
    /// A disarmed alarm on CLOCK_MONOTONIC (the clock of `Instant`). Needs a tokio runtime
    /// with IO enabled.
    pub fn new() -> io::Result<Alarm> {
        let timer = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )
        .map_err(io::Error::from)?;
        // SAFETY: `Fd` owns the timer's descriptor and the AsyncFd keeps it, unreplaced and
        // open, until both are dropped together.
        let fd = unsafe { AsyncFd::register_with_interest(Fd(timer), Interest::READABLE) }
            .map_err(io::Error::from)?;
        Ok(Alarm { fd, armed: None })
    }

    /// Arms the alarm for `at`, replacing the earlier time; nothing to do when it is the same.
    pub fn set(&mut self, at: Instant) -> io::Result<()> {
        if self.armed == Some(at) {
            return Ok(());
        }
        // Relative to now: `Instant` cannot be turned into a CLOCK_MONOTONIC timespec, and
        // the microseconds between the two readings do not matter. Zero would disarm.
        let after = at
            .saturating_duration_since(Instant::now())
            .max(Duration::from_nanos(1));
        self.fd
            .get_ref()
            .0
            .set(
                Expiration::OneShot(TimeSpec::from_duration(after)),
                TimerSetTimeFlags::empty(),
            )
            .map_err(io::Error::from)?;
        self.armed = Some(at);
        Ok(())
    }

    /// Completes once the armed time has passed (never while disarmed). The alarm is then
    /// disarmed until the next [`Alarm::set`].
    pub async fn fired(&mut self) -> io::Result<()> {
        if self.armed.is_none() {
            std::future::pending::<()>().await;
        }
        loop {
            let mut guard = self.fd.readable().await?;
            let mut expirations = [0u8; 8];
            match guard.try_io(|fd| {
                nix::unistd::read(fd.get_ref().0.as_fd(), &mut expirations).map_err(io::Error::from)
            }) {
                Ok(Ok(_)) => {
                    // One-shot: unreadable until armed and due again, so the next wait
                    // need not try a read to learn it.
                    guard.clear_ready();
                    self.armed = None;
                    return Ok(());
                }
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fires_once_at_the_time_set_and_follows_a_new_time() {
        let mut alarm = Alarm::new().expect("timerfd");
        let t0 = Instant::now();
        alarm.set(t0 + Duration::from_millis(300)).expect("set");
        // Moved earlier before it fired: the new time wins.
        alarm.set(t0 + Duration::from_millis(30)).expect("set");
        alarm.fired().await.expect("fired");
        let took = t0.elapsed();
        assert!(
            took >= Duration::from_millis(30) && took < Duration::from_millis(250),
            "{took:?}"
        );
        // Disarmed now: does not fire again by itself.
        let again = tokio::time::timeout(Duration::from_millis(100), alarm.fired()).await;
        assert!(again.is_err(), "fired while disarmed");
        // A time already past fires at once.
        alarm
            .set(Instant::now() - Duration::from_millis(5))
            .expect("set");
        tokio::time::timeout(Duration::from_millis(100), alarm.fired())
            .await
            .expect("a past time fires at once")
            .expect("fired");
    }
}
