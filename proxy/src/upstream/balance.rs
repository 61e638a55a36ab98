//! Balancing algorithms (lb.md §3), pure: candidates in, a server index out. Candidates are
//! given in file order; the caller has already removed unusable and, where the algorithm
//! says so, full servers.

use std::net::IpAddr;

/// A server offered to an algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// Server index in the backend (file order).
    pub server: usize,
    pub weight: u32,
    /// Requests in flight plus requests queued for this server (leastconn only).
    pub load: usize,
}

/// Smooth weighted round-robin (the nginx scheme): every pick adds each candidate's weight
/// to its `current`, takes the largest (ties: file order) and takes the total back from it.
/// Weights 3:1:1 give A B A C A: interleaved, never a burst.
#[derive(Debug, Default)]
pub struct SmoothRoundRobin {
    current: Vec<i64>,
    /// Usable set of the previous pick; a change resets every `current` (lb.md §3).
    usable: Vec<usize>,
}

impl SmoothRoundRobin {
    /// `usable`: the full candidate set (changes reset the state); `eligible`: the subset that
    /// may take this request (not full), in file order.
    pub fn pick(&mut self, usable: &[usize], eligible: &[Candidate]) -> Option<usize> {
        if self.usable != usable {
            self.usable.clear();
            self.usable.extend_from_slice(usable);
            self.current.iter_mut().for_each(|c| *c = 0);
        }
        let mut total: i64 = 0;
        let mut best: Option<(usize, i64)> = None;
        for c in eligible.iter().filter(|c| c.weight > 0) {
            if self.current.len() <= c.server {
                self.current.resize(c.server + 1, 0);
            }
            let cur = &mut self.current[c.server];
            *cur += i64::from(c.weight);
            total += i64::from(c.weight);
            if !matches!(best, Some((_, b)) if *cur <= b) {
                best = Some((c.server, *cur));
            }
        }
        let (server, _) = best?;
        self.current[server] -= total;
        Some(server)
    }
}

/// Least connections: smallest load/weight (compared by cross-multiplication); ties go to the
/// first tied server after `last` (the previous pick), rotating.
pub fn least_conn(eligible: &[Candidate], last: Option<usize>) -> Option<usize> {
    let n = eligible.len();
    let start = match last {
        Some(l) => eligible.iter().position(|c| c.server > l).unwrap_or(0),
        None => 0,
    };
    let mut best: Option<&Candidate> = None;
    for i in 0..n {
        let c = &eligible[(start + i) % n];
        if c.weight == 0 {
            continue;
        }
        let better = match best {
            None => true,
            // c.load / c.weight < b.load / b.weight
            Some(b) => {
                (c.load as u128) * u128::from(b.weight) < (b.load as u128) * u128::from(c.weight)
            }
        };
        if better {
            best = Some(c);
        }
    }
    best.map(|c| c.server)
}

/// 32-bit FNV-1a: fixed, no per-process seed, so both boxes and restarts agree.
pub fn fnv1a32(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// The hash key of a client: 4 bytes for IPv4 (and IPv4-mapped IPv6), else 16.
pub fn source_hash(ip: IpAddr) -> u32 {
    match ip {
        IpAddr::V4(v4) => fnv1a32(&v4.octets()),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => fnv1a32(&v4.octets()),
            None => fnv1a32(&v6.octets()),
        },
    }
}

/// Source hashing over a map of the candidates in file order, each repeated `weight` times.
pub fn source(candidates: &[Candidate], ip: IpAddr) -> Option<usize> {
    let total: u64 = candidates.iter().map(|c| u64::from(c.weight)).sum();
    if total == 0 {
        return None;
    }
    let mut slot = u64::from(source_hash(ip)) % total;
    for c in candidates {
        let w = u64::from(c.weight);
        if slot < w {
            return Some(c.server);
        }
        slot -= w;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cands(weights: &[u32]) -> Vec<Candidate> {
        weights
            .iter()
            .enumerate()
            .map(|(server, &weight)| Candidate {
                server,
                weight,
                load: 0,
            })
            .collect()
    }

    fn usable(c: &[Candidate]) -> Vec<usize> {
        c.iter().map(|c| c.server).collect()
    }

    #[test]
    fn smooth_round_robin_interleaves_weights() {
        let c = cands(&[3, 1, 1]);
        let mut rr = SmoothRoundRobin::default();
        let picks: Vec<_> = (0..10).map(|_| rr.pick(&usable(&c), &c).unwrap()).collect();
        assert_eq!(picks, vec![0, 1, 0, 2, 0, 0, 1, 0, 2, 0]);
    }

    #[test]
    fn round_robin_even_split_and_zero_weight_never_picked() {
        let c = cands(&[1, 0, 1]);
        let mut rr = SmoothRoundRobin::default();
        let picks: Vec<_> = (0..4).map(|_| rr.pick(&usable(&c), &c).unwrap()).collect();
        assert_eq!(picks, vec![0, 2, 0, 2]);
        assert_eq!(rr.pick(&[], &[]), None);
    }

    #[test]
    fn round_robin_resets_when_the_usable_set_changes() {
        let c = cands(&[3, 1]);
        let mut rr = SmoothRoundRobin::default();
        rr.pick(&usable(&c), &c);
        let only_b = &c[1..];
        assert_eq!(rr.pick(&usable(only_b), only_b), Some(1));
        assert_eq!(rr.pick(&usable(&c), &c), Some(0));
        assert_eq!(rr.current, vec![-1, 1]);
    }

    #[test]
    fn least_conn_prefers_idle_and_respects_weight() {
        let mut c = cands(&[1, 1]);
        c[0].load = 3;
        assert_eq!(least_conn(&c, None), Some(1));
        let mut c = cands(&[4, 1]);
        c[0].load = 3; // 3/4 < 1/1
        c[1].load = 1;
        assert_eq!(least_conn(&c, None), Some(0));
    }

    #[test]
    fn least_conn_rotates_on_ties() {
        let c = cands(&[1, 1, 1]);
        assert_eq!(least_conn(&c, None), Some(0));
        assert_eq!(least_conn(&c, Some(0)), Some(1));
        assert_eq!(least_conn(&c, Some(1)), Some(2));
        assert_eq!(least_conn(&c, Some(2)), Some(0));
        // Rotation works on server indices even when some are absent.
        let sparse = [c[0], c[2]];
        assert_eq!(least_conn(&sparse, Some(1)), Some(2));
    }

    #[test]
    fn fnv1a_known_values() {
        assert_eq!(fnv1a32(b""), 0x811c_9dc5);
        assert_eq!(fnv1a32(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a32(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn source_is_stable_and_ipv4_mapped_equals_ipv4() {
        let c = cands(&[1, 2, 1]);
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        let first = source(&c, v4);
        assert_eq!(first, source(&c, v4));
        assert_eq!(first, source(&c, mapped));
        let expected = match fnv1a32(&[192, 0, 2, 7]) % 4 {
            0 => 0,
            1 | 2 => 1,
            _ => 2,
        };
        assert_eq!(first, Some(expected));
        assert_eq!(source(&cands(&[0, 0]), v4), None);
    }

    #[test]
    fn source_spreads_clients() {
        let c = cands(&[1, 1]);
        let mut seen = [0usize; 2];
        for i in 0..64u8 {
            let ip = IpAddr::from([10, 0, 0, i]);
            seen[source(&c, ip).unwrap()] += 1;
        }
        assert!(seen[0] > 10 && seen[1] > 10, "{seen:?}");
    }
}
