//! Where the control plane publishes org config: Redis in production (key per org plus an
//! invalidation message), or an in-process bus for `nproxyctl dev`. Layout in
//! `nproxy_proto::redis_layout`.

use std::collections::HashMap;

use nproxy_proto::redis_layout::{
    advisories_invalidation, advisories_key, audit_head_key, org_snapshot_key,
    org_snapshot_stamp_key, token_usage_key, INVALIDATION_CHANNEL,
};

/// Orders the configs published under one slug: a newer org (a slug reused after a delete)
/// beats an older one, and within one org a higher config version wins. Several control
/// planes publish concurrently; a sink keeps the greatest stamp it was given, so a publish
/// that arrives late can't roll an org back (a revoked token accepted again).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Stamp {
    pub created_at_ms: i64,
    pub version: i64,
}

impl Stamp {
    pub fn decode(s: &str) -> Option<Stamp> {
        let (c, v) = s.split_once(':')?;
        Some(Stamp {
            created_at_ms: c.parse().ok()?,
            version: v.parse().ok()?,
        })
    }
}

#[async_trait::async_trait]
pub trait ConfigSink: Send + Sync + 'static {
    /// Writes an org's snapshot (or removes it, with `None`) and announces the change, unless
    /// what the slug holds has a greater stamp. Returns whether it was written.
    async fn publish(
        &self,
        slug: &str,
        stamp: Stamp,
        snapshot: Option<Vec<u8>>,
    ) -> Result<bool, String>;
    /// The stamp of what is currently published (or removed) under a slug, if any.
    async fn published_stamp(&self, slug: &str) -> Result<Option<Stamp>, String>;
    /// Publishes an audit chain head outside the database (never moving it back).
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
    async fn publish(
        &self,
        _slug: &str,
        _stamp: Stamp,
        _snapshot: Option<Vec<u8>>,
    ) -> Result<bool, String> {
        Ok(true)
    }
    async fn published_stamp(&self, _slug: &str) -> Result<Option<Stamp>, String> {
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

/// Writes a snapshot (or its removal) and its stamp, and announces it, in one step, unless
/// the stamp already there is greater. An equal stamp writes again: the same config, after
/// a partial loss of Redis, is restored by reconciliation.
static PUBLISH_IF_NEWER: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r"
        local cur = redis.call('GET', KEYS[2])
        if cur then
          local c, v = string.match(cur, '^(%-?%d+):(%-?%d+)$')
          local nc, nv = tonumber(ARGV[1]), tonumber(ARGV[2])
          if c and (tonumber(c) > nc or (tonumber(c) == nc and tonumber(v) > nv)) then
            return 0
          end
        end
        if ARGV[3] == '1' then
          redis.call('SET', KEYS[1], ARGV[4])
        else
          redis.call('DEL', KEYS[1])
        end
        redis.call('SET', KEYS[2], ARGV[1] .. ':' .. ARGV[2])
        redis.call('PUBLISH', ARGV[5], ARGV[6])
        return 1
        ",
    )
});

/// Moves an audit head forward only: two control planes announcing seq 5 and 6 in the
/// wrong order leave 6.
static SET_HEAD_IF_AHEAD: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r"
        local cur = redis.call('GET', KEYS[1])
        if cur then
          local seq = tonumber(string.match(cur, '^(%-?%d+):'))
          if seq and seq >= tonumber(ARGV[1]) then return 0 end
        end
        redis.call('SET', KEYS[1], ARGV[1] .. ':' .. ARGV[2])
        return 1
        ",
    )
});

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
    async fn publish(
        &self,
        slug: &str,
        stamp: Stamp,
        snapshot: Option<Vec<u8>>,
    ) -> Result<bool, String> {
        let mut conn = self.conn.clone();
        let written: i64 = PUBLISH_IF_NEWER
            .key(org_snapshot_key(slug))
            .key(org_snapshot_stamp_key(slug))
            .arg(stamp.created_at_ms)
            .arg(stamp.version)
            .arg(i64::from(snapshot.is_some()))
            .arg(snapshot.unwrap_or_default())
            .arg(INVALIDATION_CHANNEL)
            .arg(slug)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        Ok(written == 1)
    }

    async fn published_stamp(&self, slug: &str) -> Result<Option<Stamp>, String> {
        let mut conn = self.conn.clone();
        let v: Option<String> = redis::cmd("GET")
            .arg(org_snapshot_stamp_key(slug))
            .query_async(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        Ok(v.as_deref().and_then(Stamp::decode))
    }

    async fn set_audit_head(&self, org_id: &str, seq: i64, hash: &str) -> Result<(), String> {
        let mut conn = self.conn.clone();
        SET_HEAD_IF_AHEAD
            .key(audit_head_key(org_id))
            .arg(seq)
            .arg(hash)
            .invoke_async::<i64>(&mut conn)
            .await
            .map(drop)
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
