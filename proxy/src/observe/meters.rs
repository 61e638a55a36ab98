//! Counters of the stats page, CSV and `/metrics` (lb.md §16): plain atomics owned by the
//! frontend, backend or server they count, bumped with relaxed adds on the request path (no
//! lock). A reload hands the same meters to the new balancer, so totals only go up.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::snapshot::RowCounters;

/// HTTP response classes in HAProxy's order: 1xx, 2xx, 3xx, 4xx, 5xx, other.
pub const HTTP_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "other"];

/// The index into [`HTTP_CLASSES`] of a status code.
pub fn http_class(status: u16) -> usize {
    match status {
        100..=599 => usize::from(status / 100) - 1,
        _ => 5,
    }
}

/// What one frontend, backend or server counts. Fields a kind of row has no use for stay 0
/// (a frontend never retries); the renderers leave those cells empty, as HAProxy does.
#[derive(Debug, Default)]
pub struct Meters {
    /// Sessions (client connections for a frontend, requests for a backend or server).
    pub sessions_total: AtomicU64,
    pub sessions_max: AtomicU64,
    /// Requests handed to a server by the balancing (HAProxy LbTot).
    pub lb_total: AtomicU64,
    pub requests_total: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub denied_requests: AtomicU64,
    pub errors_request: AtomicU64,
    pub errors_connect: AtomicU64,
    pub errors_response: AtomicU64,
    pub retries: AtomicU64,
    pub redispatches: AtomicU64,
    pub http_responses: [AtomicU64; 6],
    pub queue_max: AtomicU64,
    /// Failed health checks.
    pub check_failures: AtomicU64,
    /// UP -> DOWN transitions.
    pub check_downs: AtomicU64,
    /// Milliseconds spent DOWN before the current DOWN period (see [`Meters::downtime`]).
    downtime_ms: AtomicU64,
    /// Unix milliseconds of the current DOWN period's start; 0 while UP.
    down_since_ms: AtomicU64,
    /// Unix milliseconds of the last UP/DOWN change (or of the start).
    last_change_ms: AtomicU64,
    /// Server response-header time (HAProxy `rtime`), HTTP exchanges of backends and servers.
    pub response_time: TimeWindow,
    /// Whole exchange or tcp session time (HAProxy `ttime`), backends and servers.
    pub total_time: TimeWindow,
    /// Taken by the stats snapshot only (never on the request path).
    rate: std::sync::Mutex<RateSample>,
}

impl Meters {
    pub fn new() -> Meters {
        let m = Meters::default();
        m.last_change_ms.store(unix_ms(), Ordering::Relaxed);
        m
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// A new session; `current` is the number open with it, for the maximum.
    pub fn session_started(&self, current: usize) {
        self.sessions_total.fetch_add(1, Ordering::Relaxed);
        let cur = current as u64;
        if cur > self.sessions_max.load(Ordering::Relaxed) {
            self.sessions_max.fetch_max(cur, Ordering::Relaxed);
        }
    }

    pub fn queued(&self, length: usize) {
        let len = length as u64;
        if len > self.queue_max.load(Ordering::Relaxed) {
            self.queue_max.fetch_max(len, Ordering::Relaxed);
        }
    }

    /// One finished exchange: its status (0 = none sent) and response bytes.
    pub fn response(&self, status: u16, bytes_out: u64) {
        self.requests_total.fetch_add(1, Ordering::Relaxed);
        if status != 0 {
            self.http_responses[http_class(status)].fetch_add(1, Ordering::Relaxed);
        }
        if bytes_out > 0 {
            self.bytes_out.fetch_add(bytes_out, Ordering::Relaxed);
        }
    }

    /// The server went DOWN (`true`) or came UP.
    pub fn went(&self, down: bool) {
        let now = unix_ms();
        self.last_change_ms.store(now, Ordering::Relaxed);
        if down {
            self.check_downs.fetch_add(1, Ordering::Relaxed);
            self.down_since_ms.store(now.max(1), Ordering::Relaxed);
        } else {
            let since = self.down_since_ms.swap(0, Ordering::Relaxed);
            if since != 0 {
                self.downtime_ms
                    .fetch_add(now.saturating_sub(since), Ordering::Relaxed);
            }
        }
    }

    /// Total time DOWN, the running DOWN period included.
    pub fn downtime(&self) -> std::time::Duration {
        let since = self.down_since_ms.load(Ordering::Relaxed);
        let running = if since == 0 {
            0
        } else {
            unix_ms().saturating_sub(since)
        };
        std::time::Duration::from_millis(self.downtime_ms.load(Ordering::Relaxed) + running)
    }

    /// Time since the last UP/DOWN change.
    pub fn since_last_change(&self) -> std::time::Duration {
        std::time::Duration::from_millis(
            unix_ms().saturating_sub(self.last_change_ms.load(Ordering::Relaxed)),
        )
    }

    /// (rate, highest rate) of `total` since the previous snapshot.
    pub fn rate_of(&self, total: u64) -> (u64, u64) {
        let mut r = self.rate.lock().unwrap_or_else(|e| e.into_inner());
        r.update(total, Instant::now());
        (r.rate, r.max)
    }

    /// The counters' values now, for the stats snapshot.
    pub fn row_counters(&self) -> RowCounters {
        let m = self;
        RowCounters {
            sessions_total: Meters::get(&m.sessions_total),
            sessions_max: Meters::get(&m.sessions_max),
            lb_total: Meters::get(&m.sessions_total),
            requests_total: Meters::get(&m.requests_total),
            bytes_in: Meters::get(&m.bytes_in),
            bytes_out: Meters::get(&m.bytes_out),
            denied_requests: Meters::get(&m.denied_requests),
            errors_request: Meters::get(&m.errors_request),
            errors_connect: Meters::get(&m.errors_connect),
            errors_response: Meters::get(&m.errors_response),
            retries: Meters::get(&m.retries),
            redispatches: Meters::get(&m.redispatches),
            http_responses: m.http(),
            queue_max: Meters::get(&m.queue_max),
            response_time_us: m.response_time.average_us(),
            total_time_us: m.total_time.average_us(),
            ..RowCounters::default()
        }
    }

    pub fn http(&self) -> [u64; 6] {
        std::array::from_fn(|i| self.http_responses[i].load(Ordering::Relaxed))
    }
}

/// Samples averaged per window, as HAProxy averages its times over the last 1024 requests.
pub const TIME_WINDOW: u64 = 1024;
/// Bits of the packed window word that hold the sum of microseconds; the count sits above.
const SUM_BITS: u32 = 48;
const SUM_MASK: u64 = (1 << SUM_BITS) - 1;
/// One sample never adds more than this (about 38 hours), so two windows of them fit in
/// the sum.
const SAMPLE_CAP_US: u64 = SUM_MASK / (2 * TIME_WINDOW);

/// Average of the last full window of [`TIME_WINDOW`] durations (or of the samples so far
/// before the first window fills). One packed atomic word holds count and sum, so a sample
/// costs one relaxed add; an add that fills the window empties it with a compare-exchange
/// (only one wins; samples that raced in before it count in that window's average).
#[derive(Debug, Default)]
pub struct TimeWindow {
    /// count << SUM_BITS | sum of microseconds.
    open: AtomicU64,
    /// Average of the last full window in microseconds, plus one (0 = none full yet).
    last: AtomicU64,
}

impl TimeWindow {
    pub fn add(&self, d: std::time::Duration) {
        let us = u64::try_from(d.as_micros())
            .unwrap_or(u64::MAX)
            .min(SAMPLE_CAP_US);
        let sample = (1 << SUM_BITS) | us;
        let now = self
            .open
            .fetch_add(sample, Ordering::Relaxed)
            .wrapping_add(sample);
        if now >> SUM_BITS >= TIME_WINDOW {
            self.close_window();
        }
    }

    #[cold]
    fn close_window(&self) {
        let mut cur = self.open.load(Ordering::Relaxed);
        while cur >> SUM_BITS >= TIME_WINDOW {
            match self
                .open
                .compare_exchange_weak(cur, 0, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => {
                    let avg = (cur & SUM_MASK) / (cur >> SUM_BITS);
                    self.last.store(avg + 1, Ordering::Relaxed);
                    return;
                }
                Err(seen) => cur = seen,
            }
        }
    }

    /// Microseconds; 0 before any sample.
    pub fn average_us(&self) -> u64 {
        match self.last.load(Ordering::Relaxed) {
            0 => {
                let open = self.open.load(Ordering::Relaxed);
                (open & SUM_MASK).checked_div(open >> SUM_BITS).unwrap_or(0)
            }
            last => last - 1,
        }
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Events per second from successive samples of a total, with the highest rate seen
/// (HAProxy's `rate` and `rate_max`). Sampled by the stats listener, never on the request
/// path.
#[derive(Debug, Default, Clone, Copy)]
pub struct RateSample {
    last_total: u64,
    last_at: Option<Instant>,
    pub rate: u64,
    pub max: u64,
}

impl RateSample {
    pub fn update(&mut self, total: u64, now: Instant) {
        if let Some(at) = self.last_at {
            let dt = now.saturating_duration_since(at).as_secs_f64();
            if dt >= 0.5 {
                let r = (total.saturating_sub(self.last_total) as f64 / dt).round() as u64;
                self.rate = r;
                self.max = self.max.max(r);
            } else {
                return;
            }
        }
        self.last_total = total;
        self.last_at = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_follow_haproxy() {
        assert_eq!(http_class(101), 0);
        assert_eq!(http_class(204), 1);
        assert_eq!(http_class(302), 2);
        assert_eq!(http_class(404), 3);
        assert_eq!(http_class(503), 4);
        assert_eq!(http_class(0), 5);
        assert_eq!(http_class(700), 5);
    }

    #[test]
    fn downtime_adds_up_down_periods() {
        let m = Meters::new();
        m.went(true);
        std::thread::sleep(std::time::Duration::from_millis(30));
        assert!(m.downtime() >= std::time::Duration::from_millis(30));
        m.went(false);
        let d = m.downtime();
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(m.downtime(), d, "no downtime accrues while UP");
        assert_eq!(Meters::get(&m.check_downs), 1);
    }

    #[test]
    fn time_window_averages_the_last_full_window() {
        let ms = std::time::Duration::from_millis;
        let w = TimeWindow::default();
        assert_eq!(w.average_us(), 0);
        w.add(ms(2));
        w.add(ms(4));
        assert_eq!(
            w.average_us(),
            3_000,
            "partial window before the first is full"
        );
        for _ in 2..TIME_WINDOW {
            w.add(ms(1));
        }
        // (2 + 4 + 1022 × 1) ms / 1024
        assert_eq!(w.average_us(), (6_000 + 1_022_000) / 1024);
        for _ in 0..TIME_WINDOW - 1 {
            w.add(ms(10));
        }
        assert_eq!(
            w.average_us(),
            (6_000 + 1_022_000) / 1024,
            "window not full yet"
        );
        w.add(ms(10));
        assert_eq!(w.average_us(), 10_000);
        w.add(std::time::Duration::from_secs(u64::MAX / 4));
        assert_eq!(w.average_us(), 10_000);
        assert_eq!(
            w.open.load(Ordering::Relaxed) >> SUM_BITS,
            1,
            "capped, no carry"
        );
    }

    #[test]
    fn time_window_concurrent_adds_lose_nothing() {
        let w = std::sync::Arc::new(TimeWindow::default());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let w = w.clone();
                std::thread::spawn(move || {
                    for _ in 0..TIME_WINDOW * 3 {
                        w.add(std::time::Duration::from_micros(500));
                    }
                })
            })
            .collect();
        for t in threads {
            let _ = t.join();
        }
        assert_eq!(w.average_us(), 500);
        let left = w.open.load(Ordering::Relaxed);
        assert!(
            left >> SUM_BITS < TIME_WINDOW,
            "windows are emptied as they fill"
        );
        assert_eq!(
            left & SUM_MASK,
            (left >> SUM_BITS) * 500,
            "no sample lost or torn"
        );
    }

    #[test]
    fn maximum_and_rate() {
        let m = Meters::new();
        m.session_started(3);
        m.session_started(1);
        assert_eq!(Meters::get(&m.sessions_max), 3);
        assert_eq!(Meters::get(&m.sessions_total), 2);
        let t0 = Instant::now();
        let mut r = RateSample::default();
        r.update(10, t0);
        r.update(30, t0 + std::time::Duration::from_secs(2));
        assert_eq!((r.rate, r.max), (10, 10));
        r.update(32, t0 + std::time::Duration::from_secs(4));
        assert_eq!((r.rate, r.max), (1, 10));
    }
}
