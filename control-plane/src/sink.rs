//! Where the control plane publishes org config: Redis in production (key per org plus an
//! invalidation message), or an in-process bus for `nproxyctl dev`. Layout in
//! `nproxy_proto::redis_layout`.

use std::collections::HashMap;

use nproxy_proto::redis_layout::{
    advisories_invalidation, advisories_key, audit_head_key, org_snapshot_key, token_usage_key,
    INVALIDATION_CHANNEL,
};
use prost::Message;

#[async_trait::async_trait]
pub trait ConfigSink: Send + Sync + 'static {
    /// Writes an org's snapshot (or removes it, with `None`) and announces the change.
    async fn publish(&self, slug: &str, snapshot: Option<Vec<u8>>) -> Result<(), String>;
    /// The snapshot version currently published for a slug, if any.
    async fn published_version(&self, slug: &str) -> Result<Option<u64>, String>;
    /// Publishes an audit chain head outside the database.
    async fn set_audit_head(&self, org_id: &str, seq: i64, hash: &str) -> Result<(), String>;
    async fn audit_head(&self, org_id: &str) -> Result<Option<(i64, String)>, String>;
    /// Token id → last use (Unix ms) as reported by data planes.
    async fn token_usage(&self, org_id: &str) -> Result<HashMap<String, i64>, String>;
    /// Writes (or removes) the advisories about one package and announces the change.
    async fn publish_advisories(&self, package: &str, json: Option<Vec<u8>>) -> Result<(), String>;
    async fn has_advisories(&self, package: &str) -> Result<bool, String>;
}

/// For a control plane run without Redis (tests of the API alone).
pub struct NoSink;

#[async_trait::async_trait]
impl ConfigSink for NoSink {
    async fn publish(&self, _slug: &str, _snapshot: Option<Vec<u8>>) -> Result<(), String> {
        Ok(())
    }
    async fn published_version(&self, _slug: &str) -> Result<Option<u64>, String> {
        Ok(None)
    }
    async fn set_audit_head(&self, _org_id: &str, _seq: i64, _hash: &str) -> Result<(), String> {
        Ok(())
    }
    async fn audit_head(&self, _org_id: &str) -> Result<Option<(i64, String)>, String> {
        Ok(None)
    }
    async fn token_usage(&self, _org_id: &str) -> Result<HashMap<String, i64>, String> {
        Ok(HashMap::new())
    }
    async fn publish_advisories(
        &self,
        _package: &str,
        _json: Option<Vec<u8>>,
    ) -> Result<(), String> {
        Ok(())
    }
    async fn has_advisories(&self, _package: &str) -> Result<bool, String> {
        Ok(true)
    }
}

pub struct RedisSink {
    conn: redis::aio::ConnectionManager,
}

impl RedisSink {
    pub async fn connect(url: &str) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let cfg = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(std::time::Duration::from_secs(2)))
            .set_response_timeout(Some(std::time::Duration::from_secs(2)));
        let conn = redis::aio::ConnectionManager::new_with_config(client, cfg).await?;
        Ok(Self { conn })
    }
}

#[async_trait::async_trait]
impl ConfigSink for RedisSink {
    async fn publish(&self, slug: &str, snapshot: Option<Vec<u8>>) -> Result<(), String> {
        let mut conn = self.conn.clone();
        let key = org_snapshot_key(slug);
        let mut pipe = redis::pipe();
        pipe.atomic();
        match snapshot {
            Some(bytes) => pipe.set(&key, bytes).ignore(),
            None => pipe.del(&key).ignore(),
        };
        pipe.publish(INVALIDATION_CHANNEL, slug).ignore();
        pipe.query_async::<()>(&mut conn)
            .await
            .map_err(|e| e.to_string())
    }

    async fn published_version(&self, slug: &str) -> Result<Option<u64>, String> {
        let mut conn = self.conn.clone();
        let bytes: Option<Vec<u8>> = redis::cmd("GET")
            .arg(org_snapshot_key(slug))
            .query_async(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        Ok(bytes.and_then(|b| {
            nproxy_proto::v1::OrgConfigSnapshot::decode(b.as_slice())
                .ok()
                .map(|s| s.version)
        }))
    }

    async fn set_audit_head(&self, org_id: &str, seq: i64, hash: &str) -> Result<(), String> {
        let mut conn = self.conn.clone();
        redis::cmd("SET")
            .arg(audit_head_key(org_id))
            .arg(format!("{seq}:{hash}"))
            .query_async::<()>(&mut conn)
            .await
            .map_err(|e| e.to_string())
    }

    async fn audit_head(&self, org_id: &str) -> Result<Option<(i64, String)>, String> {
        let mut conn = self.conn.clone();
        let v: Option<String> = redis::cmd("GET")
            .arg(audit_head_key(org_id))
            .query_async(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        Ok(v.and_then(|v| {
            let (seq, hash) = v.split_once(':')?;
            Some((seq.parse().ok()?, hash.to_string()))
        }))
    }

    async fn token_usage(&self, org_id: &str) -> Result<HashMap<String, i64>, String> {
        let mut conn = self.conn.clone();
        redis::cmd("HGETALL")
            .arg(token_usage_key(org_id))
            .query_async(&mut conn)
            .await
            .map_err(|e| e.to_string())
    }

    async fn publish_advisories(&self, package: &str, json: Option<Vec<u8>>) -> Result<(), String> {
        let mut conn = self.conn.clone();
        let key = advisories_key(package);
        let mut pipe = redis::pipe();
        pipe.atomic();
        match json {
            Some(b) => pipe.set(&key, b).ignore(),
            None => pipe.del(&key).ignore(),
        };
        pipe.publish(INVALIDATION_CHANNEL, advisories_invalidation(package))
            .ignore();
        pipe.query_async::<()>(&mut conn)
            .await
            .map_err(|e| e.to_string())
    }

    async fn has_advisories(&self, package: &str) -> Result<bool, String> {
        let mut conn = self.conn.clone();
        redis::cmd("EXISTS")
            .arg(advisories_key(package))
            .query_async(&mut conn)
            .await
            .map_err(|e| e.to_string())
    }
}
