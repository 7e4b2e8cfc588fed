//! Fleet response: the correlator fed from ingested events, and the distribution of dynamic
//! blocks and the reputation list to every Watch stream (each change replaces the edges' list).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use vigil_engine::CompiledPolicy;
use vigil_proto::v1::{BlockList, DynamicBlock, Event, IntelEntry, IntelList};

use super::correlator::{self, Correlator};
use super::fleet_store::{BlockRecord, BlockSnapshot, IntelSnapshot};
use super::hub::Hub;
use super::store::PolicyRecord;
use crate::timefmt::now_unix_ms;

/// How often expired blocks are swept (and the sweep pushed to edges).
pub const EXPIRY_INTERVAL: Duration = Duration::from_millis(250);

/// The fleet half of the hub.
pub struct Fleet {
    blocks: watch::Sender<Arc<BlockList>>,
    intel: watch::Sender<Arc<IntelList>>,
    correlator: Mutex<Correlator>,
    /// (node, boot, sequence) of the correlator's own events: a boot id per server start.
    boot_id: String,
    sequence: AtomicU64,
}

impl Default for Fleet {
    fn default() -> Self {
        let (blocks, _) = watch::channel(Arc::new(BlockList::default()));
        let (intel, _) = watch::channel(Arc::new(IntelList::default()));
        Fleet {
            blocks,
            intel,
            correlator: Mutex::new(Correlator::default()),
            boot_id: format!("cp-{:x}-{}", now_unix_ms(), std::process::id()),
            sequence: AtomicU64::new(0),
        }
    }
}

pub fn dynamic_block(b: &BlockRecord) -> DynamicBlock {
    DynamicBlock {
        kind: b.kind.clone(),
        value: b.value.clone(),
        expires_unix_ms: b.expires_unix_ms,
        reason: b.reason.clone(),
        limit_only: b.limit_only,
    }
}

pub fn block_list(s: &BlockSnapshot) -> BlockList {
    BlockList {
        revision: s.revision,
        blocks: s.blocks.iter().map(dynamic_block).collect(),
    }
}

pub fn intel_list(s: &IntelSnapshot) -> IntelList {
    IntelList {
        revision: s.revision,
        entries: s
            .entries
            .iter()
            .map(|e| IntelEntry {
                cidr: e.cidr.clone(),
                label: e.label.clone(),
            })
            .collect(),
    }
}

impl Fleet {
    /// Makes `snapshot` the list every Watch stream sends next, unless a newer one already is
    /// (two changes committed in one order may reach here in the other).
    pub fn publish_blocks(&self, snapshot: &BlockSnapshot) {
        self.blocks.send_if_modified(|current| {
            if snapshot.revision > current.revision {
                *current = Arc::new(block_list(snapshot));
                true
            } else {
                false
            }
        });
    }

    pub fn publish_intel(&self, snapshot: &IntelSnapshot) {
        self.intel.send_if_modified(|current| {
            if snapshot.revision > current.revision {
                *current = Arc::new(intel_list(snapshot));
                true
            } else {
                false
            }
        });
    }

    pub fn block_updates(&self) -> watch::Receiver<Arc<BlockList>> {
        self.blocks.subscribe()
    }

    pub fn intel_updates(&self) -> watch::Receiver<Arc<IntelList>> {
        self.intel.subscribe()
    }

    fn lock_correlator(&self) -> std::sync::MutexGuard<'_, Correlator> {
        self.correlator
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Follows the current policy (`version`: the control plane's version number).
    pub fn set_policy(&self, policy: Arc<CompiledPolicy>, version: i64) {
        self.lock_correlator().set_policy(policy, version);
    }

    /// Runs the correlator over newly stored events: the detection events to store and the
    /// blocks to add.
    fn correlate(&self, events: &[Event], now: i64) -> (Vec<Event>, Vec<BlockRecord>) {
        let mut detections = Vec::new();
        let mut blocks = Vec::new();
        let mut c = self.lock_correlator();
        let version = c.policy_version();
        for e in events {
            for d in c.observe(e, now) {
                blocks.extend(correlator::block_for(&d, now));
                let mut event = correlator::detection_event(&d, now, &version);
                event.boot_id = self.boot_id.clone();
                event.sequence = self.sequence.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::info!(
                    detector = d.detector.as_str(),
                    offender = %format!("{}:{}", d.offender.kind.as_str(), d.offender.value),
                    count = d.count,
                    threshold = d.threshold,
                    action = d.action.as_str(),
                    "fleet detection"
                );
                detections.push(event);
            }
            blocks.extend(correlator::block_from_edge(e, now));
        }
        (detections, blocks)
    }
}

/// Compiles the current policy for the correlator (off the async workers), at start.
pub async fn follow_policy(hub: &Hub, record: Option<&PolicyRecord>) {
    let version = record.map_or(0, |r| r.version);
    let json = record.map(|r| r.json.clone());
    let compiled = tokio::task::spawn_blocking(move || match json {
        Some(json) => CompiledPolicy::from_json(&json),
        None => CompiledPolicy::builtin(),
    })
    .await;
    match compiled {
        Ok(Ok(policy)) => hub.fleet.set_policy(Arc::new(policy), version),
        Ok(Err(e)) => tracing::error!(error = %e, "correlator cannot compile the current policy"),
        Err(e) => tracing::error!(error = %e, "correlator policy task failed"),
    }
}

/// Feeds newly stored events (never resends: the caller passes only what was new) to the
/// correlator, then stores its detections and blocks and pushes the blocks to every edge.
pub async fn ingest(hub: &Hub, events: &[Event]) {
    let now = now_unix_ms();
    let (detections, blocks) = hub.fleet.correlate(events, now);
    if detections.is_empty() && blocks.is_empty() {
        return;
    }
    let stored = hub
        .store
        .run(move |s| {
            s.insert_fleet_events(&detections, now)?;
            let mut latest = None;
            for b in &blocks {
                if let Some(snapshot) = s.add_block_unless_covered(b, now)? {
                    latest = Some(snapshot);
                }
            }
            Ok((detections, latest))
        })
        .await;
    match stored {
        Ok((detections, latest)) => {
            if let Some(snapshot) = latest {
                hub.fleet.publish_blocks(&snapshot);
            }
            for e in detections {
                hub.publish_event(e);
            }
        }
        Err(e) => tracing::error!(error = %e, "cannot store fleet detections"),
    }
}

/// Loads the stored blocks and intel into the channels (at start).
pub async fn load(hub: &Hub) -> Result<(), super::store::StoreError> {
    let now = now_unix_ms();
    let (blocks, intel) = hub
        .store
        .run(move |s| Ok((s.blocks(now)?, s.intel()?)))
        .await?;
    hub.fleet.publish_blocks(&blocks);
    hub.fleet.publish_intel(&intel);
    Ok(())
}

/// Sweeps expired blocks until shutdown.
pub async fn expire_blocks(hub: Arc<Hub>) {
    let mut tick = tokio::time::interval(EXPIRY_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stopping = hub.stopping();
    tokio::pin!(stopping);
    loop {
        tokio::select! {
            _ = &mut stopping => return,
            _ = tick.tick() => {}
        }
        let now = now_unix_ms();
        match hub.store.run(move |s| s.expire_blocks(now)).await {
            Ok(Some(snapshot)) => {
                tracing::info!(revision = snapshot.revision, "blocks expired");
                hub.fleet.publish_blocks(&snapshot);
            }
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "cannot expire blocks"),
        }
    }
}
