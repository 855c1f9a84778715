-- Security rules per org (protobuf `Rules`), explicit exceptions, and shared advisories.
ALTER TABLE orgs ADD COLUMN rules BYTEA;

CREATE TABLE rule_exceptions (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs (id),
    package TEXT NOT NULL,
    version TEXT NOT NULL,
    reason TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    UNIQUE (org_id, package, version)
);

CREATE TABLE advisories (
    id TEXT PRIMARY KEY,
    osv_json TEXT NOT NULL,
    summary TEXT NOT NULL,
    severity TEXT NOT NULL,
    imported_at_ms BIGINT NOT NULL
);

CREATE TABLE advisory_packages (
    advisory_id TEXT NOT NULL REFERENCES advisories (id),
    package TEXT NOT NULL,
    PRIMARY KEY (advisory_id, package)
);
CREATE INDEX advisory_packages_by_package ON advisory_packages (package);
