#!/usr/bin/env python3
"""A small stand-in upstream registry for bench/attack.sh (Python stdlib only, 127.0.0.1 only).

Serves, with ETags:
  GET /attack-small                        a small packument (3 versions, real tarballs)
  GET /attack-big                          a ~2 MB packument (many versions, one shared tarball)
  GET /attack-pub                          a small packument (the target of the PUT attacks)
  GET /<pkg>/-/<pkg>-<version>.tgz         the tarballs; every dist.tarball points back here
  PUT|DELETE /<anything>                   reads the whole body (chunked or not), answers 201
  POST /-/npm/v1/security/advisories/bulk  reads the body, answers {}
and 404 for everything else. Every request is appended to --log as one JSON line
({"t", "method", "path", "status", "body_bytes", "seconds"}), so the attack runner can tell
what reached the upstream.

Usage: upstream.py --port-file FILE --log FILE [--big-bytes N]
"""
import argparse
import base64
import gzip
import hashlib
import io
import json
import os
import sys
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOST = "127.0.0.1"  # never anything else


def make_tarball(name, version, payload_bytes):
    """A real npm-style tarball: package/package.json + package/index.js, gzip'd."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for path, data in (
            ("package/package.json", json.dumps({"name": name, "version": version}).encode()),
            ("package/index.js", b"// " + os.urandom(payload_bytes // 2).hex().encode()[:payload_bytes] + b"\n"),
        ):
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mtime = 499162500
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), compresslevel=6, mtime=0)


def dist(base, name, version, tgz):
    return {
        "tarball": f"{base}/{name}/-/{name}-{version}.tgz",
        "integrity": "sha512-" + base64.b64encode(hashlib.sha512(tgz).digest()).decode(),
        "shasum": hashlib.sha1(tgz).hexdigest(),
        "fileCount": 2,
        "unpackedSize": 4096,
    }


class Registry:
    def __init__(self, base, big_bytes):
        self.docs = {}      # name -> (body bytes, etag)
        self.tarballs = {}  # path -> bytes
        self.shared = {}    # name -> bytes served for any version (attack-big)
        created = {"created": "2015-01-01T00:00:00.000Z", "modified": "2020-01-01T00:00:00.000Z"}

        # attack-small: the probe's package.
        versions, times = {}, dict(created)
        for v in ("1.0.0", "1.1.0", "2.0.0"):
            tgz = make_tarball("attack-small", v, 2048)
            self.tarballs[f"/attack-small/-/attack-small-{v}.tgz"] = tgz
            versions[v] = {"name": "attack-small", "version": v, "license": "MIT",
                           "dist": dist(base, "attack-small", v, tgz)}
            times[v] = "2019-01-01T00:00:00.000Z"
        self.add_doc("attack-small", {"_id": "attack-small", "name": "attack-small",
                                      "dist-tags": {"latest": "2.0.0"}, "versions": versions,
                                      "time": times, "license": "MIT"})

        # attack-pub: where the PUT attacks aim (a public name, so writes are forwarded).
        tgz = make_tarball("attack-pub", "1.0.0", 1024)
        self.tarballs["/attack-pub/-/attack-pub-1.0.0.tgz"] = tgz
        self.add_doc("attack-pub", {"_id": "attack-pub", "name": "attack-pub",
                                    "dist-tags": {"latest": "1.0.0"},
                                    "versions": {"1.0.0": {"name": "attack-pub", "version": "1.0.0",
                                                           "dist": dist(base, "attack-pub", "1.0.0", tgz)}},
                                    "time": dict(created, **{"1.0.0": "2019-01-01T00:00:00.000Z"})})

        # attack-big: ~big_bytes of JSON; every version shares one tarball.
        tgz = make_tarball("attack-big", "0.0.0", 4096)
        self.shared["attack-big"] = tgz
        filler = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 60
        versions, times = {}, dict(created)
        size, i = 0, 0
        while size < big_bytes and i < 100000:
            v = f"1.{i // 100}.{i % 100}"
            versions[v] = {
                "name": "attack-big", "version": v, "description": filler, "license": "MIT",
                "main": "index.js", "scripts": {"test": "node test.js"},
                "dependencies": {f"dep-{j}": f"^{j}.0.0" for j in range(10)},
                "_npmUser": {"name": "maint0", "email": "m0@example.test"},
                "maintainers": [{"name": "maint0", "email": "m0@example.test"}],
                "dist": dist(base, "attack-big", v, tgz),
            }
            times[v] = f"2019-{1 + i % 12:02d}-{1 + i % 28:02d}T00:00:00.000Z"
            size += len(json.dumps(versions[v])) + 40
            i += 1
        self.add_doc("attack-big", {"_id": "attack-big", "name": "attack-big",
                                    "dist-tags": {"latest": v}, "versions": versions,
                                    "time": times, "license": "MIT", "readme": "# attack-big\n"})

    def add_doc(self, name, doc):
        body = json.dumps(doc, separators=(",", ":")).encode()
        self.docs[name] = (body, '"' + hashlib.sha1(body).hexdigest() + '"')

    def tarball(self, path):
        if path in self.tarballs:
            return self.tarballs[path]
        parts = path.strip("/").split("/")
        if len(parts) == 3 and parts[1] == "-" and parts[0] in self.shared \
                and parts[2].startswith(parts[0] + "-") and parts[2].endswith(".tgz"):
            return self.shared[parts[0]]
        return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-upstream/1"
    registry = None
    log_file = None
    log_lock = threading.Lock()

    def log_message(self, *_):  # quiet; requests go to the JSON log
        pass

    def record(self, status, body_bytes, started):
        line = json.dumps({"t": time.time(), "method": self.command, "path": self.path,
                           "status": status, "body_bytes": body_bytes,
                           "seconds": round(time.time() - started, 4)})
        with self.log_lock:
            self.log_file.write(line + "\n")
            self.log_file.flush()

    def read_body(self):
        """Reads and counts (without keeping) the request body, chunked or not."""
        n = 0
        if "chunked" in (self.headers.get("transfer-encoding") or "").lower():
            while True:
                line = self.rfile.readline(1024)
                if not line:
                    break
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                left = size
                while left:
                    got = self.rfile.read(min(left, 1 << 20))
                    if not got:
                        return n
                    left -= len(got)
                    n += len(got)
                self.rfile.readline(8)
        else:
            left = int(self.headers.get("content-length") or 0)
            while left:
                got = self.rfile.read(min(left, 1 << 20))
                if not got:
                    break
                left -= len(got)
                n += len(got)
        return n

    def answer(self, status, body, ctype="application/json", extra=None, started=None, body_bytes=0):
        self.send_response(status)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.record(status, body_bytes, started or time.time())

    def do_GET(self):
        started = time.time()
        path = self.path.split("?", 1)[0]
        name = path.lstrip("/").replace("%2f", "/").replace("%2F", "/")
        if name in self.registry.docs:
            body, etag = self.registry.docs[name]
            if etag in (self.headers.get("if-none-match") or ""):
                self.send_response(304)
                self.send_header("etag", etag)
                self.send_header("content-length", "0")
                self.end_headers()
                self.record(304, 0, started)
                return
            return self.answer(200, body, extra={"etag": etag}, started=started)
        tgz = self.registry.tarball(path)
        if tgz is not None:
            return self.answer(200, tgz, ctype="application/octet-stream", started=started)
        return self.answer(404, b'{"error":"not found"}', started=started)

    do_HEAD = do_GET

    def do_PUT(self):
        started = time.time()
        n = self.read_body()
        self.answer(201, json.dumps({"ok": True, "received": n}).encode(), started=started, body_bytes=n)

    do_DELETE = do_PUT

    def do_POST(self):
        started = time.time()
        n = self.read_body()
        if self.path.split("?", 1)[0] == "/-/npm/v1/security/advisories/bulk":
            return self.answer(200, b"{}", started=started, body_bytes=n)
        return self.answer(404, b'{"error":"not found"}', started=started, body_bytes=n)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    allow_reuse_address = True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--big-bytes", type=int, default=2 * 1024 * 1024)
    a = ap.parse_args()
    srv = Server((HOST, 0), Handler)
    port = srv.server_address[1]
    Handler.registry = Registry(f"http://{HOST}:{port}", a.big_bytes)
    Handler.log_file = open(a.log, "a", buffering=1)
    big = len(Handler.registry.docs["attack-big"][0])
    print(f"fake upstream on http://{HOST}:{port} (attack-big packument: {big} bytes)", file=sys.stderr)
    tmp = a.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(port))
    os.replace(tmp, a.port_file)
    try:
        srv.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
