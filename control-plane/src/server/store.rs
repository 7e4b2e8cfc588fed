//! The control plane's durable state: policy history, events and nodes, in SQLite.
//!
//! Every method here is synchronous and runs one transaction; the server calls them through
//! [`StoreHandle`], which moves the work onto tokio's blocking pool. A method returns only
//! after its transaction has committed, so whatever the server acknowledges survives `kill -9`
//! (WAL with `synchronous = FULL`).
//!
//! History only grows: a push or a rollback adds a row to `policies` and moves the `current`
//! pointer; nothing is ever updated in place or deleted.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection, OptionalExtension, Transaction};
use sha2::{Digest, Sha256};
use vigil_proto::v1::{Event, Finding};

/// Bumped whenever the schema changes; `open` refuses a database from a newer vigil.
const SCHEMA_VERSION: i64 = 2;

const SCHEMA: &str = "
CREATE TABLE policies (
    version         INTEGER PRIMARY KEY,
    sha256          TEXT    NOT NULL,
    json            TEXT    NOT NULL,
    comment         TEXT    NOT NULL DEFAULT '',
    author_role     TEXT    NOT NULL,
    created_unix_ms INTEGER NOT NULL,
    -- set on rows created by a rollback: the version whose document was restored
    rollback_of     INTEGER REFERENCES policies(version)
);
CREATE TABLE current_policy (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL REFERENCES policies(version)
);
CREATE TABLE events (
    id               INTEGER PRIMARY KEY,
    node_id          TEXT    NOT NULL,
    boot_id          TEXT    NOT NULL,
    sequence         INTEGER NOT NULL,
    unix_ms          INTEGER NOT NULL,
    received_unix_ms INTEGER NOT NULL,
    request_id       TEXT    NOT NULL,
    outcome          TEXT    NOT NULL,
    score            INTEGER NOT NULL,
    method           TEXT    NOT NULL,
    path             TEXT    NOT NULL,
    client_ip        TEXT    NOT NULL,
    policy_version   TEXT    NOT NULL,
    findings         TEXT    NOT NULL,
    -- the first finding, denormalised for quick looks; queries use finding_index
    rule_id          TEXT    NOT NULL,
    category         TEXT    NOT NULL,
    UNIQUE (node_id, boot_id, sequence)
);
CREATE INDEX events_by_time ON events (unix_ms);
CREATE INDEX events_by_ip ON events (client_ip, unix_ms);
CREATE TABLE finding_index (
    event_id INTEGER NOT NULL REFERENCES events(id),
    rule_id  TEXT    NOT NULL,
    category TEXT    NOT NULL,
    PRIMARY KEY (event_id, rule_id, category)
) WITHOUT ROWID;
CREATE INDEX finding_by_rule ON finding_index (rule_id, event_id);
CREATE INDEX finding_by_category ON finding_index (category, event_id);
CREATE TABLE nodes (
    node_id             TEXT PRIMARY KEY,
    boot_id             TEXT    NOT NULL DEFAULT '',
    applied_version     TEXT    NOT NULL DEFAULT '',
    last_error          TEXT    NOT NULL DEFAULT '',
    last_seen_unix_ms   INTEGER NOT NULL DEFAULT 0,
    -- total over all boots; boot_events_dropped is the edge's own counter for boot_id
    events_dropped      INTEGER NOT NULL DEFAULT 0,
    boot_events_dropped INTEGER NOT NULL DEFAULT 0,
    events_received     INTEGER NOT NULL DEFAULT 0
);
";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot create {path}: {source}")]
    CreateDir {
        path: String,
        source: std::io::Error,
    },
    #[error("database schema version {0} is newer than this vigil understands ({SCHEMA_VERSION})")]
    NewerSchema(i64),
    #[error("policy version {0} does not exist")]
    UnknownVersion(i64),
    #[error("{0}")]
    NothingToRollBack(String),
    #[error("the policy changed since it was read: version {current} is current, not {base}")]
    StaleBase { base: i64, current: i64 },
    #[error("database task failed: {0}")]
    Task(String),
}

/// One row of the policy history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRecord {
    pub version: i64,
    pub sha256: String,
    pub json: String,
    pub comment: String,
    pub author_role: String,
    pub created_unix_ms: i64,
    pub rollback_of: Option<i64>,
    pub current: bool,
}

/// What a push or rollback did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A new version was recorded and is now current.
    Created(PolicyRecord),
    /// The document equals the current one: nothing was recorded.
    Unchanged(PolicyRecord),
}

impl Change {
    pub fn record(&self) -> &PolicyRecord {
        match self {
            Change::Created(r) | Change::Unchanged(r) => r,
        }
    }
}

/// Result of storing one batch: which events were new (indices into the batch).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchReport {
    pub stored: Vec<usize>,
    pub duplicates: u32,
}

/// Filters of an event query; `None` means no filter.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub since_unix_ms: i64,
    pub category: Option<String>,
    pub rule_id: Option<String>,
    pub client_ip: Option<String>,
    pub node_id: Option<String>,
    pub limit: u32,
    /// Include observations (outcome "observe"), which are hidden by default.
    pub observations: bool,
}

/// What a node told us about itself (on Watch or ReportStatus); `None` fields are left alone.
#[derive(Debug, Clone, Default)]
pub struct NodeUpdate {
    pub node_id: String,
    pub boot_id: String,
    pub applied_version: Option<String>,
    pub last_error: Option<String>,
    pub events_dropped: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRecord {
    pub node_id: String,
    pub boot_id: String,
    pub applied_version: String,
    pub last_error: String,
    pub last_seen_unix_ms: i64,
    pub events_dropped: u64,
    pub events_received: u64,
}

/// Hex SHA-256, the hash edges check before applying a bundle.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub struct Store {
    pub(super) conn: Connection,
}

impl Store {
    /// Opens (creating if missing) the database at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                path: dir.display().to_string(),
                source,
            })?;
        }
        Store::init(Connection::open(path)?)
    }

    /// A private in-memory database (tests).
    #[cfg(test)]
    pub fn open_in_memory() -> Result<Store, StoreError> {
        Store::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Store, StoreError> {
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // journal_mode returns a row, so it is read rather than executed.
        let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")?;
        let mut store = Store { conn };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema(version));
        }
        if version == 0 {
            tx.execute_batch(SCHEMA)?;
        }
        if version < 2 {
            tx.execute_batch(super::fleet_store::SCHEMA_V2)?;
            tx.execute_batch(super::alerting::store::SCHEMA)?;
        }
        if version < SCHEMA_VERSION {
            tx.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The connection, for the alerting tables (`alerting::store`).
    pub(crate) fn conn(&mut self) -> &mut Connection {
        &mut self.conn
    }

    // ------------------------------------------------------------------ policies

    pub fn current_policy(&self) -> Result<Option<PolicyRecord>, StoreError> {
        current(&self.conn)
    }

    /// Records `json` (already validated and canonical) as the new current version, unless it
    /// is byte-for-byte the current document.
    #[cfg(test)]
    pub fn push_policy(
        &mut self,
        json: &str,
        comment: &str,
        author_role: &str,
        now_unix_ms: i64,
    ) -> Result<Change, StoreError> {
        self.push_policy_on(json, comment, author_role, now_unix_ms, None)
    }

    /// [`Store::push_policy`], refused with [`StoreError::StaleBase`] unless `base` (when
    /// given) is still the current version: an edit of the current policy never overwrites a
    /// push made since it was read.
    pub fn push_policy_on(
        &mut self,
        json: &str,
        comment: &str,
        author_role: &str,
        now_unix_ms: i64,
        base: Option<i64>,
    ) -> Result<Change, StoreError> {
        let tx = self.conn.transaction()?;
        let sha = sha256_hex(json.as_bytes());
        if let Some(base) = base {
            let current = current_version(&tx)?.unwrap_or(0);
            if current != base {
                return Err(StoreError::StaleBase { base, current });
            }
        }
        if let Some(cur) = current(&tx)? {
            if cur.sha256 == sha {
                return Ok(Change::Unchanged(cur));
            }
        }
        let record = insert_version(&tx, json, &sha, comment, author_role, now_unix_ms, None)?;
        tx.commit()?;
        Ok(Change::Created(record))
    }

    /// The version a rollback would restore: `to`, or the version before the current one.
    pub fn rollback_target(&self, to: Option<i64>) -> Result<PolicyRecord, StoreError> {
        let cur = current(&self.conn)?
            .ok_or_else(|| StoreError::NothingToRollBack("no policy has been pushed yet".into()))?;
        match to {
            Some(v) if v == cur.version => Err(StoreError::NothingToRollBack(format!(
                "version {v} is already the current policy"
            ))),
            Some(v) => by_version(&self.conn, v, cur.version)?.ok_or(StoreError::UnknownVersion(v)),
            None => {
                let before: Option<i64> = self
                    .conn
                    .query_row(
                        "SELECT MAX(version) FROM policies WHERE version < ?1",
                        [cur.version],
                        |r| r.get(0),
                    )
                    .optional()?
                    .flatten();
                let v = before.ok_or_else(|| {
                    StoreError::NothingToRollBack(format!(
                        "version {} is the only version; nothing to roll back to",
                        cur.version
                    ))
                })?;
                by_version(&self.conn, v, cur.version)?.ok_or(StoreError::UnknownVersion(v))
            }
        }
    }

    /// Makes the document of version `to` current again, recorded as a new version so the
    /// history shows the rollback. Restoring a document equal to the current one changes nothing.
    pub fn rollback(
        &mut self,
        to: i64,
        author_role: &str,
        now_unix_ms: i64,
    ) -> Result<Change, StoreError> {
        let tx = self.conn.transaction()?;
        let cur = current(&tx)?
            .ok_or_else(|| StoreError::NothingToRollBack("no policy has been pushed yet".into()))?;
        if to == cur.version {
            return Err(StoreError::NothingToRollBack(format!(
                "version {to} is already the current policy"
            )));
        }
        let target = by_version(&tx, to, cur.version)?.ok_or(StoreError::UnknownVersion(to))?;
        if target.sha256 == cur.sha256 {
            return Ok(Change::Unchanged(cur));
        }
        let comment = format!("rollback to version {to}");
        let record = insert_version(
            &tx,
            &target.json,
            &target.sha256,
            &comment,
            author_role,
            now_unix_ms,
            Some(to),
        )?;
        tx.commit()?;
        Ok(Change::Created(record))
    }

    /// `None`: the current version.
    pub fn get_policy(&self, version: Option<i64>) -> Result<Option<PolicyRecord>, StoreError> {
        match version {
            None => current(&self.conn),
            Some(v) => {
                let cur = current_version(&self.conn)?.unwrap_or(0);
                by_version(&self.conn, v, cur)
            }
        }
    }

    /// Every version, oldest first.
    pub fn list_policies(&self) -> Result<Vec<PolicyRecord>, StoreError> {
        let cur = current_version(&self.conn)?.unwrap_or(0);
        let mut stmt = self.conn.prepare(
            "SELECT version, sha256, json, comment, author_role, created_unix_ms, rollback_of
             FROM policies ORDER BY version",
        )?;
        let rows = stmt.query_map([], |r| policy_row(r, cur))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    // ------------------------------------------------------------------ events

    /// Stores a batch in one transaction. An event whose (node, boot, sequence) is already
    /// stored is a duplicate (a resend) and is skipped. `events_dropped` is the edge's own
    /// count of events it lost since it booted, reported with the batch.
    pub fn insert_events(
        &mut self,
        events: &[Event],
        events_dropped: u64,
        now_unix_ms: i64,
    ) -> Result<BatchReport, StoreError> {
        self.insert_batch(events, Some(events_dropped), now_unix_ms)
    }

    /// Stores the control plane's own events (fleet detections): not from a node, so no node
    /// is counted or created.
    pub fn insert_fleet_events(
        &mut self,
        events: &[Event],
        now_unix_ms: i64,
    ) -> Result<BatchReport, StoreError> {
        self.insert_batch(events, None, now_unix_ms)
    }

    /// `events_dropped`: `None` when the batch is not from an edge.
    fn insert_batch(
        &mut self,
        events: &[Event],
        events_dropped: Option<u64>,
        now_unix_ms: i64,
    ) -> Result<BatchReport, StoreError> {
        let tx = self.conn.transaction()?;
        let mut report = BatchReport::default();
        let mut per_node: BTreeMap<&str, (&str, u64)> = BTreeMap::new();
        {
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO events (node_id, boot_id, sequence, unix_ms,
                     received_unix_ms, request_id, outcome, score, method, path, client_ip,
                     policy_version, findings, rule_id, category, principal, observation)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,
                         ?16, ?17)",
            )?;
            let mut index = tx.prepare_cached(
                "INSERT OR IGNORE INTO finding_index (event_id, rule_id, category)
                 VALUES (?1, ?2, ?3)",
            )?;
            for (i, e) in events.iter().enumerate() {
                let first = e.findings.first();
                let changed = insert.execute(params![
                    e.node_id,
                    e.boot_id,
                    e.sequence as i64, // bit-preserving: read back `as u64`
                    e.unix_ms,
                    now_unix_ms,
                    e.request_id,
                    e.outcome,
                    e.score,
                    e.method,
                    e.path,
                    e.client_ip,
                    e.policy_version,
                    findings_to_json(&e.findings),
                    first.map(|f| f.rule_id.as_str()).unwrap_or(""),
                    first.map(|f| f.category.as_str()).unwrap_or(""),
                    e.principal,
                    super::fleet_store::observation_to_json(e.observation.as_ref()),
                ])?;
                let entry = per_node
                    .entry(e.node_id.as_str())
                    .or_insert((e.boot_id.as_str(), 0));
                if changed == 0 {
                    report.duplicates += 1;
                    continue;
                }
                entry.1 += 1;
                report.stored.push(i);
                let id = tx.last_insert_rowid();
                for f in &e.findings {
                    index.execute(params![id, f.rule_id, f.category])?;
                }
            }
        }
        let Some(events_dropped) = events_dropped else {
            tx.commit()?;
            return Ok(report);
        };
        for (node_id, (boot_id, received)) in &per_node {
            ensure_node(&tx, node_id, boot_id)?;
            tx.execute(
                "UPDATE nodes SET events_received = events_received + ?2, last_seen_unix_ms = ?3
                 WHERE node_id = ?1",
                params![node_id, *received as i64, now_unix_ms],
            )?;
        }
        // A batch comes from one edge; its drop counter belongs to the first event's node.
        if let Some(first) = events.first() {
            record_dropped(&tx, &first.node_id, &first.boot_id, events_dropped)?;
        }
        tx.commit()?;
        Ok(report)
    }

    /// Stored events matching `filter`, newest first.
    pub fn query_events(&self, filter: &EventFilter) -> Result<Vec<Event>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT e.node_id, e.boot_id, e.sequence, e.unix_ms, e.request_id, e.outcome,
                    e.score, e.method, e.path, e.client_ip, e.policy_version, e.findings,
                    e.principal, e.observation
             FROM events e
             WHERE e.unix_ms >= ?1
               AND (?7 OR e.outcome != 'observe')
               AND (?2 IS NULL OR e.client_ip = ?2)
               AND (?3 IS NULL OR e.node_id = ?3)
               AND (?4 IS NULL OR EXISTS (SELECT 1 FROM finding_index f
                                          WHERE f.event_id = e.id AND f.category = ?4))
               AND (?5 IS NULL OR EXISTS (SELECT 1 FROM finding_index f
                                          WHERE f.event_id = e.id AND f.rule_id = ?5))
             ORDER BY e.unix_ms DESC, e.id DESC
             LIMIT ?6",
        )?;
        let rows = stmt.query_map(
            params![
                filter.since_unix_ms,
                filter.client_ip,
                filter.node_id,
                filter.category,
                filter.rule_id,
                filter.limit,
                filter.observations,
            ],
            |r| {
                let findings: String = r.get(11)?;
                Ok(Event {
                    node_id: r.get(0)?,
                    boot_id: r.get(1)?,
                    sequence: r.get::<_, i64>(2)? as u64,
                    unix_ms: r.get(3)?,
                    request_id: r.get(4)?,
                    outcome: r.get(5)?,
                    score: r.get(6)?,
                    method: r.get(7)?,
                    path: r.get(8)?,
                    client_ip: r.get(9)?,
                    policy_version: r.get(10)?,
                    findings: findings_from_json(&findings),
                    principal: r.get(12)?,
                    observation: super::fleet_store::observation_from_json(
                        &r.get::<_, String>(13)?,
                    ),
                })
            },
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    // ------------------------------------------------------------------ nodes

    /// Records that a node was heard from.
    pub fn update_node(&mut self, update: &NodeUpdate, now_unix_ms: i64) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        ensure_node(&tx, &update.node_id, &update.boot_id)?;
        tx.execute(
            "UPDATE nodes SET last_seen_unix_ms = ?2,
                              applied_version = COALESCE(?3, applied_version),
                              last_error = COALESCE(?4, last_error)
             WHERE node_id = ?1",
            params![
                update.node_id,
                now_unix_ms,
                update.applied_version,
                update.last_error
            ],
        )?;
        record_dropped(
            &tx,
            &update.node_id,
            &update.boot_id,
            update.events_dropped.unwrap_or(0),
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Every node ever seen, by id.
    pub fn list_nodes(&self) -> Result<Vec<NodeRecord>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT node_id, boot_id, applied_version, last_error, last_seen_unix_ms,
                    events_dropped, events_received
             FROM nodes ORDER BY node_id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(NodeRecord {
                node_id: r.get(0)?,
                boot_id: r.get(1)?,
                applied_version: r.get(2)?,
                last_error: r.get(3)?,
                last_seen_unix_ms: r.get(4)?,
                events_dropped: r.get::<_, i64>(5)?.max(0) as u64,
                events_received: r.get::<_, i64>(6)?.max(0) as u64,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

fn current_version(conn: &Connection) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .query_row("SELECT version FROM current_policy WHERE id = 1", [], |r| {
            r.get(0)
        })
        .optional()?)
}

fn current(conn: &Connection) -> Result<Option<PolicyRecord>, StoreError> {
    match current_version(conn)? {
        Some(v) => by_version(conn, v, v),
        None => Ok(None),
    }
}

fn by_version(
    conn: &Connection,
    version: i64,
    current: i64,
) -> Result<Option<PolicyRecord>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT version, sha256, json, comment, author_role, created_unix_ms, rollback_of
             FROM policies WHERE version = ?1",
            [version],
            |r| policy_row(r, current),
        )
        .optional()?)
}

fn policy_row(r: &rusqlite::Row<'_>, current: i64) -> rusqlite::Result<PolicyRecord> {
    let version: i64 = r.get(0)?;
    Ok(PolicyRecord {
        version,
        sha256: r.get(1)?,
        json: r.get(2)?,
        comment: r.get(3)?,
        author_role: r.get(4)?,
        created_unix_ms: r.get(5)?,
        rollback_of: r.get(6)?,
        current: version == current,
    })
}

fn insert_version(
    tx: &Transaction<'_>,
    json: &str,
    sha: &str,
    comment: &str,
    author_role: &str,
    now_unix_ms: i64,
    rollback_of: Option<i64>,
) -> Result<PolicyRecord, StoreError> {
    let version: i64 = tx.query_row(
        "SELECT COALESCE(MAX(version), 0) + 1 FROM policies",
        [],
        |r| r.get(0),
    )?;
    tx.execute(
        "INSERT INTO policies (version, sha256, json, comment, author_role, created_unix_ms,
                               rollback_of)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            version,
            sha,
            json,
            comment,
            author_role,
            now_unix_ms,
            rollback_of
        ],
    )?;
    tx.execute(
        "INSERT INTO current_policy (id, version) VALUES (1, ?1)
         ON CONFLICT (id) DO UPDATE SET version = excluded.version",
        [version],
    )?;
    Ok(PolicyRecord {
        version,
        sha256: sha.to_owned(),
        json: json.to_owned(),
        comment: comment.to_owned(),
        author_role: author_role.to_owned(),
        created_unix_ms: now_unix_ms,
        rollback_of,
        current: true,
    })
}

fn ensure_node(tx: &Transaction<'_>, node_id: &str, boot_id: &str) -> Result<(), StoreError> {
    tx.execute(
        "INSERT OR IGNORE INTO nodes (node_id, boot_id) VALUES (?1, ?2)",
        params![node_id, boot_id],
    )?;
    Ok(())
}

/// Folds an edge's per-boot drop counter into the node's total: the counter only grows within
/// a boot (so resends change nothing), and a new boot starts a new counter.
fn record_dropped(
    tx: &Transaction<'_>,
    node_id: &str,
    boot_id: &str,
    dropped: u64,
) -> Result<(), StoreError> {
    let dropped = i64::try_from(dropped).unwrap_or(i64::MAX);
    let (known_boot, boot_dropped): (String, i64) = tx.query_row(
        "SELECT boot_id, boot_events_dropped FROM nodes WHERE node_id = ?1",
        [node_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if boot_id.is_empty() || known_boot == boot_id {
        if dropped > boot_dropped {
            tx.execute(
                "UPDATE nodes SET events_dropped = events_dropped + ?2, boot_events_dropped = ?3
                 WHERE node_id = ?1",
                params![node_id, dropped - boot_dropped, dropped],
            )?;
        }
    } else {
        tx.execute(
            "UPDATE nodes SET boot_id = ?2, boot_events_dropped = ?3,
                              events_dropped = events_dropped + ?3
             WHERE node_id = ?1",
            params![node_id, boot_id, dropped],
        )?;
    }
    Ok(())
}

fn findings_to_json(findings: &[Finding]) -> String {
    let list: Vec<serde_json::Value> = findings
        .iter()
        .map(|f| {
            serde_json::json!({
                "rule_id": f.rule_id,
                "category": f.category,
                "severity": f.severity,
                "action": f.action,
                "target": f.target,
                "fragment": f.fragment,
            })
        })
        .collect();
    serde_json::Value::Array(list).to_string()
}

fn findings_from_json(text: &str) -> Vec<Finding> {
    let value: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
    let field = |v: &serde_json::Value, k: &str| {
        v.get(k)
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    value
        .as_array()
        .map(|list| {
            list.iter()
                .map(|v| Finding {
                    rule_id: field(v, "rule_id"),
                    category: field(v, "category"),
                    severity: field(v, "severity"),
                    action: field(v, "action"),
                    target: field(v, "target"),
                    fragment: field(v, "fragment"),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The store shared by the server's tasks. Calls run on tokio's blocking pool, one at a time
/// (SQLite has one writer anyway).
#[derive(Clone)]
pub struct StoreHandle {
    inner: Arc<Mutex<Store>>,
}

impl StoreHandle {
    pub fn new(store: Store) -> StoreHandle {
        StoreHandle {
            inner: Arc::new(Mutex::new(store)),
        }
    }

    pub async fn run<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Store) -> Result<R, StoreError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock cannot leave SQLite half-written (transactions
            // roll back on drop), so a poisoned lock is still safe to use.
            let mut store = inner
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&mut store)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(node: &str, boot: &str, seq: u64, rule: &str, category: &str) -> Event {
        Event {
            node_id: node.into(),
            boot_id: boot.into(),
            sequence: seq,
            unix_ms: 1_000 + seq as i64,
            request_id: format!("r{seq}"),
            outcome: "block".into(),
            score: 5,
            method: "GET".into(),
            path: "/search".into(),
            client_ip: "10.0.0.1".into(),
            policy_version: "1".into(),
            findings: vec![Finding {
                rule_id: rule.into(),
                category: category.into(),
                severity: "critical".into(),
                action: "block".into(),
                target: "query:q".into(),
                fragment: "union select".into(),
            }],
            ..Default::default()
        }
    }

    #[test]
    fn event_inserts_are_idempotent() {
        let mut store = Store::open_in_memory().unwrap();
        let batch = vec![
            event("edge-1", "b1", 1, "sqli-union-select", "sqli"),
            event("edge-1", "b1", 2, "xss-script-tag", "xss"),
        ];
        let first = store.insert_events(&batch, 0, 10).unwrap();
        assert_eq!(first.stored, vec![0, 1]);
        assert_eq!(first.duplicates, 0);
        let again = store.insert_events(&batch, 0, 20).unwrap();
        assert!(again.stored.is_empty());
        assert_eq!(again.duplicates, 2);
        // The same sequence from a new boot is a different event.
        let reboot = store
            .insert_events(&[event("edge-1", "b2", 1, "x", "custom")], 0, 30)
            .unwrap();
        assert_eq!(reboot.stored, vec![0]);

        let all = store
            .query_events(&EventFilter {
                limit: 100,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].sequence, 2, "newest first");
        assert_eq!(all[0].findings[0].fragment, "union select");
        let sqli = store
            .query_events(&EventFilter {
                category: Some("sqli".into()),
                limit: 100,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(sqli.len(), 1);
        assert_eq!(sqli[0].sequence, 1);
        let by_rule = store
            .query_events(&EventFilter {
                rule_id: Some("xss-script-tag".into()),
                node_id: Some("edge-1".into()),
                client_ip: Some("10.0.0.1".into()),
                since_unix_ms: 1_002,
                limit: 100,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(by_rule.len(), 1);
        assert_eq!(by_rule[0].sequence, 2);

        let nodes = store.list_nodes().unwrap();
        assert_eq!(nodes.len(), 1);
        assert_eq!(nodes[0].events_received, 3);
    }

    #[test]
    fn dropped_counters_survive_resends_and_reboots() {
        let mut store = Store::open_in_memory().unwrap();
        let e = |seq, boot: &str| event("edge-1", boot, seq, "r", "custom");
        store.insert_events(&[e(1, "b1")], 5, 1).unwrap();
        store.insert_events(&[e(1, "b1")], 5, 2).unwrap(); // resend
        store.insert_events(&[e(2, "b1")], 7, 3).unwrap();
        store.insert_events(&[e(1, "b2")], 2, 4).unwrap(); // new boot, new counter
        let node = &store.list_nodes().unwrap()[0];
        assert_eq!(node.events_dropped, 9);
        assert_eq!(node.boot_id, "b2");
        assert_eq!(node.last_seen_unix_ms, 4);
    }

    #[test]
    fn identical_pushes_are_one_version() {
        let mut store = Store::open_in_memory().unwrap();
        let a = r#"{"mode":"enforce"}"#;
        let first = store.push_policy(a, "first", "admin", 1).unwrap();
        assert!(matches!(first, Change::Created(ref r) if r.version == 1));
        let again = store.push_policy(a, "again", "admin", 2).unwrap();
        assert!(matches!(again, Change::Unchanged(ref r) if r.version == 1));
        assert_eq!(store.list_policies().unwrap().len(), 1);
        assert_eq!(first.record().sha256, sha256_hex(a.as_bytes()));
        let b = r#"{"mode":"monitor"}"#;
        assert!(matches!(
            store.push_policy_on(b, "edit", "admin", 3, Some(7)),
            Err(StoreError::StaleBase {
                base: 7,
                current: 1
            })
        ));
        assert!(matches!(
            store.push_policy_on(b, "edit", "admin", 3, Some(1)),
            Ok(Change::Created(ref r)) if r.version == 2
        ));
    }

    #[test]
    fn rollback_appends_history() {
        let mut store = Store::open_in_memory().unwrap();
        assert!(matches!(
            store.rollback_target(None),
            Err(StoreError::NothingToRollBack(_))
        ));
        let a = r#"{"mode":"enforce"}"#;
        let b = r#"{"mode":"monitor"}"#;
        store.push_policy(a, "a", "admin", 1).unwrap();
        assert!(matches!(
            store.rollback_target(None),
            Err(StoreError::NothingToRollBack(_))
        ));
        store.push_policy(b, "b", "admin", 2).unwrap();

        let target = store.rollback_target(None).unwrap();
        assert_eq!(target.version, 1);
        let change = store.rollback(target.version, "admin", 3).unwrap();
        let rec = change.record();
        assert!(matches!(change, Change::Created(_)));
        assert_eq!((rec.version, rec.json.as_str()), (3, a));
        assert_eq!(rec.rollback_of, Some(1));

        let history = store.list_policies().unwrap();
        assert_eq!(
            history.iter().map(|r| r.version).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert!(history[2].current && !history[0].current);
        assert_eq!(history[2].sha256, history[0].sha256);
        assert_eq!(store.current_policy().unwrap().unwrap().version, 3);

        // Restoring version 1 again changes nothing: its document is current.
        assert!(matches!(
            store.rollback(1, "admin", 4).unwrap(),
            Change::Unchanged(ref r) if r.version == 3
        ));
        assert!(matches!(
            store.rollback(3, "admin", 4),
            Err(StoreError::NothingToRollBack(_))
        ));
        assert!(matches!(
            store.rollback_target(Some(42)),
            Err(StoreError::UnknownVersion(42))
        ));
        assert_eq!(store.get_policy(Some(2)).unwrap().unwrap().json, b);
        assert!(store.get_policy(Some(9)).unwrap().is_none());
    }

    #[test]
    fn reopening_keeps_everything() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/vigil.db");
        {
            let mut store = Store::open(&path).unwrap();
            store.push_policy("{}", "", "admin", 1).unwrap();
            store
                .insert_events(&[event("n", "b", 1, "r", "sqli")], 0, 1)
                .unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(store.current_policy().unwrap().unwrap().version, 1);
        assert_eq!(
            store
                .query_events(&EventFilter {
                    limit: 10,
                    ..Default::default()
                })
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn version_1_databases_are_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(SCHEMA).unwrap();
            conn.execute_batch("PRAGMA user_version = 1").unwrap();
            conn.execute(
                "INSERT INTO events (node_id, boot_id, sequence, unix_ms, received_unix_ms,
                     request_id, outcome, score, method, path, client_ip, policy_version,
                     findings, rule_id, category)
                 VALUES ('n', 'b', 1, 5, 5, 'r', 'block', 5, 'GET', '/', '10.0.0.1', '1', '[]',
                         '', '')",
                [],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO nodes (node_id, boot_id) VALUES ('edge-1', 'b1')",
                [],
            )
            .unwrap();
        }
        let mut store = Store::open(&path).unwrap();
        let old = store
            .query_events(&EventFilter {
                limit: 10,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(old.len(), 1);
        assert!(old[0].observation.is_none() && old[0].principal.is_empty());
        assert_eq!(store.blocks(0).unwrap().revision, 0);
        store.audit("admin#1", "test", "", 1).unwrap();
        assert_eq!(store.list_nodes().unwrap().len(), 1);
        let version: i64 = store
            .conn()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        assert_eq!(
            crate::server::alerting::store::pending_count(store.conn()).unwrap(),
            0
        );
        drop(store);
        assert!(Store::open(&path).is_ok(), "opening twice migrates once");
    }

    #[test]
    fn node_updates() {
        let mut store = Store::open_in_memory().unwrap();
        let mut update = NodeUpdate {
            node_id: "edge-1".into(),
            boot_id: "b1".into(),
            applied_version: Some("3".into()),
            last_error: Some(String::new()),
            events_dropped: Some(4),
        };
        store.update_node(&update, 10).unwrap();
        update.applied_version = None;
        update.last_error = Some("rule `x`: bad".into());
        store.update_node(&update, 20).unwrap();
        let node = &store.list_nodes().unwrap()[0];
        assert_eq!(node.applied_version, "3");
        assert_eq!(node.last_error, "rule `x`: bad");
        assert_eq!(node.events_dropped, 4);
        assert_eq!(node.last_seen_unix_ms, 20);
    }
}
