//! The fleet's durable state next to policies and events: dynamic blocks, the reputation list
//! (intel) and the audit trail of every change an operator or the correlator makes.
//!
//! Blocks and intel each carry a revision that only grows (kept in `revisions`, so it survives a
//! restart): edges replace their whole list when a higher revision arrives.

use rusqlite::{params, OptionalExtension, Transaction};
use vigil_proto::v1::Observation;

use super::store::{Store, StoreError};
use crate::timefmt::format_utc;

/// Applied by `Store::migrate` to databases older than schema version 2.
pub const SCHEMA_V2: &str = "
ALTER TABLE events ADD COLUMN principal TEXT NOT NULL DEFAULT '';
-- JSON of the event's observation, '' when it has none
ALTER TABLE events ADD COLUMN observation TEXT NOT NULL DEFAULT '';
CREATE TABLE blocks (
    kind            TEXT    NOT NULL,
    value           TEXT    NOT NULL,
    -- 0: until removed
    expires_unix_ms INTEGER NOT NULL,
    reason          TEXT    NOT NULL,
    limit_only      INTEGER NOT NULL,
    created_by      TEXT    NOT NULL,
    created_unix_ms INTEGER NOT NULL,
    PRIMARY KEY (kind, value)
);
CREATE TABLE intel (
    position INTEGER PRIMARY KEY,
    cidr     TEXT    NOT NULL,
    label    TEXT    NOT NULL
);
CREATE TABLE audit (
    id      INTEGER PRIMARY KEY,
    unix_ms INTEGER NOT NULL,
    actor   TEXT    NOT NULL,
    action  TEXT    NOT NULL,
    detail  TEXT    NOT NULL
);
CREATE TABLE revisions (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
";

/// Actor recorded for changes the server makes by itself (expiry).
pub const SYSTEM_ACTOR: &str = "system";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockRecord {
    pub kind: String,
    pub value: String,
    /// 0: until removed.
    pub expires_unix_ms: i64,
    pub reason: String,
    pub limit_only: bool,
    pub created_by: String,
    pub created_unix_ms: i64,
}

impl BlockRecord {
    pub fn active(&self, now_unix_ms: i64) -> bool {
        self.expires_unix_ms == 0 || now_unix_ms < self.expires_unix_ms
    }

    /// One line for the audit trail.
    pub fn describe(&self) -> String {
        let until = if self.expires_unix_ms == 0 {
            "no expiry".to_owned()
        } else {
            format!("until {} UTC", format_utc(self.expires_unix_ms, false))
        };
        let what = if self.limit_only { "limit" } else { "block" };
        format!(
            "{what} {} {} ({until}; reason: {})",
            self.kind, self.value, self.reason
        )
    }

    /// `self` already does at least what `other` would: as strict, and lasting as long.
    pub fn covers(&self, other: &BlockRecord) -> bool {
        let strict_enough = !self.limit_only || other.limit_only;
        let long_enough = self.expires_unix_ms == 0
            || (other.expires_unix_ms != 0 && self.expires_unix_ms >= other.expires_unix_ms);
        self.kind == other.kind && self.value == other.value && strict_enough && long_enough
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntelRecord {
    pub cidr: String,
    pub label: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub unix_ms: i64,
    pub actor: String,
    pub action: String,
    pub detail: String,
}

/// The active blocks after a change, with the revision that change produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockSnapshot {
    pub revision: u64,
    pub blocks: Vec<BlockRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntelSnapshot {
    pub revision: u64,
    pub entries: Vec<IntelRecord>,
}

impl Store {
    // ------------------------------------------------------------------ audit

    pub fn audit(
        &mut self,
        actor: &str,
        action: &str,
        detail: &str,
        now_unix_ms: i64,
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        insert_audit(&tx, actor, action, detail, now_unix_ms)?;
        tx.commit()?;
        Ok(())
    }

    /// The newest `limit` entries, newest first.
    pub fn list_audit(&self, limit: u32) -> Result<Vec<AuditRecord>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT unix_ms, actor, action, detail FROM audit ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit], |r| {
            Ok(AuditRecord {
                unix_ms: r.get(0)?,
                actor: r.get(1)?,
                action: r.get(2)?,
                detail: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    // ------------------------------------------------------------------ blocks

    /// The blocks in force at `now` and the current revision.
    pub fn blocks(&self, now_unix_ms: i64) -> Result<BlockSnapshot, StoreError> {
        snapshot(&self.conn, now_unix_ms)
    }

    /// Adds (or replaces) the block on `(kind, value)`.
    pub fn add_block(
        &mut self,
        block: &BlockRecord,
        now_unix_ms: i64,
    ) -> Result<BlockSnapshot, StoreError> {
        let tx = self.conn.transaction()?;
        upsert_block(&tx, block, now_unix_ms)?;
        bump(&tx, "blocks")?;
        let snapshot = snapshot(&tx, now_unix_ms)?;
        tx.commit()?;
        Ok(snapshot)
    }

    /// Adds `block` unless an active block already covers it (as strict, lasting as long):
    /// `None` when nothing changed. Repeated detections of one offender stay one block.
    pub fn add_block_unless_covered(
        &mut self,
        block: &BlockRecord,
        now_unix_ms: i64,
    ) -> Result<Option<BlockSnapshot>, StoreError> {
        let tx = self.conn.transaction()?;
        let existing = tx
            .query_row(
                &format!("{SELECT_BLOCK} WHERE kind = ?1 AND value = ?2"),
                params![block.kind, block.value],
                block_row,
            )
            .optional()?;
        if existing.is_some_and(|e| e.active(now_unix_ms) && e.covers(block)) {
            return Ok(None);
        }
        upsert_block(&tx, block, now_unix_ms)?;
        bump(&tx, "blocks")?;
        let snapshot = snapshot(&tx, now_unix_ms)?;
        tx.commit()?;
        Ok(Some(snapshot))
    }

    /// Removes the block on `(kind, value)`; `None` when there is none.
    pub fn remove_block(
        &mut self,
        kind: &str,
        value: &str,
        actor: &str,
        now_unix_ms: i64,
    ) -> Result<Option<BlockSnapshot>, StoreError> {
        let tx = self.conn.transaction()?;
        let existing = tx
            .query_row(
                &format!("{SELECT_BLOCK} WHERE kind = ?1 AND value = ?2"),
                params![kind, value],
                block_row,
            )
            .optional()?;
        let Some(existing) = existing else {
            return Ok(None);
        };
        tx.execute(
            "DELETE FROM blocks WHERE kind = ?1 AND value = ?2",
            params![kind, value],
        )?;
        insert_audit(
            &tx,
            actor,
            "block.remove",
            &existing.describe(),
            now_unix_ms,
        )?;
        bump(&tx, "blocks")?;
        let snapshot = snapshot(&tx, now_unix_ms)?;
        tx.commit()?;
        Ok(Some(snapshot))
    }

    /// Deletes the blocks whose time is up (auditing each); `None` when none were.
    pub fn expire_blocks(&mut self, now_unix_ms: i64) -> Result<Option<BlockSnapshot>, StoreError> {
        let tx = self.conn.transaction()?;
        let expired: Vec<BlockRecord> = {
            let mut stmt = tx.prepare_cached(&format!(
                "{SELECT_BLOCK} WHERE expires_unix_ms != 0 AND expires_unix_ms <= ?1"
            ))?;
            let rows = stmt.query_map([now_unix_ms], block_row)?;
            rows.collect::<Result<_, _>>()?
        };
        if expired.is_empty() {
            return Ok(None);
        }
        for b in &expired {
            tx.execute(
                "DELETE FROM blocks WHERE kind = ?1 AND value = ?2",
                params![b.kind, b.value],
            )?;
            insert_audit(
                &tx,
                SYSTEM_ACTOR,
                "block.expire",
                &b.describe(),
                now_unix_ms,
            )?;
        }
        bump(&tx, "blocks")?;
        let snapshot = snapshot(&tx, now_unix_ms)?;
        tx.commit()?;
        Ok(Some(snapshot))
    }

    // ------------------------------------------------------------------ intel

    pub fn intel(&self) -> Result<IntelSnapshot, StoreError> {
        intel_snapshot(&self.conn)
    }

    /// Replaces the whole reputation list (entries already validated).
    pub fn load_intel(
        &mut self,
        entries: &[IntelRecord],
        source: &str,
        actor: &str,
        now_unix_ms: i64,
    ) -> Result<IntelSnapshot, StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute("DELETE FROM intel", [])?;
        {
            let mut insert =
                tx.prepare_cached("INSERT INTO intel (cidr, label) VALUES (?1, ?2)")?;
            for e in entries {
                insert.execute(params![e.cidr, e.label])?;
            }
        }
        let detail = if source.is_empty() {
            format!("{} entries", entries.len())
        } else {
            format!("{} entries from {source}", entries.len())
        };
        insert_audit(&tx, actor, "intel.load", &detail, now_unix_ms)?;
        bump(&tx, "intel")?;
        let snapshot = intel_snapshot(&tx)?;
        tx.commit()?;
        Ok(snapshot)
    }
}

const SELECT_BLOCK: &str = "SELECT kind, value, expires_unix_ms, reason, limit_only, created_by,
                                   created_unix_ms FROM blocks";

fn block_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<BlockRecord> {
    Ok(BlockRecord {
        kind: r.get(0)?,
        value: r.get(1)?,
        expires_unix_ms: r.get(2)?,
        reason: r.get(3)?,
        limit_only: r.get(4)?,
        created_by: r.get(5)?,
        created_unix_ms: r.get(6)?,
    })
}

fn upsert_block(
    tx: &Transaction<'_>,
    block: &BlockRecord,
    now_unix_ms: i64,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO blocks (kind, value, expires_unix_ms, reason, limit_only, created_by,
                             created_unix_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (kind, value) DO UPDATE SET
             expires_unix_ms = excluded.expires_unix_ms, reason = excluded.reason,
             limit_only = excluded.limit_only, created_by = excluded.created_by,
             created_unix_ms = excluded.created_unix_ms",
        params![
            block.kind,
            block.value,
            block.expires_unix_ms,
            block.reason,
            block.limit_only,
            block.created_by,
            block.created_unix_ms
        ],
    )?;
    insert_audit(
        tx,
        &block.created_by,
        "block.add",
        &block.describe(),
        now_unix_ms,
    )
}

fn snapshot(conn: &rusqlite::Connection, now_unix_ms: i64) -> Result<BlockSnapshot, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "{SELECT_BLOCK} WHERE expires_unix_ms = 0 OR expires_unix_ms > ?1 ORDER BY kind, value"
    ))?;
    let rows = stmt.query_map([now_unix_ms], block_row)?;
    Ok(BlockSnapshot {
        revision: revision(conn, "blocks")?,
        blocks: rows.collect::<Result<_, _>>()?,
    })
}

fn intel_snapshot(conn: &rusqlite::Connection) -> Result<IntelSnapshot, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT cidr, label FROM intel ORDER BY position")?;
    let rows = stmt.query_map([], |r| {
        Ok(IntelRecord {
            cidr: r.get(0)?,
            label: r.get(1)?,
        })
    })?;
    Ok(IntelSnapshot {
        revision: revision(conn, "intel")?,
        entries: rows.collect::<Result<_, _>>()?,
    })
}

fn revision(conn: &rusqlite::Connection, name: &str) -> Result<u64, StoreError> {
    let value: Option<i64> = conn
        .query_row("SELECT value FROM revisions WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .optional()?;
    Ok(value.unwrap_or(0).max(0) as u64)
}

fn bump(tx: &Transaction<'_>, name: &str) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO revisions (name, value) VALUES (?1, 1)
         ON CONFLICT (name) DO UPDATE SET value = value + 1",
        [name],
    )?;
    Ok(())
}

fn insert_audit(
    tx: &Transaction<'_>,
    actor: &str,
    action: &str,
    detail: &str,
    now_unix_ms: i64,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO audit (unix_ms, actor, action, detail) VALUES (?1, ?2, ?3, ?4)",
        params![now_unix_ms, actor, action, detail],
    )?;
    Ok(())
}

// ---------------------------------------------------------------------- observations

pub fn observation_to_json(o: Option<&Observation>) -> String {
    match o {
        None => String::new(),
        Some(o) => serde_json::json!({
            "kind": o.kind,
            "ip": o.ip,
            "principal": o.principal,
            "route": o.route,
            "subject": o.subject,
            "status": o.status,
            "bytes": o.bytes,
            "records": o.records,
        })
        .to_string(),
    }
}

pub fn observation_from_json(text: &str) -> Option<Observation> {
    if text.is_empty() {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    let s = |k: &str| {
        v.get(k)
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let n = |k: &str| v.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
    Some(Observation {
        kind: s("kind"),
        ip: s("ip"),
        principal: s("principal"),
        route: s("route"),
        subject: s("subject"),
        status: u32::try_from(n("status")).unwrap_or(0),
        bytes: n("bytes"),
        records: n("records"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(kind: &str, value: &str, expires: i64, limit_only: bool) -> BlockRecord {
        BlockRecord {
            kind: kind.into(),
            value: value.into(),
            expires_unix_ms: expires,
            reason: "manual".into(),
            limit_only,
            created_by: "alice".into(),
            created_unix_ms: 1_000,
        }
    }

    #[test]
    fn blocks_add_cover_remove_and_expire_with_audit() {
        let mut store = Store::open_in_memory().unwrap();
        assert_eq!(store.blocks(0).unwrap().revision, 0);
        let s1 = store
            .add_block(&block("ip", "203.0.113.5", 5_000, false), 1_000)
            .unwrap();
        assert_eq!((s1.revision, s1.blocks.len()), (1, 1));
        // A shorter or weaker block on the same address changes nothing...
        for weaker in [
            block("ip", "203.0.113.5", 4_000, false),
            block("ip", "203.0.113.5", 5_000, true),
        ] {
            assert!(store
                .add_block_unless_covered(&weaker, 1_100)
                .unwrap()
                .is_none());
        }
        // ...a longer one replaces it.
        let s2 = store
            .add_block_unless_covered(&block("ip", "203.0.113.5", 9_000, false), 1_200)
            .unwrap()
            .unwrap();
        assert_eq!(s2.revision, 2);
        assert_eq!(s2.blocks[0].expires_unix_ms, 9_000);
        store
            .add_block(&block("principal", "sub:mallory", 0, true), 1_300)
            .unwrap();
        assert!(store.expire_blocks(8_999).unwrap().is_none());
        let s4 = store.expire_blocks(9_000).unwrap().unwrap();
        assert_eq!(s4.revision, 4);
        assert_eq!(s4.blocks.len(), 1);
        assert_eq!(s4.blocks[0].kind, "principal");
        assert!(store
            .remove_block("ip", "203.0.113.5", "bob", 9_100)
            .unwrap()
            .is_none());
        let s5 = store
            .remove_block("principal", "sub:mallory", "bob", 9_200)
            .unwrap()
            .unwrap();
        assert_eq!((s5.revision, s5.blocks.len()), (5, 0));

        let audit = store.list_audit(100).unwrap();
        let actions: Vec<&str> = audit.iter().map(|a| a.action.as_str()).collect();
        assert_eq!(
            actions,
            vec![
                "block.remove",
                "block.expire",
                "block.add",
                "block.add",
                "block.add"
            ]
        );
        assert_eq!(audit[0].actor, "bob");
        assert_eq!(audit[1].actor, SYSTEM_ACTOR);
        assert!(audit[1].detail.contains("203.0.113.5"), "{audit:?}");
        assert_eq!(store.list_audit(2).unwrap().len(), 2);
    }

    #[test]
    fn blocks_past_their_time_are_not_active_before_the_sweep() {
        let mut store = Store::open_in_memory().unwrap();
        store
            .add_block(&block("cidr", "198.51.100.0/24", 2_000, false), 1_000)
            .unwrap();
        assert_eq!(store.blocks(1_999).unwrap().blocks.len(), 1);
        assert!(store.blocks(2_000).unwrap().blocks.is_empty());
    }

    #[test]
    fn intel_loads_replace_the_list_and_revisions_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vigil.db");
        {
            let mut store = Store::open(&path).unwrap();
            let entries = vec![
                IntelRecord {
                    cidr: "192.0.2.0/24".into(),
                    label: "tor".into(),
                },
                IntelRecord {
                    cidr: "203.0.113.9".into(),
                    label: String::new(),
                },
            ];
            let s = store.load_intel(&entries, "bad.txt", "alice", 1).unwrap();
            assert_eq!((s.revision, s.entries.len()), (1, 2));
            let s = store.load_intel(&entries[..1], "", "alice", 2).unwrap();
            assert_eq!((s.revision, s.entries.len()), (2, 1));
        }
        let store = Store::open(&path).unwrap();
        let s = store.intel().unwrap();
        assert_eq!(s.revision, 2);
        assert_eq!(s.entries[0].label, "tor");
        let audit = store.list_audit(10).unwrap();
        assert_eq!(audit[1].detail, "2 entries from bad.txt");
    }

    #[test]
    fn observations_round_trip_and_are_hidden_by_default() {
        use super::super::store::EventFilter;
        use vigil_proto::v1::Event;
        let mut store = Store::open_in_memory().unwrap();
        let observation = Observation {
            kind: "login".into(),
            ip: "203.0.113.5".into(),
            principal: "ip:203.0.113.5".into(),
            route: "/login".into(),
            subject: "alice".into(),
            status: 401,
            bytes: 12,
            records: 0,
        };
        let event = |seq: u64, outcome: &str| Event {
            node_id: "edge-1".into(),
            boot_id: "b".into(),
            sequence: seq,
            unix_ms: 10,
            outcome: outcome.into(),
            principal: "ip:203.0.113.5".into(),
            observation: (outcome == "observe").then(|| observation.clone()),
            ..Default::default()
        };
        store
            .insert_events(&[event(1, "observe"), event(2, "block")], 0, 10)
            .unwrap();
        let mut filter = EventFilter {
            limit: 10,
            ..Default::default()
        };
        let shown = store.query_events(&filter).unwrap();
        assert_eq!(shown.len(), 1);
        assert_eq!(shown[0].outcome, "block");
        filter.observations = true;
        let all = store.query_events(&filter).unwrap();
        assert_eq!(all.len(), 2);
        let observed = all.iter().find(|e| e.outcome == "observe").unwrap();
        assert_eq!(observed.observation.as_ref(), Some(&observation));
        assert_eq!(observed.principal, "ip:203.0.113.5");
    }
}
