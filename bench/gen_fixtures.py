#!/usr/bin/env python3
"""Generates the benchmark's upstream registry tree: a ~13 MB packument whose abbreviated
form is ~2 MB, and tarballs of 80 KB, 4 MB and (for the cold test) a large size."""
import base64, gzip, hashlib, json, os, sys

out = sys.argv[1]
cold_mb = int(sys.argv[2]) if len(sys.argv) > 2 else 500
base = "http://127.0.0.1:PORT"  # rewritten by nproxy anyway
os.makedirs(f"{out}/bench-big/-", exist_ok=True)
os.makedirs(f"{out}/bench-tar/-", exist_ok=True)

def tarball(path, size):
    # Incompressible payload inside a valid gzip stream, written in chunks.
    h512, h1, n = hashlib.sha512(), hashlib.sha1(), 0
    with open(path, "wb") as f:
        gz = gzip.GzipFile(fileobj=f, mode="wb", compresslevel=1, mtime=0)
        left = size
        while left > 0:
            chunk = os.urandom(min(left, 1 << 20))
            gz.write(chunk)
            left -= len(chunk)
        gz.close()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h512.update(block); h1.update(block)
    return "sha512-" + base64.b64encode(h512.digest()).decode(), h1.hexdigest()

# The big packument: 2000 versions; the fields npm's abbreviated form drops make up ~85%.
versions, time = {}, {"created": "2015-01-01T00:00:00.000Z", "modified": "2020-01-01T00:00:00.000Z"}
filler = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 95
for i in range(2000):
    v = f"1.{i // 100}.{i % 100}"
    versions[v] = {
        "name": "bench-big", "version": v, "description": filler,
        "main": "index.js", "license": "MIT",
        "scripts": {"test": "node test.js", "build": "node build.js"},
        "repository": {"type": "git", "url": "git+https://example.test/bench/bench-big.git"},
        "author": {"name": "Bench Author", "email": "bench@example.test"},
        "maintainers": [{"name": f"maint{j}", "email": f"m{j}@example.test"} for j in range(3)],
        "_npmUser": {"name": "maint0", "email": "m0@example.test"},
        "dependencies": {f"dep-{j}": f"^{j}.0.0" for j in range(22)},
        "engines": {"node": ">=14"},
        "dist": {"tarball": f"{base}/bench-big/-/bench-big-{v}.tgz",
                 "integrity": "sha512-" + base64.b64encode(hashlib.sha512(v.encode()).digest()).decode(),
                 "shasum": hashlib.sha1(v.encode()).hexdigest(),
                 "fileCount": 10, "unpackedSize": 12345},
    }
    time[v] = f"2019-{1 + i % 12:02d}-{1 + i % 28:02d}T00:00:00.000Z"
doc = {"_id": "bench-big", "name": "bench-big", "dist-tags": {"latest": "1.19.99"},
       "versions": versions, "time": time, "readme": "# bench-big\n" + filler * 4, "license": "MIT"}
with open(f"{out}/bench-big/index.json", "w") as f:
    json.dump(doc, f, separators=(",", ":"))

tars = {"1.0.0": 80 * 1024, "2.0.0": 4 * 1024 * 1024, "3.0.0": cold_mb * 1024 * 1024}
tv, tt = {}, {"created": "2015-01-01T00:00:00.000Z", "modified": "2020-01-01T00:00:00.000Z"}
for v, size in tars.items():
    integrity, shasum = tarball(f"{out}/bench-tar/-/bench-tar-{v}.tgz", size)
    tv[v] = {"name": "bench-tar", "version": v,
             "dist": {"tarball": f"{base}/bench-tar/-/bench-tar-{v}.tgz", "integrity": integrity, "shasum": shasum}}
    tt[v] = "2019-01-01T00:00:00.000Z"
with open(f"{out}/bench-tar/index.json", "w") as f:
    json.dump({"_id": "bench-tar", "name": "bench-tar", "dist-tags": {"latest": "2.0.0"},
               "versions": tv, "time": tt}, f)
print("fixtures written to", out)
