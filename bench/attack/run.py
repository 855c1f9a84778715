#!/usr/bin/env python3
"""Runs one attack against a running data plane and writes one JSON row (bench/attack.sh
starts the data plane, the fake upstream, and calls this once per attack).

While the attack runs, two side processes (monitor.py) sample the data plane's RSS and open
descriptors every 100 ms and time a normal cached GET. Every address is 127.0.0.1; every
loop is bounded by a deadline and a count.

  run.py --attack NAME --pid PID --port P --metrics-port M --upstream-log FILE
         --duration SECONDS --out ROW.json [--idle-secs 5]
"""
import argparse
import itertools
import json
import os
import resource
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import zlib
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import httpraw  # noqa: E402
from httpraw import HOST  # noqa: E402

MB = 1024 * 1024
FAKE_UPSTREAM_TOKEN = "Bearer fake-upstream-token-not-nproxy"


class Result:
    """What an attack reports: counts, statuses, notes, and things that look wrong."""

    def __init__(self):
        self.lock = threading.Lock()
        self.requests = 0
        self.statuses = Counter()
        self.notes = []
        self.wrong = []  # (what, exact request)
        self.requests_label = None
        self.statuses_label = None

    def add(self, status, n=1):
        with self.lock:
            self.requests += n
            self.statuses[str(status)] += n

    def flag(self, what, request):
        with self.lock:
            if len(self.wrong) < 12 and (what, request) not in self.wrong:
                self.wrong.append((what, request))


def head(method, target, port, extra=(), length=None, host=None):
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host or f'{HOST}:{port}'}",
             "User-Agent: nproxy-attack"]
    lines += list(extra)
    if length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def workers(n, fn):
    ts = [threading.Thread(target=fn, args=(i,), daemon=True) for i in range(n)]
    for t in ts:
        t.start()
    return ts


def join_all(ts, deadline):
    for t in ts:
        t.join(max(0.1, deadline - time.monotonic()))


# ---------------------------------------------------------------- 1. dot segments

def dot_variants(port):
    prefixes = [
        "/-/user/org.couchdb.user:x", "/-/npm/v1/security/advisories/bulk", "/-/npm/v1/security",
        "/-/v1/login", "/-/v1/search", "/-/npm/v1/keys", "/-/npm/v1/attestations",
        "/-/package/attack-small/dist-tags", "/-/whoami", "/-/npm/v1/user", "/-/npm/v1/tokens",
        "/-/v1/done", "/-/ping", "/attack-small/-", "/@x", "/-",
    ]
    dots = ["%2e%2e", "%2E%2E", "..", ".%2e", "%2e.", "%252e%252e", "%c0%ae%c0%ae", "%u002e%u002e",
            "%2e", "."]
    seps = ["/", "%2f", "%2F", "\\", "%5c", "%5C", "//", "%252f"]
    targets = ["attack-small", "attack-small/-/attack-small-1.0.0.tgz", "attack-pub"]
    paths = []
    for p in prefixes:
        for d in dots:
            for s in seps:
                for t in targets:
                    paths.append(f"{p}/{(d + s) * 3}{t}")
    extras = [
        "/attack-small/../attack-small", "/-/v1/search/../../attack-small",
        "/-/v1/search?text=x/../../attack-small", "/-/v1/login;/../../attack-small",
        "/-/v1/login%00/../../attack-small", "/-/v1/login/%2e%2e%00/attack-small",
        "/-/user/org.couchdb.user:%2e%2e%2f%2e%2e%2fattack-small",
        "/-/user/org.couchdb.user:..%2f..%2fattack-pub",
        "/-/package/%2e%2e/dist-tags", "/-/package/attack-small/dist-tags/%2e%2e",
        "/-/package/attack-small/dist-tags/..%2f..%2f..%2fattack-small",
        f"http://{HOST}:{port}/-/v1/login/../../attack-small",
        f"http://{HOST}:{port}/-/v1/login/%2e%2e/%2e%2e/attack-small",
        "/-/v1/login/%2e%2e/%2e%2e/attack-small#frag", "/-/v1/login/.%2e/.%2e/attack-small?x=1",
    ]
    paths += extras
    out = []
    for path in paths:
        for method in ("GET", "PUT", "DELETE"):
            for auth in (False, True):
                out.append((method, path, auth))
    return out


def attack_dots(a, res, deadline):
    variants = dot_variants(a.port)
    counter = itertools.count()
    cap = a.max_requests or 200000
    per_variant = {}

    def run(_):
        sock = reader = None
        while time.monotonic() < deadline:
            i = next(counter)
            if i >= cap:
                return
            method, path, auth = variants[i % len(variants)]
            extra = [f"Authorization: {FAKE_UPSTREAM_TOKEN}"] if auth else []
            raw = head(method, path, a.port, extra, length=0 if method != "GET" else None)
            try:
                if sock is None:
                    sock = httpraw.connect(a.port, timeout=10)
                    reader = httpraw.Reader(sock)
                sock.sendall(raw)
                r = httpraw.read_response(reader, method)
                status = r.status
                if r.close:
                    sock.close()
                    sock = None
            except (OSError, httpraw.Closed, ValueError) as e:
                status = "reset" if isinstance(e, httpraw.Closed) else type(e).__name__
                try:
                    sock.close()
                except (OSError, AttributeError):
                    pass
                sock = None
            res.add(status)
            with res.lock:
                seen = per_variant.setdefault(status, set())
                if len(seen) < 3:
                    seen.add(f"{method} {path}" + (" (upstream token)" if auth else ""))
            if status not in (400, 401, 404, 405):
                res.flag(f"dot-segment request answered {status}",
                         f"{method} {path}" + (" with Authorization: Bearer <upstream token>" if auth else ""))
        if sock:
            sock.close()

    join_all(workers(4, run), deadline + 15)
    res.notes.append(f"{len(variants)} distinct (method, raw path, credential) variants, cycled")
    for st in (401, 405):
        if str(st) in res.statuses:
            res.notes.append(f"{st} e.g. " + "; ".join(sorted(per_variant.get(st, []))[:2]))


# ---------------------------------------------------------------- 2. npm audit bulk

AUDIT_PATH = "/-/npm/v1/security/advisories/bulk"


def gz_stream(pieces):
    c = zlib.compressobj(6, zlib.DEFLATED, 31)
    out, raw = [], 0
    for p in pieces:
        raw += len(p)
        out.append(c.compress(p))
    out.append(c.flush())
    return b"".join(out), raw


def names_json(n, fmt, batch=100000):
    yield b"{"
    for start in range(0, n, batch):
        part = ",".join(fmt(i) for i in range(start, min(n, start + batch)))
        yield (part + ("," if start + batch < n else "")).encode()
    yield b"}"


def audit_payloads(names):
    distinct, raw_d = gz_stream(names_json(names, lambda i: f'"n{i:07d}":["1.0.0"]'))
    dup_piece = b'"a":["1.0.0"],' * 100000
    dups, raw_u = gz_stream(itertools.chain([b"{"], itertools.repeat(dup_piece, names // 100000),
                                            [b'"a":["1.0.0"]}']))
    many, raw_m = gz_stream(names_json(400000, lambda i: f'"x{i}":[]'))
    vers, raw_v = gz_stream(itertools.chain([b'{"a":['], itertools.repeat(b'"1",' * 100000, 12),
                                            [b'"1"]}']))
    return [
        # (label, body, raw size, chunked?)
        (f"{names:,} distinct names, gzip, content-length", distinct, raw_d, False),
        (f"{names:,} distinct names, gzip, chunked", distinct, raw_d, True),
        (f"{names:,} duplicate names, gzip bomb", dups, raw_u, False),
        ("400,000 names within the byte bounds", many, raw_m, False),
        ("1 name x 1,200,000 versions", vers, raw_v, False),
    ]


def chunked(body, size=65536):
    for i in range(0, len(body), size):
        piece = body[i:i + size]
        yield f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    yield b"0\r\n\r\n"


def plain(body, size=65536):
    for i in range(0, len(body), size):
        yield body[i:i + size]


def attack_audit(a, res, deadline, payloads):
    counter = itertools.count()
    cap = a.max_requests or 3000
    per = {p[0]: {"statuses": Counter(), "ms": [], "sent": []} for p in payloads}

    def run(_):
        while time.monotonic() < deadline:
            i = next(counter)
            if i >= cap:
                return
            label, body, _, is_chunked = payloads[i % len(payloads)]
            extra = ["Content-Type: application/json", "Content-Encoding: gzip", "Accept: application/json"]
            if is_chunked:
                raw = head("POST", AUDIT_PATH, a.port, extra + ["Transfer-Encoding: chunked"])
                chunks = chunked(body)
            else:
                raw = head("POST", AUDIT_PATH, a.port, extra, length=len(body))
                chunks = plain(body)
            t0 = time.perf_counter()
            sent = 0
            try:
                sock = httpraw.connect(a.port, timeout=60)
                sock.sendall(raw)
                sent, _why = httpraw.send_streaming(sock, chunks, deadline=time.monotonic() + 60)
                r = httpraw.read_response(httpraw.Reader(sock), "POST")
                status = r.status
            except (OSError, httpraw.Closed, ValueError) as e:
                status = "reset" if isinstance(e, httpraw.Closed) else type(e).__name__
            finally:
                try:
                    sock.close()
                except (OSError, UnboundLocalError):
                    pass
            ms = (time.perf_counter() - t0) * 1000
            res.add(status)
            with res.lock:
                per[label]["statuses"][str(status)] += 1
                per[label]["ms"].append(ms)
                per[label]["sent"].append(sent)
            if status not in (400, 413):
                res.flag(f"audit bulk answered {status} after {ms:.0f} ms",
                         f"POST {AUDIT_PATH} ({label}, {len(body):,} bytes gzip)")
            if ms > 2000:
                res.flag(f"audit bulk took {ms:.0f} ms", f"POST {AUDIT_PATH} ({label})")

    join_all(workers(3, run), deadline + 70)
    for label, body, raw, _ in payloads:
        p = per[label]
        if not p["ms"]:
            continue
        st = " ".join(f"{k}x{v}" for k, v in sorted(p["statuses"].items()))
        res.notes.append(f"[{label}: {len(body) / MB:.1f} MB gzip / {raw / MB:.1f} MB JSON -> {st}, "
                         f"p50 {httpraw.percentile(p['ms'], 50):.0f} ms, max {max(p['ms']):.0f} ms, "
                         f"client sent up to {max(p['sent']) / MB:.1f} MB]")


# ---------------------------------------------------------------- 3a. idle keep-alive

def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def attack_idle(a, res, deadline):
    limit = raise_nofile()
    want = min(a.sockets, limit - 100)
    sel = selectors.DefaultSelector()
    opened = {"after-request": 0, "silent": 0}
    closed = {"after-request": [], "silent": []}
    early = []
    socks = []
    ping = head("GET", "/-/ping", a.port)
    t_open = time.monotonic()
    for i in range(want):
        if time.monotonic() > deadline - 2 * a.idle_secs:
            res.notes.append(f"stopped opening at {i} sockets (time)")
            break
        group = "after-request" if i % 2 == 0 else "silent"
        try:
            s = httpraw.connect(a.port, timeout=10)
            if group == "after-request":
                s.sendall(ping)
                r = httpraw.read_response(httpraw.Reader(s))
                res.add(r.status)
        except (OSError, httpraw.Closed, ValueError) as e:
            res.add(f"connect-{type(e).__name__}")
            continue
        opened[group] += 1
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, (group, time.monotonic()))
        socks.append(s)
    res.notes.append(f"opened {sum(opened.values())} sockets in {time.monotonic() - t_open:.1f} s "
                     f"({opened['after-request']} idle after one GET /-/ping, {opened['silent']} never sent a byte)")
    while time.monotonic() < deadline and sel.get_map():
        for key, _ in sel.select(timeout=0.25):
            group, since = key.data
            try:
                d = key.fileobj.recv(1)
            except BlockingIOError:
                continue
            except OSError:
                d = b""
            if d:
                continue  # unexpected data; keep waiting for the close
            waited = time.monotonic() - since
            closed[group].append(waited)
            if group == "after-request" and waited < a.idle_secs - 0.5:
                early.append(waited)
            sel.unregister(key.fileobj)
    for s in socks:
        try:
            s.close()
        except OSError:
            pass
    sel.close()
    held = time.monotonic() - t_open
    for g in ("after-request", "silent"):
        c = closed[g]
        if c:
            res.notes.append(f"{g}: server closed {len(c)}/{opened[g]} (after {min(c):.1f}-{max(c):.1f} s idle, "
                             f"median {httpraw.percentile(c, 50):.1f} s)")
        else:
            res.notes.append(f"{g}: server closed 0/{opened[g]} within {held:.0f} s")
    res.requests_label = f"{sum(opened.values())} sockets, {opened['after-request']} GETs"
    res.statuses_label = (f"GET 200x{res.statuses.get('200', 0)}; server closed "
                          f"{len(closed['after-request'])}/{opened['after-request']} idle, "
                          f"{len(closed['silent'])}/{opened['silent']} silent")
    if opened["after-request"] and len(closed["after-request"]) < opened["after-request"]:
        res.flag(f"{opened['after-request'] - len(closed['after-request'])} keep-alive connections "
                 f"outlived keepalive_idle_secs={a.idle_secs}",
                 "GET /-/ping HTTP/1.1 then silence")
    if opened["silent"] and len(closed["silent"]) < opened["silent"]:
        res.flag(f"{opened['silent'] - len(closed['silent'])} connections that never sent a byte were "
                 f"still open after {held:.0f} s (no first-request timeout below pingora's per-read one)",
                 "TCP connect, then nothing")


# ---------------------------------------------------------------- 3b. header trickle

def attack_trickle(a, res, deadline):
    n = a.trickles
    socks, cut, state = [], {}, {}
    start = time.monotonic()
    first = f"GET /attack-small HTTP/1.1\r\nHost: {HOST}:{a.port}\r\nX-Trickle: ".encode()
    for i in range(n):
        try:
            s = httpraw.connect(a.port, timeout=5)
            s.sendall(first)
            socks.append(s)
            state[i] = len(first)
        except OSError as e:
            res.add(f"connect-{type(e).__name__}")
    sec = 0
    while time.monotonic() < deadline:
        sec += 1
        target = start + sec
        while time.monotonic() < min(target, deadline):
            time.sleep(0.05)
        for i, s in enumerate(socks):
            if i in cut:
                continue
            try:
                if httpraw.readable(s):
                    d = s.recv(4096)
                    cut[i] = (time.monotonic() - start, d[:40].decode("latin-1", "replace").split("\r\n")[0] or "closed")
                    continue
                s.sendall(b"a")
                state[i] += 1
            except OSError as e:
                cut[i] = (time.monotonic() - start, type(e).__name__)
    for s in socks:
        s.close()
    res.requests_label = f"{len(socks)} trickled headers"
    res.statuses_label = f"server cut {len(cut)}/{len(socks)}"
    held = time.monotonic() - start
    if cut:
        times = sorted(t for t, _ in cut.values())
        how = Counter(w for _, w in cut.values())
        res.notes.append(f"server cut {len(cut)}/{len(socks)} at {times[0]:.1f}-{times[-1]:.1f} s ({dict(how)})")
    else:
        res.notes.append(f"none cut: each sent {max(state.values(), default=0)} bytes at 1 byte/s over "
                         f"{held:.0f} s (known gap: pingora only times each read, 60 s)")
        res.flag(f"a header trickled at 1 byte/s was never cut ({held:.0f} s)",
                 "GET /attack-small HTTP/1.1\\r\\nHost: ...\\r\\nX-Trickle: a, a, a ... (1 byte/s)")


# ---------------------------------------------------------------- 4. distinct Host headers

def metrics(port):
    try:
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
                f"http://{HOST}:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError as e:
        return {"error": str(e)}
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or "_bucket{" in line:
            continue
        if "cache_total" in line and 'kind="packument"' in line or "memory" in line:
            k, _, v = line.rpartition(" ")
            out[k] = v
    return out


def attack_hosts(a, res, deadline):
    counter = itertools.count()
    cap = a.max_requests or 20000
    hosts_ok = set()
    sizes = Counter()
    before = metrics(a.metrics_port)
    slow = []

    def run(_):
        sock = reader = None
        while time.monotonic() < deadline:
            i = next(counter)
            if i >= cap:
                return
            h = f"h{i % a.hosts}.attack.test:{a.port}"
            abbreviated = (i // a.hosts) % 2 == 1
            accept = "application/vnd.npm.install-v1+json" if abbreviated else "application/json"
            raw = head("GET", "/attack-big", a.port, [f"Accept: {accept}"], host=h)
            t0 = time.perf_counter()
            try:
                if sock is None:
                    sock = httpraw.connect(a.port, timeout=60)
                    reader = httpraw.Reader(sock)
                sock.sendall(raw)
                r = httpraw.read_response(reader)
                status = r.status
                if r.status == 200:
                    with res.lock:
                        hosts_ok.add((h, abbreviated))
                        sizes[r.length // 10000 * 10000] += 1
                if r.close:
                    sock.close()
                    sock = None
            except (OSError, httpraw.Closed, ValueError) as e:
                status = "reset" if isinstance(e, httpraw.Closed) else type(e).__name__
                try:
                    sock.close()
                except (OSError, AttributeError):
                    pass
                sock = None
            ms = (time.perf_counter() - t0) * 1000
            with res.lock:
                slow.append(ms)
            res.add(status)

    join_all(workers(a.host_workers, run), deadline + 65)
    after = metrics(a.metrics_port)
    res.notes.append(f"{a.hosts} hosts x (full, abbreviated); {len(hosts_ok)} distinct (Host, form) answered 200; "
                     f"answer p50 {httpraw.percentile(slow, 50) or 0:.0f} ms, max {max(slow or [0]):.0f} ms")
    delta = []
    for k, v in after.items():
        try:
            d = float(v) - float(before.get(k, 0))
        except ValueError:
            continue
        delta.append(f"{k.replace('nproxy_', '')} {v} (+{d:.0f})")
    if delta:
        res.notes.append("metrics: " + ", ".join(delta))
    elif "error" in after:
        res.notes.append(f"metrics: {after['error']}")


# ---------------------------------------------------------------- 5. large PUTs

def publish_body(total, name="attack-pub"):
    """A publish-shaped JSON document of exactly `total` bytes, produced in 256 KiB pieces."""
    start = (f'{{"_id":"{name}","name":"{name}","dist-tags":{{"latest":"9.9.9"}},'
             f'"versions":{{"9.9.9":{{"name":"{name}","version":"9.9.9"}}}},'
             f'"_attachments":{{"{name}-9.9.9.tgz":{{"content_type":"application/octet-stream","data":"').encode()
    end = b'","length":0}}}'
    fill = total - len(start) - len(end)
    piece = b"A" * (256 * 1024)

    def gen():
        yield start
        left = fill
        while left > 0:
            yield piece[: min(left, len(piece))]
            left -= min(left, len(piece))
        yield end
    return gen


def put_once(a, gen, size, auth, deadline, rate=None, barrier=None):
    extra = ["Content-Type: application/json", "Accept: application/json"]
    if auth:
        extra.append(f"Authorization: {FAKE_UPSTREAM_TOKEN}")
    raw = head("PUT", "/attack-pub", a.port, extra, length=size)
    t0 = time.perf_counter()
    sent, why, status, body = 0, "", None, b""
    sock = None
    try:
        if barrier is not None:
            barrier.wait(timeout=30)
        sock = httpraw.connect(a.port, timeout=30)
        sock.sendall(raw)
        sent, why = httpraw.send_streaming(sock, gen(), rate_bps=rate, deadline=deadline)
        r = httpraw.read_response(httpraw.Reader(sock), "PUT", keep_body=True, cap=4096)
        status, body = r.status, r.body
    except threading.BrokenBarrierError:
        status = "barrier"
    except (OSError, httpraw.Closed, ValueError) as e:
        status = "reset" if isinstance(e, httpraw.Closed) else type(e).__name__
    finally:
        if sock:
            sock.close()
    return status, sent, why, (time.perf_counter() - t0) * 1000, body


def attack_put_anon(a, res, deadline):
    size = a.put_mb * MB
    gen = publish_body(size)
    counter = itertools.count()
    cap = a.max_requests or 5000
    stats = []

    def run(_):
        while time.monotonic() < deadline:
            if next(counter) >= cap:
                return
            status, sent, why, ms, _ = put_once(a, gen, size, False, deadline + 30)
            res.add(status)
            with res.lock:
                stats.append((sent, ms, why))
            if status != 401:
                res.flag(f"anonymous {a.put_mb} MB PUT answered {status} ({why})",
                         f"PUT /attack-pub, Content-Length: {size}, no Authorization")

    join_all(workers(a.put_conc, run), deadline + 60)
    if stats:
        sent = [s for s, _, _ in stats]
        ms = [m for _, m, _ in stats]
        res.notes.append(f"{a.put_conc} at once, {a.put_mb} MB bodies; answer p50 {httpraw.percentile(ms, 50):.0f} ms, "
                         f"max {max(ms):.0f} ms; client had sent p50 {httpraw.percentile(sent, 50) / MB:.1f} MB, "
                         f"max {max(sent) / MB:.1f} MB when the answer came ({dict(Counter(w for _, _, w in stats))}; "
                         "'reset' = the server closed while the client was still sending)")


def attack_put_token(a, res, deadline):
    size = a.put_mb * MB
    gen = publish_body(size)
    n = a.put_conc + a.put_extra
    budget = max(4.0, min(10.0, (deadline - time.monotonic()) / 2 - 2))
    rate = size / budget
    rounds = 0
    per_round = []
    while time.monotonic() < deadline - budget and rounds < a.put_rounds:
        rounds += 1
        barrier = threading.Barrier(n)
        out = []

        def run(_):
            r = put_once(a, gen, size, True, deadline + 60, rate=rate, barrier=barrier)
            with res.lock:
                out.append(r)

        join_all(workers(n, run), time.monotonic() + budget + 90)
        per_round.append(Counter(str(s) for s, *_ in out))
        for status, sent, why, ms, body in out:
            res.add(status)
            if status not in (503,) and not (isinstance(status, int) and 200 <= status < 300):
                res.flag(f"{a.put_mb} MB PUT with an upstream token answered {status} ({why}, {ms:.0f} ms)",
                         f"PUT /attack-pub, Content-Length: {size}, Authorization: Bearer <upstream token>")
            if status == 201:
                try:
                    got = json.loads(body).get("received")
                except (ValueError, AttributeError):
                    got = None
                if got != size:
                    res.flag(f"upstream received {got} of {size} bytes", "PUT /attack-pub with an upstream token")
    res.notes.append(f"{rounds} round(s) of {n} concurrent {a.put_mb} MB uploads paced at {rate / MB:.1f} MB/s each; "
                     f"per round: {[dict(c) for c in per_round]}")
    res.notes.append(f"{a.put_conc} x {a.put_mb} MB in flight at once: peak RSS (column) shows whether bodies "
                     "were streamed or buffered")
    ok = res.statuses.get("201", 0)
    over = res.statuses.get("503", 0)
    if rounds and over < a.put_extra * rounds:
        res.flag(f"expected {a.put_extra} x 503 per round beyond the {a.put_conc}-upload cap, saw {over}",
                 f"{n} concurrent PUT /attack-pub with an upstream token")
    if ok > a.put_conc * rounds:
        res.flag(f"more than {a.put_conc} uploads per round were relayed ({ok})", "PUT /attack-pub")


# ---------------------------------------------------------------- 6. Expect: 100-continue

def attack_expect(a, res, deadline):
    over = 60 * MB
    variants = [
        ("PUT", "/attack-pub", True, over, (413,), "token, 60 MB"),
        ("PUT", "/attack-pub", True, 5 * 1024 * MB, (413,), "token, 5 GB"),
        ("PUT", "/attack-pub", False, over, (401, 413), "anonymous, 60 MB"),
        ("POST", AUDIT_PATH, False, 3 * MB, (413,), "audit bulk, 3 MB"),
        ("PUT", "/@attack/scoped", True, over, (413,), "scoped name, token, 60 MB"),
        ("PUT", "/attack-pub", True, 1 * MB, (201,), "control: token, 1 MB, body sent after 100"),
    ]
    counter = itertools.count()
    cap = a.max_requests or 3000
    times = {v[5]: [] for v in variants}
    seen = {v[5]: Counter() for v in variants}
    small = publish_body(1 * MB)

    # Once, without Expect: a declared 300 MB body, sent. How much does nproxy read
    # before its 413 (it drains bodies up to a limit so the client sees the answer)?
    big = 300 * MB
    status, sent, why, ms, _ = put_once(a, publish_body(big), big, True, deadline)
    res.add(status)
    res.notes.append(f"[no Expect, PUT Content-Length {big:,} with an upstream token: {status} after {ms:.0f} ms; "
                     f"the client had sent {sent / MB:.0f} MB ({why})]")
    if status != 413:
        res.flag(f"an over-limit PUT without Expect answered {status} ({why})",
                 f"PUT /attack-pub, Content-Length: {big}, Authorization: Bearer <upstream token>, body sent")

    def run(_):
        while time.monotonic() < deadline:
            i = next(counter)
            if i >= cap:
                return
            method, path, auth, length, expected, label = variants[i % len(variants)]
            extra = ["Content-Type: application/json", "Expect: 100-continue"]
            if auth:
                extra.append(f"Authorization: {FAKE_UPSTREAM_TOKEN}")
            raw = head(method, path, a.port, extra, length=length)
            t0 = time.perf_counter()
            status, got100 = None, False
            sock = None
            try:
                sock = httpraw.connect(a.port, timeout=10)
                sock.sendall(raw)
                reader = httpraw.Reader(sock)
                r = httpraw.read_response(reader, method, stop_at_interim=True)
                if r.status == 100:
                    got100 = True
                    if length <= 1 * MB:
                        httpraw.send_streaming(sock, small(), deadline=time.monotonic() + 20)
                        r = httpraw.read_response(reader, method)
                    else:
                        status = "100-continue"
                if status is None:
                    status = r.status
            except (OSError, httpraw.Closed, ValueError) as e:
                status = "reset" if isinstance(e, httpraw.Closed) else type(e).__name__
            finally:
                if sock:
                    sock.close()
            ms = (time.perf_counter() - t0) * 1000
            res.add(status)
            with res.lock:
                times[label].append(ms)
                seen[label][str(status)] += 1
            if status not in expected:
                res.flag(f"Expect: 100-continue ({label}) answered {status}",
                         f"{method} {path}, Content-Length: {length}, Expect: 100-continue")
            if got100 and length > 1 * MB:
                res.flag("100 Continue invited an over-limit body",
                         f"{method} {path}, Content-Length: {length}, Expect: 100-continue")
            if ms > 1000 and length > 1 * MB:
                res.flag(f"over-limit Expect answer took {ms:.0f} ms", f"{method} {path}, Content-Length: {length}")

    join_all(workers(4, run), deadline + 30)
    for label, t in times.items():
        if t:
            st = " ".join(f"{k}x{v}" for k, v in sorted(seen[label].items()))
            res.notes.append(f"[{label}: {st}, p50 {httpraw.percentile(t, 50):.1f} ms, "
                             f"p99 {httpraw.percentile(t, 99):.1f} ms]")


# ---------------------------------------------------------------- driver

ATTACKS = {
    "dots": ("1. dot-segment bypass", attack_dots),
    "audit": ("2. npm audit bulk, 2.5M names", attack_audit),
    "idle": ("3a. idle keep-alive sockets", attack_idle),
    "trickle": ("3b. header at 1 byte/s", attack_trickle),
    "hosts": ("4. distinct Host headers", attack_hosts),
    "put-anon": ("5a. anonymous 49 MB PUTs", attack_put_anon),
    "put-token": ("5b. 49 MB PUTs, upstream token", attack_put_token),
    "expect": ("6. oversized Expect: 100-continue", attack_expect),
}


WHAT = {
    "dots": "GET/PUT/DELETE <forwarded prefix>/%2e%2e/... raw paths, 4 connections",
    "audit": f"POST {AUDIT_PATH} with 2.5M-name gzip bodies, 3 connections",
    "idle": "2,000 idle sockets",
    "trickle": "16 headers trickled at 1 byte/s",
    "hosts": "64 concurrent GET /attack-big (2 MB packument), Host: h<i>.attack.test:<port> for i < 512, "
             "full then abbreviated",
    "put-anon": "16 concurrent anonymous 49 MB PUT /attack-pub",
    "put-token": "24 concurrent 49 MB PUT /attack-pub with an upstream token",
    "expect": "4 connections of over-limit PUT/POST with Expect: 100-continue",
}


def cpu_seconds(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def upstream_lines(path, offset):
    out = []
    try:
        with open(path) as f:
            f.seek(offset)
            for line in f:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
    except OSError:
        pass
    return out


def max_overlap(entries):
    ev = []
    for e in entries:
        ev.append((e["t"] - e["seconds"], 1))
        ev.append((e["t"], -1))
    cur = best = 0
    for _, d in sorted(ev):
        cur += d
        best = max(best, cur)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--attack", required=True, choices=sorted(ATTACKS))
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--metrics-port", type=int, required=True)
    ap.add_argument("--upstream-log", required=True)
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--out", required=True)
    ap.add_argument("--idle-secs", type=float, default=5.0)
    ap.add_argument("--sockets", type=int, default=2000)
    ap.add_argument("--trickles", type=int, default=16)
    ap.add_argument("--hosts", type=int, default=512)
    ap.add_argument("--host-workers", type=int, default=64)
    ap.add_argument("--audit-names", type=int, default=2_500_000)
    ap.add_argument("--put-mb", type=int, default=49)
    ap.add_argument("--put-conc", type=int, default=16)
    ap.add_argument("--put-extra", type=int, default=8)
    ap.add_argument("--put-rounds", type=int, default=2)
    ap.add_argument("--max-requests", type=int, default=0, help="cap per attack (0: its default)")
    a = ap.parse_args()
    a.duration = max(5.0, min(a.duration, 300.0))
    if a.attack == "idle":
        a.duration = max(a.duration, 3 * a.idle_secs + 5)
    label, fn = ATTACKS[a.attack]
    res = Result()

    # Work that is not the attack happens before the monitors start.
    args = ()
    if a.attack == "audit":
        t = time.monotonic()
        args = (audit_payloads(a.audit_names),)
        res.notes.append(f"payloads built in {time.monotonic() - t:.1f} s")

    tmp = os.path.dirname(os.path.abspath(a.out))
    mon = os.path.join(HERE, "monitor.py")
    probe_out = os.path.join(tmp, f"probe-{a.attack}.json")
    sample_out = os.path.join(tmp, f"sample-{a.attack}.json")
    bound = str(a.duration + 180)
    procs = []

    def stop_children(*_):
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()

    def on_term(*_):
        stop_children()
        sys.exit(143)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    with open(a.upstream_log, "a"):
        pass
    up_offset = os.path.getsize(a.upstream_log)
    cpu0 = cpu_seconds(a.pid)
    procs.append(subprocess.Popen([sys.executable, mon, "sample", "--pid", str(a.pid), "--interval", "0.1",
                                   "--max-seconds", bound, "--out", sample_out]))
    procs.append(subprocess.Popen([sys.executable, mon, "probe", "--port", str(a.port), "--path", "/attack-small",
                                   "--interval", "0.02", "--max-seconds", bound, "--out", probe_out]))
    time.sleep(0.5)
    started = time.monotonic()
    try:
        fn(a, res, started + a.duration, *args)
    finally:
        elapsed = time.monotonic() - started
        time.sleep(0.3)
        stop_children()
    cpu1 = cpu_seconds(a.pid)
    alive = cpu1 is not None
    # What stays resident once the attack's requests are over (cache vs transient work).
    time.sleep(3)
    try:
        with open(f"/proc/{a.pid}/status") as f:
            settled = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
        res.notes.append(f"RSS 3 s after the attack: {settled / 1024:.0f} MB")
    except (OSError, StopIteration, ValueError):
        pass
    probe = sample = {}
    try:
        with open(probe_out) as f:
            probe = json.load(f)
        with open(sample_out) as f:
            sample = json.load(f)
    except (OSError, ValueError) as e:
        res.notes.append(f"monitor output missing: {e}")

    ups = upstream_lines(a.upstream_log, up_offset)
    by = Counter(f"{e['method']} {e['path'].split('?')[0]}" for e in ups)
    if a.attack == "dots" and ups:
        # `/-/v1/search?text=x/../../attack-small` is a search: its text is re-encoded and
        # forwarded, which is right. Anything else reaching the upstream is a leak.
        searches = [e for e in ups if e["path"].startswith("/-/v1/search?text=")]
        if searches:
            res.notes.append(f"search text forwarded re-encoded (expected): {searches[0]['path']} x{len(searches)}")
        for e in [e for e in ups if e not in searches][:5]:
            res.flag("a dot-segment request reached the upstream", f"upstream got {e['method']} {e['path']}")
    if a.attack == "put-anon" and any(e["method"] == "PUT" for e in ups):
        res.flag("an anonymous PUT was relayed upstream", "PUT /attack-pub without Authorization")
    if a.attack == "put-token":
        puts = [e for e in ups if e["method"] == "PUT"]
        if puts:
            res.notes.append(f"upstream received {len(puts)} PUTs, {min(e['body_bytes'] for e in puts) / MB:.1f}-"
                             f"{max(e['body_bytes'] for e in puts) / MB:.1f} MB each, at most {max_overlap(puts)} at once")
    if ups:
        res.notes.append("upstream saw: " + ", ".join(f"{k} x{v}" for k, v in by.most_common(4)))
    else:
        res.notes.append("upstream saw nothing")
    if cpu0 is not None and cpu1 is not None:
        res.notes.append(f"data plane CPU {cpu1 - cpu0:.1f} s in {elapsed:.0f} s")
    if not alive or sample.get("process_gone"):
        res.flag("the data plane exited during the attack", label)
    if probe.get("statuses", {}).get("timeout"):
        res.flag(f"the cached GET timed out (5 s) {probe['statuses']['timeout']} times during the attack",
                 f"GET /attack-small while: {WHAT[a.attack]}")
    if (sample.get("peak_rss_kb") or 0) >= 300 * 1024:
        res.flag(f"peak RSS {sample['peak_rss_kb'] / 1024:.0f} MB (target: under 300)", WHAT[a.attack])
    if probe.get("statuses") and set(probe["statuses"]) - {"200"}:
        res.notes.append(f"probe answers: {probe['statuses']} {probe.get('errors', [])[:2]}")

    peak_mb = (sample.get("peak_rss_kb") or 0) / 1024
    p99 = probe.get("p99_ms")
    row = {
        "key": a.attack,
        "attack": label,
        "requests": res.requests_label or f"{res.requests:,}",
        "statuses": res.statuses_label or " ".join(f"{k}x{v}" for k, v in sorted(res.statuses.items(), key=lambda kv: -kv[1])) or "-",
        "peak_rss_mb": round(peak_mb, 1),
        "rss_before_mb": round((sample.get("first_rss_kb") or 0) / 1024, 1),
        "hwm_mb": round((sample.get("hwm_kb") or 0) / 1024, 1),
        "probe_n": probe.get("n"),
        "probe_p50_ms": probe.get("p50_ms"),
        "probe_p99_ms": p99,
        "probe_max_ms": probe.get("max_ms"),
        "peak_fds": sample.get("peak_fds"),
        "seconds": round(elapsed, 1),
        "rss_target_ok": peak_mb < 300,
        "p99_target_ok": p99 is not None and p99 < 50,
        "notes": res.notes,
        "wrong": [list(w) for w in res.wrong],
    }
    tmp_out = a.out + ".tmp"
    with open(tmp_out, "w") as f:
        json.dump(row, f, indent=1)
    os.replace(tmp_out, a.out)


if __name__ == "__main__":
    main()
