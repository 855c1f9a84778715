-- npm-format (ECDSA P-256) signing keys beside the Ed25519 ones; tokens limited to
-- packages (minted by trusted publishing); the orgs' trusted OIDC publishers.
ALTER TABLE signing_keys ADD COLUMN algorithm TEXT NOT NULL DEFAULT 'ed25519';
CREATE INDEX signing_keys_by_org_algorithm ON signing_keys (org_id, algorithm, created_at_ms);

-- JSON array of package names; NULL: every package the scopes allow.
ALTER TABLE tokens ADD COLUMN packages TEXT;

CREATE TABLE trusted_publishers (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs (id),
    issuer TEXT NOT NULL,
    package TEXT NOT NULL,
    -- JSON object: claim name -> required value.
    claims TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL
);
CREATE INDEX trusted_publishers_by_org ON trusted_publishers (org_id, created_at_ms);
