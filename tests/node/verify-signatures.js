#!/usr/bin/env node
// npm's own registry-signature check, for tests: what `npm audit signatures` does per
// package (lib/utils/verify-signatures.js and pacote's RegistryFetcher), without its
// Sigstore TUF step (the TUF CDN is unreachable here; for a registry other than the public
// one npm falls back to `GET <registry>/-/npm/v1/keys`, which is what is done here).
//
// Usage: node verify-signatures.js <registry URL> <token or ""> <project dir>
//
// For every installed package of the project's package-lock.json: pacote.manifest with
// `verifySignatures` and the registry's keys (dist.signatures checked against them), then
// pacote.tarball with the lockfile's integrity (changed bytes fail with EINTEGRITY).
// Prints one JSON object, `{"<name>@<version>": "ok" | "missing" | "<code>: <message>"}`
// ("missing": no dist.signatures), and exits 0. If the keys request fails with anything
// but 404/400 (where npm would abort the audit), the object also holds
// `"-/npm/v1/keys": "<code>: <message>"`.
// pacote and npm-registry-fetch are loaded from npm's own installation: NPROXY_NPM_DIR,
// else `<npm root -g>/npm`.
'use strict'

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { execFileSync } = require('node:child_process')

function npmDir () {
  if (process.env.NPROXY_NPM_DIR) {
    return process.env.NPROXY_NPM_DIR
  }
  const root = execFileSync('npm', ['root', '-g'], { encoding: 'utf8' }).trim()
  return path.join(root, 'npm')
}

function describe (err) {
  const message = String((err && err.message) || err).split('\n')[0]
  return `${(err && err.code) || 'ERROR'}: ${message}`
}

async function main () {
  const [registryArg, token = '', projectDir] = process.argv.slice(2)
  if (!registryArg || !projectDir) {
    process.stderr.write('usage: verify-signatures.js <registry> <token> <project dir>\n')
    process.exit(2)
  }
  // npm's configured registry always ends with a slash; pacote's key lookup is exact.
  const registry = registryArg.endsWith('/') ? registryArg : `${registryArg}/`
  const dir = npmDir()
  const pacote = require(path.join(dir, 'node_modules', 'pacote'))
  const npmFetch = require(path.join(dir, 'node_modules', 'npm-registry-fetch'))

  const { host, pathname } = new URL(registry)
  const regKey = `//${host}${pathname}`
  const cache = fs.mkdtempSync(path.join(os.tmpdir(), 'nproxy-verify-'))
  const base = {
    registry,
    cache,
    preferOnline: true,
    retry: { retries: 0 },
    timeout: 30000,
  }
  if (token) {
    base[`${regKey}:_authToken`] = token
  }

  const out = {}
  // As npm's VerifySignatures.setKeys does after TUF has no target for this host.
  let keys = null
  try {
    keys = await npmFetch.json('/-/npm/v1/keys', { ...base })
      .then(({ keys: ks }) => ks.map((key) => ({
        ...key,
        pemkey: `-----BEGIN PUBLIC KEY-----\n${key.key}\n-----END PUBLIC KEY-----`,
      })))
  } catch (err) {
    if (err.code !== 'E404' && err.code !== 'E400') {
      out['-/npm/v1/keys'] = describe(err)
    }
    keys = null
  }
  process.stderr.write(`keys: ${JSON.stringify((keys || []).map(k => [k.keyid, k.expires]))}\n`)

  const lock = JSON.parse(fs.readFileSync(path.join(projectDir, 'package-lock.json'), 'utf8'))
  const marker = 'node_modules/'
  for (const [location, entry] of Object.entries(lock.packages || {})) {
    if (location === '' || entry.link || !entry.version) {
      continue
    }
    const name = entry.name || location.slice(location.lastIndexOf(marker) + marker.length)
    const id = `${name}@${entry.version}`
    if (id in out) {
      continue
    }
    const opts = {
      ...base,
      [`${regKey}:_keys`]: keys,
      verifySignatures: true,
      fullMetadata: true,
      before: null,
    }
    let manifest
    try {
      manifest = await pacote.manifest(id, opts)
    } catch (err) {
      out[id] = describe(err)
      continue
    }
    try {
      await pacote.tarball(id, { ...opts, integrity: entry.integrity })
    } catch (err) {
      out[id] = describe(err)
      continue
    }
    out[id] = manifest._signatures && manifest._signatures.length ? 'ok' : 'missing'
  }
  fs.rmSync(cache, { recursive: true, force: true })
  process.stdout.write(`${JSON.stringify(out)}\n`)
}

main().then(() => process.exit(0), (err) => {
  process.stderr.write(`verify-signatures.js: ${err && err.stack ? err.stack : err}\n`)
  process.exit(1)
})
