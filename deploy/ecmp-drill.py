#!/usr/bin/env python3
"""The ECMP lab's drill (run by `deploy/ecmp-lab.sh drill` inside the client namespace).

Measures, against the VIP that every healthy box announces:
  spread     new flows (one connection each, from 90 source addresses) per box
  fail       a box dies (link down, vrrplb and FRR SIGKILLed): time to the router's
             withdrawal (its `ip route` polled every 10 ms) and to the last failed request of
             a 20 ms prober (new connection each), and long-lived connections broken on the
             boxes that stayed (the kernel's ECMP rehash moves some of their flows too)
  join       the dead box boots again: the same figures for the route's return
  sick       every backend of a box fails its health checks: the box withdraws itself
  heal       its backends come back: it announces again
  stop       vrrplb on a box stops (SIGTERM): it removes the address, bgpd withdraws it
Prints one line per figure and a final `RESULT key=value ...` line that tests parse.
Everything is bounded in count and time.
"""
import argparse
import socket
import subprocess
import threading
import time

SOURCES = [f"203.0.113.{i}" for i in range(100, 190)]
BOXES = {"198.51.100.11": "b1", "198.51.100.12": "b2", "198.51.100.13": "b3"}


def now_ms():
    return time.monotonic() * 1000.0


def read_answer(sock):
    """Reads one HTTP/1.1 response (Content-Length framed); returns (status, body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed before the response")
        data += chunk
        if len(data) > 65536:
            raise ConnectionError("response head too long")
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        k, _, v = line.partition(":")
        if k.strip().lower() == "content-length":
            length = int(v.strip())
    while len(body) < length:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed in the body")
        body += chunk
    return status, body[:length].decode("latin-1")


def box_of(status, body):
    """The box that served: the backends answer `wN via <box address>`."""
    if status != 200:
        raise ConnectionError(f"status {status}")
    addr = body.split()[-1] if body.split() else ""
    return BOXES.get(addr, addr or "?")


def get(sock, vip, close):
    conn = "close" if close else "keep-alive"
    sock.sendall(f"GET / HTTP/1.1\r\nHost: {vip}\r\nConnection: {conn}\r\n\r\n".encode())
    return box_of(*read_answer(sock))


def one_flow(vip, src, timeout):
    with socket.create_connection((vip, 80), timeout=timeout, source_address=(src, 0)) as s:
        return get(s, vip, True)


class Router:
    def __init__(self, netns, vip):
        self.netns, self.vip = netns, vip

    def nexthops(self):
        out = subprocess.run(
            ["ip", "-n", self.netns, "route", "show", f"{self.vip}/32"],
            capture_output=True, text=True, timeout=5).stdout
        hops = sorted(BOXES.get(w.split()[1], "?") for w in out.split("\n") if "via " in w
                      for w in [w[w.index("via "):]])
        return tuple(hops)

    def wait_for(self, want, limit_s=10.0):
        """Polls every 10 ms; returns the ms at which the next hops became `want`, or None."""
        end = now_ms() + limit_s * 1000
        while now_ms() < end:
            if self.nexthops() == want:
                return now_ms()
            time.sleep(0.01)
        return None


def spread(vip, flows):
    counts = {b: 0 for b in BOXES.values()}
    first30 = dict(counts)
    failed = 0
    for i in range(flows):
        try:
            b = one_flow(vip, SOURCES[i % len(SOURCES)], 1.0)
            counts[b] = counts.get(b, 0) + 1
            if i < 30:
                first30[b] = first30.get(b, 0) + 1
        except OSError:
            failed += 1
    return counts, first30, failed


class Prober(threading.Thread):
    """A new connection every 20 ms from rotating sources, each on its own thread (a probe
    that times out does not delay the next); records the start times of the failures."""

    def __init__(self, vip):
        super().__init__(daemon=True)
        self.vip, self.stop, self.fails, self.total = vip, threading.Event(), [], 0
        self.lock = threading.Lock()

    def probe(self, src):
        t = now_ms()
        try:
            one_flow(self.vip, src, 0.3)
        except OSError:
            with self.lock:
                self.fails.append(t)

    def run(self):
        threads = []
        while not self.stop.is_set() and self.total < 2000:
            th = threading.Thread(target=self.probe, args=(SOURCES[self.total % len(SOURCES)],),
                                  daemon=True)
            th.start()
            threads.append(th)
            self.total += 1
            self.stop.wait(0.02)
        for th in threads:
            th.join(2)


class Holders(threading.Thread):
    """Long-lived keep-alive connections, one request each every 200 ms; a connection that
    fails is recorded (with the box it started on) and not reopened."""

    def __init__(self, vip, count):
        super().__init__(daemon=True)
        self.vip, self.stop = vip, threading.Event()
        self.conns = []
        for i in range(count):
            src = SOURCES[i % len(SOURCES)]
            s = socket.create_connection((vip, 80), timeout=1.0, source_address=(src, 0))
            self.conns.append({"sock": s, "box": get(s, vip, False), "broken": None})

    def run(self):
        rounds = 0
        while not self.stop.is_set() and rounds < 500:
            for c in self.conns:
                if c["broken"] is not None:
                    continue
                try:
                    get(c["sock"], self.vip, False)
                except OSError as e:
                    c["broken"] = (now_ms(), type(e).__name__)
                    c["sock"].close()
            rounds += 1
            self.stop.wait(0.2)

    def close(self):
        for c in self.conns:
            c["sock"].close()


def event(args, router, name, action, box, want):
    """Runs `action` on `box` under the prober and the long-lived connections."""
    holders = Holders(args.vip, args.long)
    prober = Prober(args.vip)
    holders.start()
    prober.start()
    time.sleep(0.5)
    t0 = now_ms()
    subprocess.run([args.lab_script, action, box], check=True, timeout=30,
                   stdout=subprocess.DEVNULL)
    t1 = router.wait_for(want)
    time.sleep(1.5)
    prober.stop.set()
    holders.stop.set()
    prober.join(5)
    holders.join(5)
    holders.close()
    route_ms = round(t1 - t0) if t1 is not None else -1
    after = [f - t0 for f in prober.fails if f >= t0 - 50]
    last_fail = round(max(after)) if after else 0
    on_box = [c for c in holders.conns if c["box"] == box]
    others = [c for c in holders.conns if c["box"] != box]
    broken_box = sum(1 for c in on_box if c["broken"])
    broken_others = sum(1 for c in others if c["broken"])
    print(f"{name}: {box} {action}: route {'-' if t1 is None else route_ms} ms to "
          f"{' '.join(want) or 'none'}; new connections failed {len(after)}/{prober.total}, "
          f"last failure at +{last_fail} ms; long-lived: {broken_box}/{len(on_box)} on {box} "
          f"broken, {broken_others}/{len(others)} on the other boxes broken (ECMP rehash)")
    return {f"{name}_route_ms": route_ms, f"{name}_last_fail_ms": last_fail,
            f"{name}_failed": len(after), f"{name}_broken_box": broken_box,
            f"{name}_on_box": len(on_box), f"{name}_broken_others": broken_others,
            f"{name}_others": len(others)}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--lab-script", required=True)
    p.add_argument("--router-ns", required=True)
    p.add_argument("--vip", required=True)
    p.add_argument("--flows", type=int, default=600)
    p.add_argument("--long", type=int, default=60)
    args = p.parse_args()
    args.flows = max(30, min(args.flows, 5000))
    args.long = max(3, min(args.long, 300))
    router = Router(args.router_ns, args.vip)
    all3 = ("b1", "b2", "b3")
    if router.wait_for(all3, 10) is None:
        raise SystemExit(f"the route is not through all three boxes: {router.nexthops()}")
    result = {}
    counts, first30, failed = spread(args.vip, args.flows)
    even = args.flows / 3
    worst = max(abs(n - even) / even * 100 for n in counts.values())
    print(f"spread: {args.flows} new flows: " + " ".join(f"{b}={n}" for b, n in sorted(counts.items()))
          + f" (worst {worst:.1f}% from even, {failed} failed); first 30 flows: "
          + " ".join(f"{b}={n}" for b, n in sorted(first30.items())))
    result.update({"flows": args.flows, "spread_worst_pct": round(worst, 1),
                   "spread_failed": failed})
    result.update({f"spread_{b}": n for b, n in counts.items()})
    result.update({f"first30_{b}": n for b, n in first30.items()})
    result.update(event(args, router, "fail", "fail", "b1", ("b2", "b3")))
    result.update(event(args, router, "join", "revive", "b1", all3))
    result.update(event(args, router, "sick", "sick", "b2", ("b1", "b3")))
    result.update(event(args, router, "heal", "heal", "b2", all3))
    result.update(event(args, router, "stop", "stop", "b3", ("b1", "b2")))
    print("RESULT " + " ".join(f"{k}={v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
