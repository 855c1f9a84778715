//! The `orgs` table: orgs (soft-deleted, so their audit history keeps its subject), their
//! settings and the config version every snapshot change bumps.

use nproxy_common::time::now_ms;
use sqlx::{AnyConnection, Row};

use super::db::Db;
use crate::error::{CpError, CpResult};
use crate::sink::Stamp;

#[derive(Debug, Clone)]
pub struct OrgRow {
    pub id: String,
    pub slug: String,
    pub display_name: String,
    pub created_at_ms: i64,
    pub config_version: i64,
    pub internal_scopes: Vec<String>,
    pub public_reads: bool,
}

fn org_from_row(r: &sqlx::any::AnyRow) -> CpResult<OrgRow> {
    let scopes: String = r.try_get("internal_scopes")?;
    Ok(OrgRow {
        id: r.try_get("id")?,
        slug: r.try_get("slug")?,
        display_name: r.try_get("display_name")?,
        created_at_ms: r.try_get("created_at_ms")?,
        config_version: r.try_get("config_version")?,
        internal_scopes: serde_json::from_str(&scopes)
            .map_err(|e| CpError::Internal(format!("corrupt internal_scopes: {e}")))?,
        public_reads: r.try_get::<i64, _>("public_reads")? != 0,
    })
}

impl OrgRow {
    /// Orders this org's published configs (see `Stamp`).
    pub fn stamp(&self) -> Stamp {
        Stamp {
            created_at_ms: self.created_at_ms,
            version: self.config_version,
        }
    }
}

const ORG_COLUMNS: &str =
    "id, slug, display_name, created_at_ms, config_version, internal_scopes, public_reads";

impl Db {
    /// Finds a live org by id or slug.
    pub async fn org(&self, id_or_slug: &str) -> CpResult<OrgRow> {
        let row = sqlx::query(&format!(
            "SELECT {ORG_COLUMNS} FROM orgs WHERE (id = $1 OR slug = $2) AND deleted_at_ms IS NULL"
        ))
        .bind(id_or_slug)
        .bind(id_or_slug)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(r) => org_from_row(&r),
            None => Err(CpError::NotFound(format!("org {id_or_slug:?}"))),
        }
    }

    pub async fn org_in(conn: &mut AnyConnection, id: &str) -> CpResult<OrgRow> {
        let row = sqlx::query(&format!(
            "SELECT {ORG_COLUMNS} FROM orgs WHERE id = $1 AND deleted_at_ms IS NULL"
        ))
        .bind(id)
        .fetch_optional(conn)
        .await?;
        match row {
            Some(r) => org_from_row(&r),
            None => Err(CpError::NotFound(format!("org {id:?}"))),
        }
    }

    pub async fn list_orgs(&self, after: &str, limit: u32) -> CpResult<Vec<OrgRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {ORG_COLUMNS} FROM orgs WHERE deleted_at_ms IS NULL AND id > $1 ORDER BY id LIMIT $2"
        ))
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(org_from_row).collect()
    }

    pub async fn all_live_orgs(&self) -> CpResult<Vec<OrgRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {ORG_COLUMNS} FROM orgs WHERE deleted_at_ms IS NULL ORDER BY id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(org_from_row).collect()
    }

    /// Slugs of deleted orgs that no live org reuses (their Redis keys must not exist), each
    /// with the stamp of the newest org that had it.
    pub async fn dead_slugs(&self) -> CpResult<Vec<(String, Stamp)>> {
        let rows = sqlx::query(
            "SELECT slug, created_at_ms, config_version FROM orgs d WHERE deleted_at_ms IS NOT NULL
             AND NOT EXISTS (SELECT 1 FROM orgs l WHERE l.slug = d.slug AND l.deleted_at_ms IS NULL)
             ORDER BY slug, created_at_ms, config_version",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out: Vec<(String, Stamp)> = Vec::new();
        for r in &rows {
            let slug: String = r.try_get("slug")?;
            let stamp = Stamp {
                created_at_ms: r.try_get("created_at_ms")?,
                version: r.try_get("config_version")?,
            };
            match out.last_mut() {
                // Ordered: the last row of a slug is its newest org.
                Some(last) if last.0 == slug => last.1 = stamp,
                _ => out.push((slug, stamp)),
            }
        }
        Ok(out)
    }

    /// The stamp of an org, live or deleted (deleting bumps its version).
    pub async fn org_stamp_in(conn: &mut AnyConnection, id: &str) -> CpResult<Stamp> {
        let row = sqlx::query("SELECT created_at_ms, config_version FROM orgs WHERE id = $1")
            .bind(id)
            .fetch_optional(conn)
            .await?
            .ok_or_else(|| CpError::NotFound(format!("org {id:?}")))?;
        Ok(Stamp {
            created_at_ms: row.try_get("created_at_ms")?,
            version: row.try_get("config_version")?,
        })
    }

    pub async fn insert_org(conn: &mut AnyConnection, org: &OrgRow) -> CpResult<()> {
        let res = sqlx::query(
            "INSERT INTO orgs (id, slug, display_name, created_at_ms, config_version, internal_scopes, public_reads)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&org.id)
        .bind(&org.slug)
        .bind(&org.display_name)
        .bind(org.created_at_ms)
        .bind(org.config_version)
        .bind(serde_json::to_string(&org.internal_scopes).unwrap_or_else(|_| "[]".into()))
        .bind(i64::from(org.public_reads))
        .execute(conn)
        .await;
        match res {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(CpError::AlreadyExists(format!("org {:?}", org.slug)))
            }
            Err(e) => Err(e.into()),
            Ok(_) => Ok(()),
        }
    }

    pub async fn delete_org(conn: &mut AnyConnection, id: &str) -> CpResult<()> {
        sqlx::query(
            "UPDATE orgs SET deleted_at_ms = $1, config_version = config_version + 1 WHERE id = $2",
        )
        .bind(now_ms())
        .bind(id)
        .execute(&mut *conn)
        .await?;
        sqlx::query(
            "UPDATE tokens SET revoked_at_ms = $1 WHERE org_id = $2 AND revoked_at_ms IS NULL",
        )
        .bind(now_ms())
        .bind(id)
        .execute(conn)
        .await?;
        Ok(())
    }

    pub async fn update_settings(
        conn: &mut AnyConnection,
        id: &str,
        scopes: &[String],
        public_reads: bool,
    ) -> CpResult<()> {
        sqlx::query(
            "UPDATE orgs SET internal_scopes = $1, public_reads = $2, config_version = config_version + 1 WHERE id = $3",
        )
        .bind(serde_json::to_string(scopes).unwrap_or_else(|_| "[]".into()))
        .bind(i64::from(public_reads))
        .bind(id)
        .execute(conn)
        .await?;
        Ok(())
    }

    pub async fn bump_config_version(conn: &mut AnyConnection, id: &str) -> CpResult<()> {
        sqlx::query("UPDATE orgs SET config_version = config_version + 1 WHERE id = $1")
            .bind(id)
            .execute(conn)
            .await?;
        Ok(())
    }

    /// Any org id, live or deleted, by id or slug (audit history outlives orgs).
    pub async fn any_org_id(&self, id_or_slug: &str) -> CpResult<String> {
        let id: Option<String> = sqlx::query_scalar(
            "SELECT id FROM orgs WHERE id = $1 OR slug = $2 ORDER BY deleted_at_ms IS NOT NULL, created_at_ms DESC LIMIT 1",
        )
        .bind(id_or_slug)
        .bind(id_or_slug)
        .fetch_optional(&self.pool)
        .await?;
        id.ok_or_else(|| CpError::NotFound(format!("org {id_or_slug:?}")))
    }
}
