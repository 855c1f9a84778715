//! An org's security rules (the `rules` column of `orgs`, an encoded protobuf `Rules`) and
//! the `rule_exceptions` table. Every change bumps the org's config version: both are part
//! of its snapshot.

use nproxy_common::time::now_ms;
use sqlx::{AnyConnection, Row};

use super::db::Db;
use crate::error::{CpError, CpResult};

impl Db {
    pub async fn rules(conn: &mut AnyConnection, org_id: &str) -> CpResult<Option<Vec<u8>>> {
        Ok(sqlx::query_scalar("SELECT rules FROM orgs WHERE id = $1")
            .bind(org_id)
            .fetch_optional(conn)
            .await?
            .flatten())
    }

    pub async fn set_rules(conn: &mut AnyConnection, org_id: &str, rules: &[u8]) -> CpResult<()> {
        sqlx::query(
            "UPDATE orgs SET rules = $1, config_version = config_version + 1 WHERE id = $2",
        )
        .bind(rules)
        .bind(org_id)
        .execute(conn)
        .await?;
        Ok(())
    }

    pub async fn exceptions(
        conn: &mut AnyConnection,
        org_id: &str,
    ) -> CpResult<Vec<(String, String, String, String, i64)>> {
        let rows = sqlx::query(
            "SELECT id, package, version, reason, created_at_ms FROM rule_exceptions WHERE org_id = $1 ORDER BY package, version",
        )
        .bind(org_id)
        .fetch_all(conn)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("id")?,
                    r.try_get("package")?,
                    r.try_get("version")?,
                    r.try_get("reason")?,
                    r.try_get("created_at_ms")?,
                ))
            })
            .collect()
    }

    pub async fn add_exception(
        conn: &mut AnyConnection,
        id: &str,
        org_id: &str,
        package: &str,
        version: &str,
        reason: &str,
    ) -> CpResult<i64> {
        // Returned so the answer carries exactly what was stored.
        let created_at_ms = now_ms();
        let res = sqlx::query(
            "INSERT INTO rule_exceptions (id, org_id, package, version, reason, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(org_id)
        .bind(package)
        .bind(version)
        .bind(reason)
        .bind(created_at_ms)
        .execute(&mut *conn)
        .await;
        match res {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(
                CpError::AlreadyExists(format!("exception for {package}@{version}")),
            ),
            Err(e) => Err(e.into()),
            Ok(_) => {
                Self::bump_config_version(conn, org_id).await?;
                Ok(created_at_ms)
            }
        }
    }

    pub async fn remove_exception(
        conn: &mut AnyConnection,
        org_id: &str,
        id: &str,
    ) -> CpResult<(String, String)> {
        let row = sqlx::query(
            "SELECT package, version FROM rule_exceptions WHERE org_id = $1 AND id = $2",
        )
        .bind(org_id)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| CpError::NotFound(format!("exception {id:?}")))?;
        let found: (String, String) = (row.try_get("package")?, row.try_get("version")?);
        sqlx::query("DELETE FROM rule_exceptions WHERE org_id = $1 AND id = $2")
            .bind(org_id)
            .bind(id)
            .execute(&mut *conn)
            .await?;
        Self::bump_config_version(conn, org_id).await?;
        Ok(found)
    }
}
