-- Per-org upstream routes: the names a pattern covers are fetched from the route's
-- registry, with the credential sealed under the master key (nonce || ChaCha20-Poly1305
-- ciphertext; associated data: the route's id and version, so a sealed credential can't
-- be moved to another route or replayed onto an older version). NULL: no credential.
CREATE TABLE upstream_routes (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs (id),
    pattern TEXT NOT NULL,
    url TEXT NOT NULL,
    credential_sealed BLOB,
    -- Bumped whenever the URL or the credential changes.
    version INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL,
    UNIQUE (org_id, pattern)
);
