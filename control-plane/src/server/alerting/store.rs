//! The alerting tables: alerts (every incident, firing or resolved), the outbox (notifications
//! not yet delivered: they survive receiver outages and restarts) and silences.

use rusqlite::{params, Connection, OptionalExtension};

use super::engine::{Alert, Sent, Silence};
use super::receivers::{AlertSnapshot, Notification};
use super::rules::{KeyKind, Level};
use super::{parse_severity, Severity};
use crate::server::store::StoreError;

pub const SCHEMA: &str = "
CREATE TABLE alerts (
    id                 INTEGER PRIMARY KEY,
    fingerprint        TEXT    NOT NULL,
    rule               TEXT    NOT NULL,
    key_kind           TEXT    NOT NULL,
    key                TEXT    NOT NULL,
    level              TEXT    NOT NULL,
    severity           TEXT    NOT NULL,
    count              INTEGER NOT NULL,
    first_seen_unix_ms INTEGER NOT NULL,
    last_seen_unix_ms  INTEGER NOT NULL,
    resolved_unix_ms   INTEGER,
    acked_by           TEXT,
    acked_unix_ms      INTEGER,
    summary            TEXT    NOT NULL,
    -- receiver -> [severity, unix ms] of its last notification
    sent               TEXT    NOT NULL DEFAULT '{}'
);
CREATE INDEX alerts_by_state ON alerts (resolved_unix_ms, id);
CREATE TABLE alert_outbox (
    id                   INTEGER PRIMARY KEY,
    receiver             TEXT    NOT NULL,
    alert_id             INTEGER NOT NULL,
    notification         TEXT    NOT NULL,
    created_unix_ms      INTEGER NOT NULL,
    attempts             INTEGER NOT NULL DEFAULT 0,
    next_attempt_unix_ms INTEGER NOT NULL,
    last_error           TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX alert_outbox_by_receiver ON alert_outbox (receiver, id);
CREATE TABLE alert_silences (
    id              INTEGER PRIMARY KEY,
    rule            TEXT,
    key             TEXT,
    until_unix_ms   INTEGER NOT NULL,
    created_by      TEXT    NOT NULL,
    comment         TEXT    NOT NULL,
    created_unix_ms INTEGER NOT NULL
);
";

pub fn snapshot(a: &Alert) -> AlertSnapshot {
    AlertSnapshot {
        id: a.id,
        incident: a.incident_key(),
        fingerprint: a.fingerprint.clone(),
        rule: a.rule.clone(),
        key_kind: a.key_kind.as_str().to_owned(),
        key: a.key.clone(),
        severity: a.severity.as_str().to_owned(),
        level: a.level.as_str().to_owned(),
        count: a.count,
        summary: a.summary.clone(),
        first_seen_unix_ms: a.first_seen_ms,
        last_seen_unix_ms: a.last_seen_ms,
        resolved_unix_ms: a.resolved_ms,
        acked_by: a.acked_by.clone(),
    }
}

fn sent_json(a: &Alert) -> String {
    let map: serde_json::Map<String, serde_json::Value> = a
        .sent
        .iter()
        .map(|(k, s)| (k.clone(), serde_json::json!([s.severity.as_str(), s.at_ms])))
        .collect();
    serde_json::Value::Object(map).to_string()
}

fn sent_from_json(text: &str) -> std::collections::BTreeMap<String, Sent> {
    let value: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
    value
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| {
                    let severity = parse_severity(v.get(0)?.as_str()?)?;
                    let at_ms = v.get(1)?.as_i64()?;
                    Some((k.clone(), Sent { severity, at_ms }))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Inserts or updates alerts and queues notifications, in one transaction.
pub fn save(
    conn: &mut Connection,
    alerts: &[Alert],
    notifications: &[(String, Notification)],
    now_ms: i64,
    max_rows: u64,
) -> Result<SaveReport, StoreError> {
    let tx = conn.transaction()?;
    {
        let mut upsert = tx.prepare_cached(
            "INSERT INTO alerts (id, fingerprint, rule, key_kind, key, level, severity, count,
                 first_seen_unix_ms, last_seen_unix_ms, resolved_unix_ms, acked_by, acked_unix_ms,
                 summary, sent)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
             ON CONFLICT (id) DO UPDATE SET level = excluded.level, severity = excluded.severity,
                 count = excluded.count, last_seen_unix_ms = excluded.last_seen_unix_ms,
                 resolved_unix_ms = excluded.resolved_unix_ms, acked_by = excluded.acked_by,
                 acked_unix_ms = excluded.acked_unix_ms, sent = excluded.sent",
        )?;
        for a in alerts {
            upsert.execute(params![
                a.id,
                a.fingerprint,
                a.rule,
                a.key_kind.as_str(),
                a.key,
                a.level.as_str(),
                a.severity.as_str(),
                i64::try_from(a.count).unwrap_or(i64::MAX),
                a.first_seen_ms,
                a.last_seen_ms,
                a.resolved_ms,
                a.acked_by,
                a.acked_ms,
                a.summary,
                sent_json(a),
            ])?;
        }
        let mut queue = tx.prepare_cached(
            "INSERT INTO alert_outbox (receiver, alert_id, notification, created_unix_ms,
                 next_attempt_unix_ms)
             VALUES (?1, ?2, ?3, ?4, ?4)",
        )?;
        for (receiver, n) in notifications {
            let json = serde_json::to_string(n).unwrap_or_default();
            queue.execute(params![receiver, n.alert.id, json, now_ms])?;
        }
    }
    // The bound: past `max_rows` undelivered notifications, the oldest are given up.
    let pending: i64 = tx.query_row("SELECT COUNT(*) FROM alert_outbox", [], |r| r.get(0))?;
    let excess = pending - i64::try_from(max_rows).unwrap_or(i64::MAX);
    let mut dropped = Vec::new();
    if excess > 0 {
        let mut stmt = tx.prepare("SELECT id, receiver FROM alert_outbox ORDER BY id LIMIT ?1")?;
        let rows = stmt.query_map([excess], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })?;
        dropped = rows.collect::<Result<Vec<_>, _>>()?;
        drop(stmt);
        for (id, _) in &dropped {
            tx.execute("DELETE FROM alert_outbox WHERE id = ?1", [id])?;
        }
    }
    tx.commit()?;
    Ok(SaveReport {
        pending: (pending - excess.max(0)).max(0) as u64,
        dropped: dropped.into_iter().map(|(_, r)| r).collect(),
    })
}

pub struct SaveReport {
    pub pending: u64,
    /// Receivers of notifications given up because the outbox was full.
    pub dropped: Vec<String>,
}

fn alert_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Alert> {
    let key_kind: String = r.get(3)?;
    let level: String = r.get(5)?;
    let severity: String = r.get(6)?;
    let sent: String = r.get(14)?;
    Ok(Alert {
        id: r.get(0)?,
        fingerprint: r.get(1)?,
        rule: r.get(2)?,
        key_kind: KeyKind::parse(&key_kind).unwrap_or(KeyKind::All),
        key: r.get(4)?,
        level: Level::parse(&level).unwrap_or(Level::Log),
        severity: parse_severity(&severity).unwrap_or(Severity::Low),
        count: r.get::<_, i64>(7)?.max(0) as u64,
        first_seen_ms: r.get(8)?,
        last_seen_ms: r.get(9)?,
        resolved_ms: r.get(10)?,
        acked_by: r.get(11)?,
        acked_ms: r.get(12)?,
        summary: r.get(13)?,
        sent: sent_from_json(&sent),
    })
}

const ALERT_COLUMNS: &str = "id, fingerprint, rule, key_kind, key, level, severity, count,
    first_seen_unix_ms, last_seen_unix_ms, resolved_unix_ms, acked_by, acked_unix_ms, summary, sent";

/// Firing alerts, oldest first, then (with `resolved`) the latest resolved ones; at most `limit`.
pub fn list(conn: &Connection, resolved: bool, limit: u32) -> Result<Vec<Alert>, StoreError> {
    let sql = if resolved {
        format!("SELECT {ALERT_COLUMNS} FROM alerts ORDER BY resolved_unix_ms IS NOT NULL, id DESC LIMIT ?1")
    } else {
        format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE resolved_unix_ms IS NULL ORDER BY id LIMIT ?1")
    };
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map([limit], alert_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn next_alert_id(conn: &Connection) -> Result<i64, StoreError> {
    Ok(
        conn.query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM alerts", [], |r| {
            r.get(0)
        })?,
    )
}

pub fn insert_silence(conn: &mut Connection, s: &Silence, now_ms: i64) -> Result<i64, StoreError> {
    conn.execute(
        "INSERT INTO alert_silences (rule, key, until_unix_ms, created_by, comment, created_unix_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![s.rule, s.key, s.until_ms, s.created_by, s.comment, now_ms],
    )?;
    Ok(conn.last_insert_rowid())
}

pub fn active_silences(conn: &Connection, now_ms: i64) -> Result<Vec<Silence>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT id, rule, key, until_unix_ms, created_by, comment FROM alert_silences
         WHERE until_unix_ms > ?1 ORDER BY id",
    )?;
    let rows = stmt.query_map([now_ms], |r| {
        Ok(Silence {
            id: r.get(0)?,
            rule: r.get(1)?,
            key: r.get(2)?,
            until_ms: r.get(3)?,
            created_by: r.get(4)?,
            comment: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// An undelivered notification.
#[derive(Debug, Clone)]
pub struct Pending {
    pub id: i64,
    pub notification: Option<Notification>,
    pub created_ms: i64,
    pub attempts: u32,
    pub next_attempt_ms: i64,
}

/// The oldest undelivered notification for `receiver`: notifications go out in order.
pub fn next_pending(conn: &Connection, receiver: &str) -> Result<Option<Pending>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT id, notification, created_unix_ms, attempts, next_attempt_unix_ms
             FROM alert_outbox WHERE receiver = ?1 ORDER BY id LIMIT 1",
            [receiver],
            |r| {
                let text: String = r.get(1)?;
                Ok(Pending {
                    id: r.get(0)?,
                    notification: serde_json::from_str(&text).ok(),
                    created_ms: r.get(2)?,
                    attempts: r.get::<_, i64>(3)?.clamp(0, i64::from(u32::MAX)) as u32,
                    next_attempt_ms: r.get(4)?,
                })
            },
        )
        .optional()?)
}

pub fn delivered(conn: &Connection, id: i64) -> Result<(), StoreError> {
    conn.execute("DELETE FROM alert_outbox WHERE id = ?1", [id])?;
    Ok(())
}

pub fn retry_later(
    conn: &Connection,
    id: i64,
    next_ms: i64,
    error: &str,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE alert_outbox SET attempts = attempts + 1, next_attempt_unix_ms = ?2, last_error = ?3
         WHERE id = ?1",
        params![id, next_ms, error],
    )?;
    Ok(())
}

pub fn pending_count(conn: &Connection) -> Result<u64, StoreError> {
    let n: i64 = conn.query_row("SELECT COUNT(*) FROM alert_outbox", [], |r| r.get(0))?;
    Ok(n.max(0) as u64)
}

/// Receivers with undelivered notifications that are not configured (any more).
pub fn receivers_in_outbox(conn: &Connection) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare("SELECT DISTINCT receiver FROM alert_outbox")?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::store::Store;

    fn alert(id: i64) -> Alert {
        let mut sent = std::collections::BTreeMap::new();
        sent.insert(
            "hook".to_owned(),
            Sent {
                severity: Severity::High,
                at_ms: 5,
            },
        );
        Alert {
            id,
            fingerprint: "fp".into(),
            rule: "r".into(),
            key_kind: KeyKind::ClientIp,
            key: "10.0.0.1".into(),
            level: Level::Notify,
            severity: Severity::High,
            count: 20,
            first_seen_ms: 1,
            last_seen_ms: 2,
            resolved_ms: None,
            acked_by: None,
            acked_ms: None,
            summary: "s".into(),
            sent,
        }
    }

    fn note(a: &Alert, status: &str) -> Notification {
        Notification {
            status: status.into(),
            previous_severity: None,
            alert: snapshot(a),
        }
    }

    #[test]
    fn alerts_round_trip_and_the_outbox_is_ordered_and_bounded() {
        let mut store = Store::open_in_memory().unwrap();
        let conn = store.conn();
        let a = alert(1);
        let queued = vec![
            ("hook".to_owned(), note(&a, "firing")),
            ("pd".to_owned(), note(&a, "firing")),
        ];
        let report = save(conn, std::slice::from_ref(&a), &queued, 10, 3).unwrap();
        assert_eq!((report.pending, report.dropped.len()), (2, 0));
        assert_eq!(list(conn, false, 10).unwrap(), vec![a.clone()]);
        assert_eq!(next_alert_id(conn).unwrap(), 2);

        let mut resolved = a.clone();
        resolved.resolved_ms = Some(20);
        resolved.count = 25;
        let more = vec![
            ("hook".to_owned(), note(&resolved, "resolved")),
            ("pd".to_owned(), note(&resolved, "resolved")),
        ];
        // Four queued, bound three: the oldest (hook's firing) is given up.
        let report = save(conn, &[resolved.clone()], &more, 20, 3).unwrap();
        assert_eq!(report.pending, 3);
        assert_eq!(report.dropped, vec!["hook".to_owned()]);
        assert!(list(conn, false, 10).unwrap().is_empty());
        assert_eq!(list(conn, true, 10).unwrap(), vec![resolved]);

        // Per receiver, oldest first; a failure keeps the row with a later attempt time.
        let first = next_pending(conn, "pd").unwrap().unwrap();
        assert_eq!(first.notification.as_ref().unwrap().status, "firing");
        retry_later(conn, first.id, 99, "HTTP 503").unwrap();
        let again = next_pending(conn, "pd").unwrap().unwrap();
        assert_eq!(
            (again.id, again.attempts, again.next_attempt_ms),
            (first.id, 1, 99)
        );
        delivered(conn, first.id).unwrap();
        let next = next_pending(conn, "pd").unwrap().unwrap();
        assert_eq!(next.notification.unwrap().status, "resolved");
        assert_eq!(pending_count(conn).unwrap(), 2);
        let mut names = receivers_in_outbox(conn).unwrap();
        names.sort();
        assert_eq!(names, ["hook", "pd"]);
    }

    #[test]
    fn silences_are_stored_until_they_end() {
        let mut store = Store::open_in_memory().unwrap();
        let conn = store.conn();
        let s = Silence {
            id: 0,
            rule: Some("r".into()),
            key: None,
            until_ms: 100,
            created_by: "admin".into(),
            comment: "pen test".into(),
        };
        let id = insert_silence(conn, &s, 1).unwrap();
        let active = active_silences(conn, 50).unwrap();
        assert_eq!(active, vec![Silence { id, ..s }]);
        assert!(active_silences(conn, 100).unwrap().is_empty());
    }
}
