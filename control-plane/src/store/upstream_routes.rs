//! The `upstream_routes` table: per org, the names (a scope, an exact name or a prefix
//! pattern) fetched from another registry than the data plane's upstream, with that
//! registry's credential sealed under the master key (`service::upstream_routes` seals and
//! opens it; this layer only moves the sealed bytes).

use sqlx::{AnyConnection, Row};

use super::db::Db;
use crate::error::{CpError, CpResult};

#[derive(Clone, PartialEq, Eq)]
pub struct UpstreamRouteRow {
    pub id: String,
    pub org_id: String,
    /// As `nproxy_proto::upstream_pattern::parse` accepted it (trimmed).
    pub pattern: String,
    /// The registry's base URL, normalized, without a trailing `/`.
    pub url: String,
    /// nonce || ciphertext of the credential; associated data: the route's id and version.
    pub credential_sealed: Option<Vec<u8>>,
    /// Bumped on every change of the URL or the credential.
    pub version: i64,
    pub created_at_ms: i64,
}

/// Never prints the sealed credential, only whether there is one.
impl std::fmt::Debug for UpstreamRouteRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamRouteRow")
            .field("id", &self.id)
            .field("org_id", &self.org_id)
            .field("pattern", &self.pattern)
            .field("url", &self.url)
            .field("has_credential", &self.credential_sealed.is_some())
            .field("version", &self.version)
            .field("created_at_ms", &self.created_at_ms)
            .finish()
    }
}

fn route_from_row(r: &sqlx::any::AnyRow) -> CpResult<UpstreamRouteRow> {
    Ok(UpstreamRouteRow {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        pattern: r.try_get("pattern")?,
        url: r.try_get("url")?,
        credential_sealed: r.try_get("credential_sealed")?,
        version: r.try_get("version")?,
        created_at_ms: r.try_get("created_at_ms")?,
    })
}

const COLUMNS: &str = "id, org_id, pattern, url, credential_sealed, version, created_at_ms";

impl Db {
    /// Adds a route; a pattern the org already routes is `AlreadyExists` (also when another
    /// control plane added it concurrently: the unique index decides).
    pub async fn insert_upstream_route(
        conn: &mut AnyConnection,
        r: &UpstreamRouteRow,
    ) -> CpResult<()> {
        let done = sqlx::query(&format!(
            "INSERT INTO upstream_routes ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        ))
        .bind(&r.id)
        .bind(&r.org_id)
        .bind(&r.pattern)
        .bind(&r.url)
        .bind(r.credential_sealed.clone())
        .bind(r.version)
        .bind(r.created_at_ms)
        .execute(conn)
        .await;
        match done {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(
                CpError::AlreadyExists(format!("an upstream route for {:?}", r.pattern)),
            ),
            Err(e) => Err(e.into()),
        }
    }

    /// An org's routes, oldest first.
    pub async fn upstream_routes(
        conn: &mut AnyConnection,
        org_id: &str,
    ) -> CpResult<Vec<UpstreamRouteRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM upstream_routes WHERE org_id = $1 ORDER BY created_at_ms, id"
        ))
        .bind(org_id)
        .fetch_all(conn)
        .await?;
        rows.iter().map(route_from_row).collect()
    }

    pub async fn upstream_routes_of(&self, org_id: &str) -> CpResult<Vec<UpstreamRouteRow>> {
        let mut conn = self.pool.acquire().await?;
        Self::upstream_routes(&mut conn, org_id).await
    }

    /// One of an org's routes; `None` if it has no such route.
    pub async fn upstream_route(
        conn: &mut AnyConnection,
        org_id: &str,
        id: &str,
    ) -> CpResult<Option<UpstreamRouteRow>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM upstream_routes WHERE org_id = $1 AND id = $2"
        ))
        .bind(org_id)
        .bind(id)
        .fetch_optional(conn)
        .await?;
        row.as_ref().map(route_from_row).transpose()
    }

    /// Writes a route's URL, sealed credential and version (its pattern and creation time
    /// never change). `NotFound` if the org has no such route.
    pub async fn update_upstream_route(
        conn: &mut AnyConnection,
        r: &UpstreamRouteRow,
    ) -> CpResult<()> {
        let done = sqlx::query(
            "UPDATE upstream_routes SET url = $1, credential_sealed = $2, version = $3
             WHERE org_id = $4 AND id = $5",
        )
        .bind(&r.url)
        .bind(r.credential_sealed.clone())
        .bind(r.version)
        .bind(&r.org_id)
        .bind(&r.id)
        .execute(conn)
        .await?;
        if done.rows_affected() == 0 {
            return Err(CpError::NotFound(format!("upstream route {}", r.id)));
        }
        Ok(())
    }

    /// Removes one of an org's routes; `None` if it has no such route.
    pub async fn delete_upstream_route(
        conn: &mut AnyConnection,
        org_id: &str,
        id: &str,
    ) -> CpResult<Option<UpstreamRouteRow>> {
        let Some(found) = Self::upstream_route(&mut *conn, org_id, id).await? else {
            return Ok(None);
        };
        sqlx::query("DELETE FROM upstream_routes WHERE org_id = $1 AND id = $2")
            .bind(org_id)
            .bind(id)
            .execute(conn)
            .await?;
        Ok(Some(found))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{new_id, now_ms, test_db, Backend, OrgRow};
    use super::*;

    super::super::on_both_backends!(
        upstream_routes_round_trip_per_org,
        a_pattern_is_routed_once_per_org,
    );

    async fn with_org(db: &Db, slug: &str) -> OrgRow {
        let o = OrgRow {
            id: new_id(),
            slug: slug.into(),
            display_name: slug.into(),
            created_at_ms: now_ms(),
            config_version: 1,
            internal_scopes: vec![format!("@{slug}")],
            public_reads: true,
        };
        let mut w = db.write().await.expect("write");
        Db::insert_org(w.conn(), &o).await.expect("insert org");
        w.commit().await.expect("commit");
        o
    }

    fn route(org_id: &str, pattern: &str, sealed: Option<&[u8]>, at: i64) -> UpstreamRouteRow {
        UpstreamRouteRow {
            id: new_id(),
            org_id: org_id.into(),
            pattern: pattern.into(),
            url: "https://vendor.test/npm".into(),
            credential_sealed: sealed.map(<[u8]>::to_vec),
            version: 1,
            created_at_ms: at,
        }
    }

    async fn upstream_routes_round_trip_per_org(b: Backend) {
        let (_dir, db) = test_db(b).await;
        let acme = with_org(&db, "acme").await;
        let other = with_org(&db, "other").await;
        let first = route(&acme.id, "@vendor", Some(&[1, 2, 3, 0, 255]), 10);
        let second = route(&acme.id, "tool-*", None, 20);
        let foreign = route(&other.id, "@vendor", None, 5);
        let mut w = db.write().await.expect("write");
        for r in [&second, &first, &foreign] {
            Db::insert_upstream_route(w.conn(), r)
                .await
                .expect("insert");
        }
        w.commit().await.expect("commit");
        let listed = db.upstream_routes_of(&acme.id).await.expect("list");
        assert_eq!(listed, vec![first.clone(), second.clone()], "oldest first");

        // Update: URL, credential (set, then cleared) and version; another org's id is
        // not found.
        let mut changed = second.clone();
        changed.url = "http://127.0.0.1:4873".into();
        changed.credential_sealed = Some(vec![9; 40]);
        changed.version = 2;
        let mut w = db.write().await.expect("write");
        Db::update_upstream_route(w.conn(), &changed)
            .await
            .expect("update");
        let wrong_org = UpstreamRouteRow {
            org_id: other.id.clone(),
            ..changed.clone()
        };
        let missing = Db::update_upstream_route(w.conn(), &wrong_org).await;
        assert!(matches!(missing, Err(CpError::NotFound(_))), "{missing:?}");
        let got = Db::upstream_route(w.conn(), &acme.id, &second.id)
            .await
            .expect("get");
        assert_eq!(got, Some(changed.clone()));
        let mut cleared = changed.clone();
        cleared.credential_sealed = None;
        cleared.version = 3;
        Db::update_upstream_route(w.conn(), &cleared)
            .await
            .expect("update");
        w.commit().await.expect("commit");
        let listed = db.upstream_routes_of(&acme.id).await.expect("list");
        assert_eq!(listed, vec![first.clone(), cleared.clone()]);

        let mut w = db.write().await.expect("write");
        let none = Db::delete_upstream_route(w.conn(), &acme.id, &foreign.id)
            .await
            .expect("delete");
        assert_eq!(none, None, "another org's route is not acme's to remove");
        let removed = Db::delete_upstream_route(w.conn(), &acme.id, &first.id)
            .await
            .expect("delete");
        assert_eq!(removed, Some(first));
        w.commit().await.expect("commit");
        let listed = db.upstream_routes_of(&acme.id).await.expect("list");
        assert_eq!(listed, vec![cleared]);
        let theirs = db.upstream_routes_of(&other.id).await.expect("list");
        assert_eq!(theirs, vec![foreign]);
    }

    async fn a_pattern_is_routed_once_per_org(b: Backend) {
        let (_dir, db) = test_db(b).await;
        let acme = with_org(&db, "acme").await;
        let mut w = db.write().await.expect("write");
        Db::insert_upstream_route(w.conn(), &route(&acme.id, "@vendor", None, 1))
            .await
            .expect("insert");
        w.commit().await.expect("commit");
        let mut w = db.write().await.expect("write");
        let twice = Db::insert_upstream_route(w.conn(), &route(&acme.id, "@vendor", None, 2)).await;
        assert!(matches!(twice, Err(CpError::AlreadyExists(_))), "{twice:?}");
    }

    #[test]
    fn debug_shows_whether_a_credential_is_sealed_not_its_bytes() {
        let r = route("o", "@vendor", Some(b"SEALEDBYTES"), 0);
        let shown = format!("{r:?}");
        assert!(shown.contains("has_credential: true"), "{shown}");
        assert!(!shown.contains("83, 69, 65"), "{shown}");
        assert!(!shown.contains("credential_sealed"), "{shown}");
    }
}
