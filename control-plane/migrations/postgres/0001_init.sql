-- Orgs are soft-deleted so their audit history keeps its subject; a slug is unique among
-- live orgs and can be reused after a delete.
CREATE TABLE orgs (
    id TEXT PRIMARY KEY,
    slug TEXT NOT NULL,
    display_name TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    deleted_at_ms BIGINT,
    -- Bumped on every change that alters the org's config snapshot.
    config_version BIGINT NOT NULL DEFAULT 1,
    internal_scopes TEXT NOT NULL DEFAULT '[]',
    public_reads BIGINT NOT NULL DEFAULT 1
);
CREATE UNIQUE INDEX orgs_live_slug ON orgs (slug) WHERE deleted_at_ms IS NULL;

CREATE TABLE tokens (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs (id),
    name TEXT NOT NULL,
    sha256 BYTEA NOT NULL UNIQUE,
    secret_prefix TEXT NOT NULL,
    scopes TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT,
    last_used_at_ms BIGINT,
    revoked_at_ms BIGINT
);
CREATE INDEX tokens_by_org ON tokens (org_id, id);

CREATE TABLE signing_keys (
    key_id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs (id),
    public_key BYTEA NOT NULL,
    -- nonce || ChaCha20-Poly1305 ciphertext of the 32-byte secret key, under the master key.
    private_key_sealed BYTEA NOT NULL,
    created_at_ms BIGINT NOT NULL,
    retired_at_ms BIGINT
);
CREATE INDEX signing_keys_by_org ON signing_keys (org_id, created_at_ms);

CREATE TABLE audit_events (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    time_ms BIGINT NOT NULL,
    type TEXT NOT NULL,
    actor TEXT NOT NULL,
    details_json TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    idempotency_key TEXT,
    UNIQUE (org_id, seq)
);
CREATE UNIQUE INDEX audit_events_idempotency ON audit_events (org_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX audit_events_by_time ON audit_events (org_id, time_ms);

-- The newest head of each org's chain, MAC'd with a key derived from the master key: a
-- database edit alone can't move it.
CREATE TABLE audit_anchors (
    org_id TEXT PRIMARY KEY,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL,
    mac TEXT NOT NULL
);

CREATE TABLE admin_credentials (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    sha256 BYTEA NOT NULL UNIQUE,
    created_at_ms BIGINT NOT NULL,
    revoked_at_ms BIGINT
);
