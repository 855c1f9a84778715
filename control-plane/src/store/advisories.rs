//! The `advisories` and `advisory_packages` tables: OSV advisories shared by every org,
//! indexed by the npm packages they are about.

use nproxy_common::time::now_ms;
use sqlx::{AnyConnection, Row};

use super::db::Db;
use crate::error::CpResult;

impl Db {
    pub async fn upsert_advisory(
        conn: &mut AnyConnection,
        id: &str,
        osv_json: &str,
        summary: &str,
        severity: &str,
        packages: &[String],
    ) -> CpResult<()> {
        sqlx::query(
            "INSERT INTO advisories (id, osv_json, summary, severity, imported_at_ms) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (id) DO UPDATE SET osv_json = excluded.osv_json, summary = excluded.summary,
               severity = excluded.severity, imported_at_ms = excluded.imported_at_ms",
        )
        .bind(id)
        .bind(osv_json)
        .bind(summary)
        .bind(severity)
        .bind(now_ms())
        .execute(&mut *conn)
        .await?;
        sqlx::query("DELETE FROM advisory_packages WHERE advisory_id = $1")
            .bind(id)
            .execute(&mut *conn)
            .await?;
        for p in packages {
            sqlx::query(
                "INSERT INTO advisory_packages (advisory_id, package) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            )
            .bind(id)
            .bind(p)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }

    /// (id, osv json, summary, severity, packages) of advisories, all or about one package.
    pub async fn advisories(
        &self,
        package: Option<&str>,
    ) -> CpResult<Vec<(String, String, String, String, Vec<String>)>> {
        // One row per (advisory, package), grouped here: string aggregation is spelled
        // differently by every database.
        let rows = sqlx::query(
            "SELECT a.id, a.osv_json, a.summary, a.severity, p.package
             FROM advisories a JOIN advisory_packages p ON p.advisory_id = a.id
             WHERE $1 IS NULL OR a.id IN (SELECT advisory_id FROM advisory_packages WHERE package = $2)
             ORDER BY a.id, p.package",
        )
        .bind(package)
        .bind(package)
        .fetch_all(&self.pool)
        .await?;
        let mut out: Vec<(String, String, String, String, Vec<String>)> = Vec::new();
        for r in &rows {
            let id: String = r.try_get("id")?;
            let package: String = r.try_get("package")?;
            match out.last_mut() {
                Some(last) if last.0 == id => last.4.push(package),
                _ => out.push((
                    id,
                    r.try_get("osv_json")?,
                    r.try_get("summary")?,
                    r.try_get("severity")?,
                    vec![package],
                )),
            }
        }
        Ok(out)
    }

    pub async fn advised_packages(&self) -> CpResult<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT DISTINCT package FROM advisory_packages ORDER BY package")
                .fetch_all(&self.pool)
                .await?,
        )
    }
}
