#!/usr/bin/env python3
"""Side processes of an attack run (each its own process, so the attack's threads never
delay them through the GIL). Both stop on SIGTERM/SIGINT or after --max-seconds, then
write one JSON object to --out.

  monitor.py probe  --port P --path /attack-small --interval 0.02 --max-seconds S --out F
      a normal cached GET, paced, over one keep-alive connection (reconnects on error);
      latency with time.perf_counter from the first byte sent to the last byte read.
  monitor.py sample --pid PID --interval 0.1 --max-seconds S --out F
      VmRSS and VmHWM from /proc/PID/status and the count of /proc/PID/fd, every interval.
"""
import argparse
import json
import os
import signal
import socket
import sys
import time
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import httpraw  # noqa: E402

stop = False


def on_signal(*_):
    global stop
    stop = True


def probe(a):
    lat, statuses, errors, reconnects = [], Counter(), [], 0
    req = (f"GET {a.path} HTTP/1.1\r\nHost: 127.0.0.1:{a.port}\r\n"
           "Accept: application/json\r\nUser-Agent: nproxy-attack-probe\r\n\r\n").encode()
    sock = reader = None
    end = time.monotonic() + a.max_seconds
    nxt = time.monotonic()
    while not stop and time.monotonic() < end:
        if sock is None:
            try:
                sock = httpraw.connect(a.port, timeout=a.timeout)
                reader = httpraw.Reader(sock)
                reconnects += 1
            except OSError as e:
                errors.append(f"connect: {e}")
                statuses["connect-error"] += 1
                time.sleep(a.interval)
                continue
        t0 = time.perf_counter()
        try:
            sock.sendall(req)
            r = httpraw.read_response(reader)
            lat.append((time.perf_counter() - t0) * 1000.0)
            statuses[str(r.status)] += 1
            if r.close:
                sock.close()
                sock = None
        except (OSError, httpraw.Closed, ValueError) as e:
            # A failed or timed-out probe counts with the time it took.
            lat.append((time.perf_counter() - t0) * 1000.0)
            kind = "timeout" if isinstance(e, socket.timeout) else "error"
            statuses[kind] += 1
            if len(errors) < 5:
                errors.append(f"{type(e).__name__}: {e}")
            try:
                sock.close()
            except OSError:
                pass
            sock = None
        nxt = max(nxt + a.interval, time.monotonic())
        while not stop and time.monotonic() < nxt:
            time.sleep(min(0.005, max(0.0, nxt - time.monotonic())))
    return {
        "n": len(lat),
        "p50_ms": httpraw.percentile(lat, 50),
        "p99_ms": httpraw.percentile(lat, 99),
        "max_ms": max(lat) if lat else None,
        "statuses": dict(statuses),
        "errors": errors,
        "connections": reconnects,
    }


def status_kb(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


def sample(a):
    peak_rss = peak_fds = 0
    peak_rss_t = peak_fds_t = None
    first = last = hwm = None
    n = 0
    start = time.monotonic()
    end = start + a.max_seconds
    gone = False
    while not stop and time.monotonic() < end:
        t = time.monotonic() - start
        try:
            rss = status_kb(a.pid, "VmRSS")
            hwm = status_kb(a.pid, "VmHWM")
            fds = len(os.listdir(f"/proc/{a.pid}/fd"))
        except (FileNotFoundError, ProcessLookupError):
            gone = True
            break
        n += 1
        first = first if first is not None else rss
        last = rss
        if rss > peak_rss:
            peak_rss, peak_rss_t = rss, round(t, 1)
        if fds > peak_fds:
            peak_fds, peak_fds_t = fds, round(t, 1)
        time.sleep(a.interval)
    return {
        "samples": n, "first_rss_kb": first, "last_rss_kb": last,
        "peak_rss_kb": peak_rss, "peak_rss_at_s": peak_rss_t,
        "hwm_kb": hwm, "peak_fds": peak_fds, "peak_fds_at_s": peak_fds_t,
        "process_gone": gone,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["probe", "sample"])
    ap.add_argument("--port", type=int)
    ap.add_argument("--path", default="/attack-small")
    ap.add_argument("--pid", type=int)
    ap.add_argument("--interval", type=float, default=0.1)
    ap.add_argument("--timeout", type=float, default=5.0)
    ap.add_argument("--max-seconds", type=float, required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    a.max_seconds = min(a.max_seconds, 900.0)  # a hard bound whatever the caller says
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    result = probe(a) if a.mode == "probe" else sample(a)
    tmp = a.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f)
    os.replace(tmp, a.out)


if __name__ == "__main__":
    main()
