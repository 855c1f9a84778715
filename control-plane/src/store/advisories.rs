//! The `advisories` and `advisory_packages` tables: OSV advisories shared by every org,
//! indexed by the npm packages they are about.

use nproxy_common::time::now_ms;
use sqlx::{Row, SqliteConnection};

use super::db::Db;
use crate::error::CpResult;

impl Db {
    pub async fn upsert_advisory(
        conn: &mut SqliteConnection,
        id: &str,
        osv_json: &str,
        summary: &str,
        severity: &str,
        packages: &[String],
    ) -> CpResult<()> {
        sqlx::query(
            "INSERT INTO advisories (id, osv_json, summary, severity, imported_at_ms) VALUES (?, ?, ?, ?, ?)
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
        sqlx::query("DELETE FROM advisory_packages WHERE advisory_id = ?")
            .bind(id)
            .execute(&mut *conn)
            .await?;
        for p in packages {
            sqlx::query(
                "INSERT OR IGNORE INTO advisory_packages (advisory_id, package) VALUES (?, ?)",
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
        let rows = sqlx::query(
            "SELECT a.id, a.osv_json, a.summary, a.severity, group_concat(p.package, char(10)) AS packages
             FROM advisories a JOIN advisory_packages p ON p.advisory_id = a.id
             WHERE ? IS NULL OR a.id IN (SELECT advisory_id FROM advisory_packages WHERE package = ?)
             GROUP BY a.id ORDER BY a.id",
        )
        .bind(package)
        .bind(package)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let packages: String = r.try_get("packages")?;
                Ok((
                    r.try_get("id")?,
                    r.try_get("osv_json")?,
                    r.try_get("summary")?,
                    r.try_get("severity")?,
                    packages.lines().map(str::to_string).collect(),
                ))
            })
            .collect()
    }

    pub async fn advised_packages(&self) -> CpResult<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT DISTINCT package FROM advisory_packages ORDER BY package")
                .fetch_all(&self.pool)
                .await?,
        )
    }
}
