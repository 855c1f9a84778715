//! The `trusted_publishers` table: per org, the CI identities (an OIDC issuer and the claims
//! its id tokens must carry) that may exchange an id token for a short-lived publish token
//! for one internal package or a whole internal scope.

use std::collections::BTreeMap;

use sqlx::{AnyConnection, Row};

use super::db::Db;
use crate::error::{CpError, CpResult};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedPublisherRow {
    pub id: String,
    pub org_id: String,
    /// Exactly as in the id tokens' `iss` claim.
    pub issuer: String,
    /// `@scope/name`, or `@scope/*` for the whole scope.
    pub package: String,
    /// Claim name → required value (a value ending in `*` matches by prefix).
    pub claims: BTreeMap<String, String>,
    pub created_at_ms: i64,
}

impl TrustedPublisherRow {
    /// Whether this publisher may publish `name`.
    pub fn covers(&self, name: &str) -> bool {
        match self.package.strip_suffix('*') {
            // `@scope/*`: the prefix keeps its slash, so `@scope/*` never covers `@scopex/a`.
            Some(prefix) => prefix.ends_with('/') && name.starts_with(prefix),
            None => self.package == name,
        }
    }
}

fn trusted_from_row(r: &sqlx::any::AnyRow) -> CpResult<TrustedPublisherRow> {
    let claims: String = r.try_get("claims")?;
    Ok(TrustedPublisherRow {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        issuer: r.try_get("issuer")?,
        package: r.try_get("package")?,
        claims: serde_json::from_str(&claims)
            .map_err(|e| CpError::Internal(format!("corrupt trusted publisher claims: {e}")))?,
        created_at_ms: r.try_get("created_at_ms")?,
    })
}

impl Db {
    pub async fn insert_trusted_publisher(
        conn: &mut AnyConnection,
        t: &TrustedPublisherRow,
    ) -> CpResult<()> {
        let claims = serde_json::to_string(&t.claims)
            .map_err(|e| CpError::Internal(format!("trusted publisher claims: {e}")))?;
        sqlx::query(
            "INSERT INTO trusted_publishers (id, org_id, issuer, package, claims, created_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&t.id)
        .bind(&t.org_id)
        .bind(&t.issuer)
        .bind(&t.package)
        .bind(claims)
        .bind(t.created_at_ms)
        .execute(conn)
        .await?;
        Ok(())
    }

    /// An org's trusted publishers, oldest first.
    pub async fn trusted_publishers(
        conn: &mut AnyConnection,
        org_id: &str,
    ) -> CpResult<Vec<TrustedPublisherRow>> {
        let rows = sqlx::query(
            "SELECT * FROM trusted_publishers WHERE org_id = $1 ORDER BY created_at_ms, id",
        )
        .bind(org_id)
        .fetch_all(conn)
        .await?;
        rows.iter().map(trusted_from_row).collect()
    }

    pub async fn trusted_publishers_of(&self, org_id: &str) -> CpResult<Vec<TrustedPublisherRow>> {
        let mut conn = self.pool.acquire().await?;
        Self::trusted_publishers(&mut conn, org_id).await
    }

    /// Removes one of an org's trusted publishers; `None` if it has no such publisher.
    pub async fn delete_trusted_publisher(
        conn: &mut AnyConnection,
        org_id: &str,
        id: &str,
    ) -> CpResult<Option<TrustedPublisherRow>> {
        let row = sqlx::query("SELECT * FROM trusted_publishers WHERE org_id = $1 AND id = $2")
            .bind(org_id)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let found = trusted_from_row(&row)?;
        sqlx::query("DELETE FROM trusted_publishers WHERE org_id = $1 AND id = $2")
            .bind(org_id)
            .bind(id)
            .execute(conn)
            .await?;
        Ok(Some(found))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{new_id, now_ms, test_db, Backend, OrgRow, TokenRow};
    use super::*;

    super::super::on_both_backends!(
        trusted_publishers_round_trip_per_org,
        a_token_keeps_its_packages_and_none_is_null,
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

    fn publisher(org_id: &str, package: &str, at: i64) -> TrustedPublisherRow {
        TrustedPublisherRow {
            id: new_id(),
            org_id: org_id.into(),
            issuer: "https://issuer.example".into(),
            package: package.into(),
            claims: [
                ("repository".to_string(), "acme/app".to_string()),
                ("ref".to_string(), "refs/tags/v*".to_string()),
            ]
            .into(),
            created_at_ms: at,
        }
    }

    async fn trusted_publishers_round_trip_per_org(b: Backend) {
        let (_dir, db) = test_db(b).await;
        let acme = with_org(&db, "acme").await;
        let other = with_org(&db, "other").await;
        let (first, second) = (
            publisher(&acme.id, "@acme/app", 10),
            publisher(&acme.id, "@acme/*", 20),
        );
        let foreign = publisher(&other.id, "@other/x", 5);
        let mut w = db.write().await.expect("write");
        for p in [&second, &first, &foreign] {
            Db::insert_trusted_publisher(w.conn(), p)
                .await
                .expect("insert");
        }
        w.commit().await.expect("commit");

        let listed = db.trusted_publishers_of(&acme.id).await.expect("list");
        assert_eq!(listed, vec![first.clone(), second.clone()], "oldest first");

        let mut w = db.write().await.expect("write");
        // Another org's id removes nothing.
        let none = Db::delete_trusted_publisher(w.conn(), &acme.id, &foreign.id)
            .await
            .expect("delete");
        assert_eq!(none, None);
        let removed = Db::delete_trusted_publisher(w.conn(), &acme.id, &first.id)
            .await
            .expect("delete");
        assert_eq!(removed, Some(first.clone()));
        w.commit().await.expect("commit");
        let listed = db.trusted_publishers_of(&acme.id).await.expect("list");
        assert_eq!(listed, vec![second]);
        let theirs = db.trusted_publishers_of(&other.id).await.expect("list");
        assert_eq!(theirs, vec![foreign]);
    }

    async fn a_token_keeps_its_packages_and_none_is_null(b: Backend) {
        let (_dir, db) = test_db(b).await;
        let acme = with_org(&db, "acme").await;
        let token = |name: &str, packages: Vec<String>| TokenRow {
            id: new_id(),
            org_id: acme.id.clone(),
            name: name.into(),
            sha256: crate::secrets::sha256(name).to_vec(),
            secret_prefix: "nproxy_x".into(),
            scopes: vec!["publish".into()],
            created_at_ms: now_ms(),
            expires_at_ms: Some(now_ms() + 60_000),
            last_used_at_ms: None,
            revoked_at_ms: None,
            packages,
        };
        let limited = token("limited", vec!["@acme/app".into()]);
        let plain = token("plain", Vec::new());
        let mut w = db.write().await.expect("write");
        Db::insert_token(w.conn(), &limited).await.expect("insert");
        Db::insert_token(w.conn(), &plain).await.expect("insert");
        let nulls: i64 = sqlx::query("SELECT COUNT(*) AS n FROM tokens WHERE packages IS NULL")
            .fetch_one(&mut *w.conn())
            .await
            .expect("count")
            .try_get("n")
            .expect("n");
        assert_eq!(nulls, 1, "an unlimited token stores NULL");
        w.commit().await.expect("commit");
        let mut r = db.read().await.expect("read");
        let live = Db::live_tokens(r.conn(), &acme.id).await.expect("tokens");
        let by_name = |n: &str| live.iter().find(|t| t.name == n).expect("listed");
        assert_eq!(by_name("limited").packages, vec!["@acme/app".to_string()]);
        assert!(by_name("plain").packages.is_empty());
    }

    #[test]
    fn a_scope_pattern_covers_its_scope_only() {
        let p = |package: &str| TrustedPublisherRow {
            package: package.into(),
            ..publisher("o", "", 0)
        };
        assert!(p("@acme/*").covers("@acme/app"));
        assert!(!p("@acme/*").covers("@acmex/app"));
        assert!(!p("@acme/*").covers("@other/app"));
        assert!(p("@acme/app").covers("@acme/app"));
        assert!(!p("@acme/app").covers("@acme/app2"));
        assert!(!p("@acme/app").covers("@acme/ap"));
    }
}
