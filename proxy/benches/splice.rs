//! splice(2) through a pipe against the plain copy (issue 11 §5), as the tcp tunnel relays
//! bytes: a sender writes N bytes over loopback to a relay, which moves them to a receiver
//! on a second loopback connection, either with read(2)/write(2) through a 64 KiB buffer
//! (what upstream/relay.rs does) or with splice(2) socket → pipe → socket, 64 KiB at a time.
//! Printed per size and method: the median over the runs of the relay thread's CPU time and
//! of the wall time (throughput).
//!
//! Self-contained (std and three libc calls declared here), so it also builds as a plain
//! optimised binary: `rustc -O --edition 2021 proxy/benches/splice.rs -o /tmp/splice &&
//! /tmp/splice`, or `cargo bench -p proxy --bench splice`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

const CHUNK: usize = 64 * 1024;
const SPLICE_F_MOVE: u32 = 1;
const SPLICE_F_MORE: u32 = 4;
const CLOCK_THREAD_CPUTIME_ID: i32 = 3;

#[repr(C)]
struct Timespec {
    tv_sec: i64,
    tv_nsec: i64,
}

extern "C" {
    fn splice(
        fd_in: i32,
        off_in: *mut i64,
        fd_out: i32,
        off_out: *mut i64,
        len: usize,
        flags: u32,
    ) -> isize;
    fn pipe(fds: *mut i32) -> i32;
    fn close(fd: i32) -> i32;
    fn clock_gettime(clock: i32, tp: *mut Timespec) -> i32;
}

fn thread_cpu() -> Duration {
    let mut t = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the struct passed.
    unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut t) };
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

#[derive(Clone, Copy)]
enum Method {
    Copy,
    Splice,
}

fn relay_copy(mut from: TcpStream, mut to: TcpStream) -> u64 {
    let mut buf = vec![0u8; CHUNK];
    let mut moved = 0;
    loop {
        let n = from.read(&mut buf).expect("read");
        if n == 0 {
            return moved;
        }
        to.write_all(&buf[..n]).expect("write");
        moved += n as u64;
    }
}

fn relay_splice(from: TcpStream, to: TcpStream) -> u64 {
    let mut p = [0i32; 2];
    // SAFETY: pipe writes two descriptors into the array.
    assert_eq!(unsafe { pipe(p.as_mut_ptr()) }, 0, "pipe");
    let (rd, wr) = (p[0], p[1]);
    let (src, dst) = (from.as_raw_fd(), to.as_raw_fd());
    let mut moved = 0u64;
    loop {
        // SAFETY: plain system calls on descriptors owned here.
        let n = unsafe {
            splice(
                src,
                std::ptr::null_mut(),
                wr,
                std::ptr::null_mut(),
                CHUNK,
                SPLICE_F_MOVE | SPLICE_F_MORE,
            )
        };
        assert!(n >= 0, "splice in: {}", std::io::Error::last_os_error());
        if n == 0 {
            break;
        }
        let mut left = n as usize;
        while left > 0 {
            let m = unsafe {
                splice(
                    rd,
                    std::ptr::null_mut(),
                    dst,
                    std::ptr::null_mut(),
                    left,
                    SPLICE_F_MOVE | SPLICE_F_MORE,
                )
            };
            assert!(m > 0, "splice out: {}", std::io::Error::last_os_error());
            left -= m as usize;
        }
        moved += n as u64;
    }
    unsafe {
        close(rd);
        close(wr);
    }
    moved
}

/// One transfer of `size` bytes: (relay CPU time, wall time).
fn transfer(size: u64, method: Method) -> (Duration, Duration) {
    let front = TcpListener::bind("127.0.0.1:0").expect("bind");
    let back = TcpListener::bind("127.0.0.1:0").expect("bind");
    let (fa, ba) = (
        front.local_addr().expect("addr"),
        back.local_addr().expect("addr"),
    );
    let sink = std::thread::spawn(move || {
        let (mut s, _) = back.accept().expect("accept");
        let mut buf = vec![0u8; CHUNK];
        let mut got = 0u64;
        loop {
            let n = s.read(&mut buf).expect("sink read");
            if n == 0 {
                return got;
            }
            got += n as u64;
        }
    });
    let relay = std::thread::spawn(move || {
        let (from, _) = front.accept().expect("accept");
        let to = TcpStream::connect(ba).expect("connect back");
        let _ = to.set_nodelay(true);
        let cpu = thread_cpu();
        let moved = match method {
            Method::Copy => relay_copy(from, to),
            Method::Splice => relay_splice(from, to),
        };
        (moved, thread_cpu() - cpu)
    });
    let mut src = TcpStream::connect(fa).expect("connect front");
    let block = vec![0x5au8; CHUNK];
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < size {
        let n = (size - sent).min(CHUNK as u64) as usize;
        src.write_all(&block[..n]).expect("send");
        sent += n as u64;
    }
    drop(src);
    let (moved, cpu) = relay.join().expect("relay");
    let got = sink.join().expect("sink");
    let wall = start.elapsed();
    assert_eq!((moved, got), (size, size));
    (cpu, wall)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes --bench; nothing else is read.
    for (label, size, runs) in [("1 MB", 1u64 << 20, 41), ("100 MB", 100u64 << 20, 9)] {
        for (name, method) in [("copy", Method::Copy), ("splice", Method::Splice)] {
            // One warm-up run, then the measured ones.
            transfer(size, method);
            let (mut cpus, mut walls) = (Vec::new(), Vec::new());
            for _ in 0..runs {
                let (c, w) = transfer(size, method);
                cpus.push(c);
                walls.push(w);
            }
            let (cpu, wall) = (median(cpus), median(walls));
            let mb = size as f64 / (1u64 << 20) as f64;
            println!(
                "{label:>6} {name:>6}: relay CPU {:>8.3} ms ({:>6.3} ms/MB), wall {:>8.3} ms, {:>7.0} MB/s (median of {runs})",
                cpu.as_secs_f64() * 1e3,
                cpu.as_secs_f64() * 1e3 / mb,
                wall.as_secs_f64() * 1e3,
                mb / wall.as_secs_f64(),
            );
        }
    }
}
