#!/usr/bin/env python3
"""Full TLS handshakes, a new connection per request, for deploy/bench.sh and deploy/pgo.sh.

    tls-handshakes.py HOST PORT SECONDS [NAME]

For SECONDS: connect, handshake (python3 ssl: TLS 1.3, ALPN http/1.1, SNI NAME, default
bench.test; no certificate check, no session offered: `openssl s_time` of OpenSSL 3.0 sends
no SNI and wrk resumes), GET / with Connection: close, read to the end, close. Bounded by its
deadline and 5 s per connection. Prints "RESULT ok errors", then "LAT ms" per good request.
"""
import socket
import ssl
import sys
import time

host, port, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
name = sys.argv[4] if len(sys.argv) > 4 else "bench.test"
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ctx.set_alpn_protocols(["http/1.1"])
req = b"GET / HTTP/1.1\r\nHost: " + name.encode() + b"\r\nConnection: close\r\n\r\n"
n = errors = 0
lat = []
end = time.monotonic() + secs
while time.monotonic() < end:
    t = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname=name) as c:
                c.sendall(req)
                data = b""
                while True:
                    b = c.recv(65536)
                    if not b:
                        break
                    data += b
        if data.startswith(b"HTTP/1.1 200"):
            n += 1
            lat.append((time.monotonic() - t) * 1000)
        else:
            errors += 1
    except (OSError, ssl.SSLError):
        errors += 1
print("RESULT", n, errors)
for x in lat:
    print("LAT %.3f" % x)
