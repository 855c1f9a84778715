//! The audit log: an append-only, per-org hash chain. Each event's hash covers the previous
//! hash and every field of the event, so editing or deleting a row breaks the chain. The
//! newest head is anchored outside the rows themselves: in `audit_anchors` with a MAC keyed
//! from the master key (a database edit can't forge it), in Redis, and in the log.

use nproxy_common::secret::SecretDigest;
use sha2::{Digest, Sha256};

use crate::error::CpResult;
use crate::secrets::MasterKey;
use crate::store::{new_id, AnchorRow, Db, EventRow, Write};

pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The hash of one event, over its predecessor's hash and its own fields.
pub fn event_hash(prev_hash: &str, e: &EventRow) -> String {
    let mut h = Sha256::new();
    for part in [
        prev_hash,
        &e.org_id,
        &e.seq.to_string(),
        &e.time_ms.to_string(),
        &e.kind,
        &e.actor,
        &e.details_json,
    ] {
        // Length-prefixed, so no two field lists hash the same.
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}

pub struct NewEvent<'a> {
    pub org_id: &'a str,
    pub kind: &'a str,
    pub actor: &'a str,
    pub details: serde_json::Value,
    pub time_ms: i64,
    pub idempotency_key: Option<&'a str>,
}

/// Appends an event inside the caller's write transaction and moves the anchor with it.
/// Returns `None` when an event with the same idempotency key is already recorded.
pub async fn append(
    w: &mut Write<'_>,
    mk: &MasterKey,
    e: NewEvent<'_>,
) -> CpResult<Option<EventRow>> {
    // First the chain head, so the idempotency check and the predecessor read below see
    // what another control plane committed while this one waited.
    let backend = w.backend();
    Db::lock_chain_head(w.conn(), backend, e.org_id).await?;
    if let Some(k) = e.idempotency_key {
        if Db::has_idempotency_key(w.conn(), e.org_id, k).await? {
            return Ok(None);
        }
    }
    let last = Db::last_event(w.conn(), e.org_id).await?;
    let (seq, prev_hash) = match last {
        Some(l) => (l.seq + 1, l.hash),
        None => (1, GENESIS.to_string()),
    };
    let mut row = EventRow {
        id: new_id(),
        org_id: e.org_id.to_string(),
        seq,
        time_ms: e.time_ms,
        kind: e.kind.to_string(),
        actor: e.actor.to_string(),
        details_json: e.details.to_string(),
        prev_hash: prev_hash.clone(),
        hash: String::new(),
    };
    row.hash = event_hash(&prev_hash, &row);
    Db::insert_event(w.conn(), &row, e.idempotency_key).await?;
    let mac = mk.anchor_mac(e.org_id, seq as u64, &row.hash);
    Db::set_anchor(
        w.conn(),
        e.org_id,
        &AnchorRow {
            seq,
            hash: row.hash.clone(),
            mac,
        },
    )
    .await?;
    Ok(Some(row))
}

/// Checks a whole chain. `external_head` is the head published outside the database (Redis),
/// if it can be read. Returns every problem found; empty means intact.
pub fn verify(
    org_id: &str,
    events: &[EventRow],
    anchor: Option<&AnchorRow>,
    external_head: Option<(i64, String)>,
    mk: &MasterKey,
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut prev = GENESIS.to_string();
    let mut expected_seq = 1;
    for e in events {
        if e.seq != expected_seq {
            problems.push(format!(
                "event seq {} follows {}: events {}..{} are missing",
                e.seq,
                expected_seq - 1,
                expected_seq,
                e.seq - 1
            ));
        }
        if e.prev_hash != prev {
            problems.push(format!(
                "event seq {} ({}) does not link to its predecessor",
                e.seq, e.kind
            ));
        }
        if event_hash(&e.prev_hash, e) != e.hash {
            problems.push(format!(
                "event seq {} ({}) was altered: its hash does not match its fields",
                e.seq, e.kind
            ));
        }
        prev = e.hash.clone();
        expected_seq = e.seq + 1;
    }
    let last_seq = events.last().map(|e| e.seq).unwrap_or(0);
    let last_hash = events.last().map(|e| e.hash.clone()).unwrap_or_default();
    match anchor {
        Some(a) => {
            let expected = mk.anchor_mac(org_id, a.seq as u64, &a.hash);
            // A MAC is a secret-derived value: `SecretDigest` compares in constant time.
            if SecretDigest::from_bytes(expected.as_bytes())
                != SecretDigest::from_bytes(a.mac.as_bytes())
            {
                problems
                    .push("the anchored chain head was altered (its MAC does not match)".into());
            } else if a.seq != last_seq || a.hash != last_hash {
                problems.push(format!(
                    "the chain ends at seq {last_seq} but its anchored head is seq {}: newest events were deleted or replaced",
                    a.seq
                ));
            }
        }
        None if !events.is_empty() => problems.push("the chain has no anchored head".into()),
        None => {}
    }
    if let Some((seq, hash)) = external_head {
        if seq > last_seq || (seq == last_seq && hash != last_hash) {
            problems.push(format!(
                "the head published to Redis is seq {seq}, ahead of the database's seq {last_seq}"
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> (Vec<EventRow>, AnchorRow, MasterKey) {
        let mk = MasterKey::generate();
        let mut prev = GENESIS.to_string();
        let mut out = Vec::new();
        for seq in 1..=n {
            let mut e = EventRow {
                id: format!("e{seq}"),
                org_id: "o".into(),
                seq,
                time_ms: 1000 + seq,
                kind: "token.created".into(),
                actor: "admin:root".into(),
                details_json: format!("{{\"n\":{seq}}}"),
                prev_hash: prev.clone(),
                hash: String::new(),
            };
            e.hash = event_hash(&prev, &e);
            prev = e.hash.clone();
            out.push(e);
        }
        let anchor = AnchorRow {
            seq: n,
            hash: prev.clone(),
            mac: mk.anchor_mac("o", n as u64, &prev),
        };
        (out, anchor, mk)
    }

    #[test]
    fn intact_chain_verifies() {
        let (events, anchor, mk) = chain(5);
        assert!(verify("o", &events, Some(&anchor), None, &mk).is_empty());
    }

    #[test]
    fn edited_row_is_found() {
        let (mut events, anchor, mk) = chain(5);
        events[2].details_json = "{\"n\":99}".into();
        let p = verify("o", &events, Some(&anchor), None, &mk);
        assert!(
            p.iter()
                .any(|m| m.contains("seq 3") && m.contains("altered")),
            "{p:?}"
        );
    }

    #[test]
    fn deleted_rows_are_found() {
        let (mut events, anchor, mk) = chain(5);
        events.remove(1);
        let p = verify("o", &events, Some(&anchor), None, &mk);
        assert!(p.iter().any(|m| m.contains("missing")), "{p:?}");
        let (mut events, anchor, mk) = chain(5);
        events.pop();
        let p = verify("o", &events, Some(&anchor), None, &mk);
        assert!(p.iter().any(|m| m.contains("newest events")), "{p:?}");
    }

    #[test]
    fn forged_anchor_and_redis_head_are_found() {
        let (mut events, mut anchor, mk) = chain(5);
        events.pop();
        anchor.seq = 4;
        anchor.hash = events[3].hash.clone();
        let p = verify("o", &events, Some(&anchor), None, &mk);
        assert!(p.iter().any(|m| m.contains("MAC")), "{p:?}");
        let (mut events, _, mk) = chain(5);
        let head = (5, events[4].hash.clone());
        events.pop();
        let anchor4 = AnchorRow {
            seq: 4,
            hash: events[3].hash.clone(),
            mac: mk.anchor_mac("o", 4, &events[3].hash),
        };
        // An anchor rolled back to a genuine older state: Redis still knows better.
        let p = verify("o", &events, Some(&anchor4), Some(head), &mk);
        assert!(p.iter().any(|m| m.contains("Redis")), "{p:?}");
    }
}
