//! The VRRP engine's own OS thread and runtime (architecture.md "Threads"): adverts must leave
//! on time whatever the balancer is doing, so the instances never share a thread with it.
//! The thread may run SCHED_RR (`global.vrrp_realtime_priority`, keepalived's
//! `vrrp_rt_priority`); scripts and threads started from it fall back to normal scheduling
//! (SCHED_RESET_ON_FORK). The balancer and the engine talk through watch channels and the
//! MASTER hooks, which run on the balancer's runtime (see wiring.rs).

use std::io;
use std::thread::JoinHandle;
use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tracing::{info, warn};

/// The running engine thread; dropping it stops the runtime and joins the thread.
pub struct Engine {
    handle: Handle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Engine {
    /// Starts the thread. `realtime_priority` 1..=99 asks for SCHED_RR at that priority; a
    /// refusal (no CAP_SYS_NICE, an RT budget of 0 in the cgroup) is logged and the engine
    /// runs with normal scheduling, as keepalived does.
    pub fn start(realtime_priority: Option<u8>) -> io::Result<Engine> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name("vrrp-engine")
            .build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("vrrp-engine".into())
            .spawn(move || {
                if let Some(p) = realtime_priority.filter(|p| *p > 0) {
                    match set_realtime(p) {
                        Ok(()) => info!("VRRP engine thread runs SCHED_RR priority {p}"),
                        Err(e) => warn!(
                            "VRRP engine thread cannot run SCHED_RR priority {p}: {e}; using normal scheduling"
                        ),
                    }
                }
                runtime.block_on(async {
                    let _ = stopped.await;
                });
                // Tasks still on it (instances already stopped) are dropped here.
                runtime.shutdown_timeout(std::time::Duration::from_millis(100));
            })?;
        Ok(Engine {
            handle,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Where instances are started (their tasks then stay on this thread).
    pub fn handle(&self) -> &Handle {
        &self.handle
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// SCHED_RR for the calling thread only, reset to SCHED_OTHER in anything it forks or clones
/// (notify and track scripts must not run realtime).
fn set_realtime(priority: u8) -> io::Result<()> {
    let param = libc::sched_param {
        sched_priority: i32::from(priority),
    };
    // SAFETY: pid 0 is the calling thread; `param` is a live, initialised sched_param.
    let rc =
        unsafe { libc::sched_setscheduler(0, libc::SCHED_RR | libc::SCHED_RESET_ON_FORK, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
