#!/usr/bin/env node
// Helpers for scripts/real-world.sh (kept in Node so JSON and lockfiles are parsed, not grepped).
//
//   rw.js prepare <src> <dst> <client> <registry> <upstream>
//       copies a project, fills {{REGISTRY}} / {{UPSTREAM}} in its package.json files, and adds
//       what the client needs for workspaces (pnpm-workspace.yaml; workspace: ranges for pnpm
//       and yarn 4, whose users write them; npm and yarn 1 do not understand them).
//   rw.js check-lock <project> <client> <nproxy-base> <upstream-host>
//       every URL in the lockfile must point at nproxy, except URLs the package.json files name
//       themselves (a hard-coded tarball URL is the project's choice). Prints one cell.
//   rw.js check-deps <project>
//       every direct dependency (of the root and of each workspace) resolves from its folder the
//       way Node resolves it, and packages that ship their binary as per-platform optional
//       dependencies got at least one of them. Prints what is missing.
//   rw.js table <results.tsv>      prints the results table
//   rw.js list <projects-dir>      prints each project with its description
"use strict";

const fs = require("fs");
const path = require("path");

const LOCKFILES = {
  npm: "package-lock.json",
  pnpm: "pnpm-lock.yaml",
  yarn1: "yarn.lock",
  yarn4: "yarn.lock",
};

function readJson(p) {
  return JSON.parse(fs.readFileSync(p, "utf8"));
}

function copyDir(src, dst) {
  fs.mkdirSync(dst, { recursive: true });
  for (const e of fs.readdirSync(src, { withFileTypes: true })) {
    if (e.name === "node_modules") continue;
    const s = path.join(src, e.name);
    const d = path.join(dst, e.name);
    if (e.isDirectory()) copyDir(s, d);
    else fs.copyFileSync(s, d);
  }
}

function workspacePatterns(rootPkg) {
  const w = rootPkg.workspaces;
  if (Array.isArray(w)) return w;
  if (w && Array.isArray(w.packages)) return w.packages;
  return [];
}

// Workspace folders: "dir/*" and plain "dir" patterns (all the projects here use).
function workspaceDirs(root) {
  const pkg = readJson(path.join(root, "package.json"));
  const dirs = [];
  for (const pat of workspacePatterns(pkg)) {
    if (pat.endsWith("/*")) {
      const base = path.join(root, pat.slice(0, -2));
      if (!fs.existsSync(base)) continue;
      for (const e of fs.readdirSync(base, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
        const d = path.join(base, e.name);
        if (e.isDirectory() && fs.existsSync(path.join(d, "package.json"))) dirs.push(d);
      }
    } else if (!pat.includes("*")) {
      const d = path.join(root, pat);
      if (fs.existsSync(path.join(d, "package.json"))) dirs.push(d);
    } else {
      throw new Error(`unsupported workspace pattern ${pat}`);
    }
  }
  return dirs;
}

const DEP_FIELDS = ["dependencies", "devDependencies", "optionalDependencies", "peerDependencies"];

function prepare(src, dst, client, registry, upstream) {
  copyDir(src, dst);
  const reg = registry.replace(/\/+$/, "");
  const up = upstream.replace(/\/+$/, "");
  const pkgFiles = [path.join(dst, "package.json")];
  const wsDirs = workspaceDirs(dst);
  for (const d of wsDirs) pkgFiles.push(path.join(d, "package.json"));
  const wsNames = new Set(wsDirs.map((d) => readJson(path.join(d, "package.json")).name));
  for (const f of pkgFiles) {
    const text = fs.readFileSync(f, "utf8").split("{{REGISTRY}}").join(reg).split("{{UPSTREAM}}").join(up);
    const pkg = JSON.parse(text);
    if (client === "pnpm" || client === "yarn4") {
      for (const field of DEP_FIELDS) {
        for (const [name, range] of Object.entries(pkg[field] || {})) {
          if (wsNames.has(name) && !String(range).startsWith("workspace:")) {
            pkg[field][name] = /^[~^]/.test(range) ? `workspace:${range[0]}` : "workspace:*";
          }
        }
      }
    }
    fs.writeFileSync(f, JSON.stringify(pkg, null, 2) + "\n");
  }
  if (client === "pnpm" && wsDirs.length > 0) {
    const pats = workspacePatterns(readJson(path.join(dst, "package.json")));
    fs.writeFileSync(
      path.join(dst, "pnpm-workspace.yaml"),
      "packages:\n" + pats.map((p) => `  - ${JSON.stringify(p)}\n`).join(""),
    );
  }
}

// URLs a project names itself in a dependency range (tarball URLs), without any #fragment.
function namedUrls(root) {
  const urls = new Set();
  const dirs = [root, ...workspaceDirs(root)];
  for (const d of dirs) {
    const pkg = readJson(path.join(d, "package.json"));
    for (const field of DEP_FIELDS) {
      for (const range of Object.values(pkg[field] || {})) {
        if (/^https?:\/\//.test(range)) urls.add(String(range).split("#")[0]);
      }
    }
  }
  return urls;
}

function checkLock(root, client, nproxyBase, upstreamHost) {
  const file = path.join(root, LOCKFILES[client]);
  if (!fs.existsSync(file)) {
    console.log(`FAIL (no ${LOCKFILES[client]})`);
    return 1;
  }
  let text = fs.readFileSync(file, "utf8");
  // yarn 4 may carry a URL percent-encoded (`::__archiveUrl=http%3A%2F%2F…`).
  text = text.replace(/https?%3A%2F%2F[A-Za-z0-9%._~!$&'()*+,;=:@\/-]+/gi, (m) => {
    try {
      return decodeURIComponent(m);
    } catch {
      return m;
    }
  });
  const named = namedUrls(root);
  const base = nproxyBase.replace(/\/+$/, "") + "/";
  const counts = { nproxy: 0, named: 0, upstream: 0, other: 0 };
  const examples = [];
  const upstreamLc = upstreamHost.toLowerCase();
  for (const m of text.matchAll(/https?:\/\/[^\s"'<>,]+/g)) {
    // Keys in YAML lockfiles end in ':'; flow mappings in '}'.
    const url = m[0].split("#")[0].replace(/[:}\]),;]+$/, "");
    // Only package downloads matter here, not funding or repository links.
    let pathname = "";
    try {
      pathname = new URL(url).pathname;
    } catch {}
    const isUpstream = url.toLowerCase().includes(upstreamLc);
    if (!isUpstream && !/\.(tgz|tar\.gz|tar|zip)$/.test(pathname) && !pathname.includes("/-/")) continue;
    if (url.startsWith(base)) counts.nproxy++;
    else if (named.has(url)) counts.named++;
    else {
      let host = "";
      try {
        host = new URL(url).host.toLowerCase();
      } catch {}
      if (host === upstreamLc) counts.upstream++;
      else counts.other++;
      if (examples.length < 3) examples.push(url);
    }
  }
  // The upstream host anywhere else (not as a URL) is just as wrong.
  let rest = text;
  for (const u of named) rest = rest.split(u).join("");
  const stray = rest.toLowerCase().split(upstreamLc).length - 1;
  const extra = [];
  if (counts.named) extra.push(`+${counts.named} named`);
  if (counts.other) extra.push(`+${counts.other} other`);
  const suffix = extra.length ? " " + extra.join(" ") : "";
  if (stray > 0 || counts.upstream > 0) {
    console.log(`FAIL ${Math.max(stray, counts.upstream)} upstream${suffix}`);
    for (const e of examples) console.error(`  lockfile URL not on nproxy: ${e}`);
    return 1;
  }
  console.log(`ok ${counts.nproxy} urls${suffix}`);
  for (const e of examples) console.error(`  lockfile URL elsewhere: ${e}`);
  return 0;
}

// Node's lookup: <dir>/node_modules/<name>, then each parent folder's.
function resolveFrom(dir, name) {
  let d = dir;
  for (;;) {
    const p = path.join(d, "node_modules", name, "package.json");
    if (fs.existsSync(p)) return p;
    const parent = path.dirname(d);
    if (parent === d) return null;
    d = parent;
  }
}

function checkDeps(root) {
  const missing = [];
  const noBinary = [];
  for (const d of [root, ...workspaceDirs(root)]) {
    const pkg = readJson(path.join(d, "package.json"));
    const where = d === root ? "" : `${path.relative(root, d)}: `;
    for (const field of ["dependencies", "devDependencies"]) {
      for (const name of Object.keys(pkg[field] || {})) {
        const found = resolveFrom(d, name);
        if (!found) {
          missing.push(where + name);
          continue;
        }
        // Per-platform binaries: a package with several optional dependencies that all carry
        // os/cpu restrictions should end up with at least one of them.
        let dep;
        try {
          dep = readJson(found);
        } catch {
          continue;
        }
        const optional = Object.keys(dep.optionalDependencies || {});
        if (optional.length < 3) continue;
        const real = fs.realpathSync(path.dirname(found));
        const got = optional.filter((o) => resolveFrom(real, o) !== null);
        if (got.length === 0) noBinary.push(`${where}${name} (none of ${optional.length} optional deps)`);
      }
    }
  }
  if (missing.length) console.log(`missing: ${missing.join(", ")}`);
  if (noBinary.length) console.log(`no platform package: ${noBinary.join(", ")}`);
  return missing.length || noBinary.length ? 1 : 0;
}

function table(file) {
  const rows = fs
    .readFileSync(file, "utf8")
    .split("\n")
    .filter((l) => l.length)
    .map((l) => l.split("\t"));
  const header = ["project", "client", "cold (nproxy)", "frozen (nproxy)", "lockfile URLs", "upstream direct", "verdict"];
  const all = [header, ...rows.map((r) => r.slice(0, header.length))];
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] || "").length)));
  const line = (r) => r.map((c, i) => (c || "").padEnd(widths[i])).join("  ").trimEnd();
  const out = [line(header), widths.map((w) => "-".repeat(w)).join("  ")];
  for (const r of rows) out.push(line(r));
  console.log(out.join("\n"));
}

function list(dir) {
  for (const name of fs.readdirSync(dir).sort()) {
    const p = path.join(dir, name, "package.json");
    if (!fs.existsSync(p)) continue;
    console.log(`${name.padEnd(22)} ${readJson(p).description || ""}`);
  }
}

const [cmd, ...args] = process.argv.slice(2);
let rc = 0;
try {
  switch (cmd) {
    case "prepare":
      prepare(...args);
      break;
    case "check-lock":
      rc = checkLock(...args);
      break;
    case "check-deps":
      rc = checkDeps(...args);
      break;
    case "table":
      table(...args);
      break;
    case "list":
      list(...args);
      break;
    default:
      console.error(`rw.js: unknown command ${cmd}`);
      rc = 2;
  }
} catch (e) {
  console.log(`error: ${e.message}`);
  rc = 2;
}
process.exit(rc);
