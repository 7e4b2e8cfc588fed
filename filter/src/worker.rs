//! The filter's root context on each worker: owns the compiled policy and the metric ids, and
//! switches to a policy the singleton published in shared data (checked on a timer, never on
//! the request path).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use prost::Message;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::HttpContext;
use proxy_wasm::types::LogLevel;
use vigil_engine::behaviour::{
    BehaviourAction, BehaviourState, BlockEntry, BlockSet, Detector, IntelSet, Offender,
    OffenderKind,
};
use vigil_engine::CompiledPolicy;
use vigil_proto::v1::{BlockList, IntelList};

use crate::http::VigilHttp;
use crate::metrics::Metrics;
use crate::shared;

/// How often a worker looks for a newly pushed policy (well inside the 1 s push budget).
const POLICY_POLL: Duration = Duration::from_millis(100);
/// Response sizes go to the fleet every this many ticks (1 s).
const USAGE_TICKS: u32 = 10;

/// What every HTTP context of this VM shares.
pub struct Shared {
    pub policy: CompiledPolicy,
    /// The pushed version, or `static` for the plugin configuration's policy.
    pub version: String,
    pub metrics: Rc<Metrics>,
    /// The singleton's event queue, once it exists.
    pub events_queue: Rc<Cell<Option<u32>>>,
    /// Behaviour windows, blocks and reputation: outlive policy switches.
    pub behaviour: Rc<RefCell<EdgeBehaviour>>,
    /// Unix seconds as of the last tick (0 before the first): token expiry, with its
    /// leeway, needs no finer clock, and reading this costs no host call.
    pub tick_secs: Rc<Cell<u64>>,
}

/// This worker's behaviour state and the lists the control plane pushed.
pub struct EdgeBehaviour {
    pub state: BehaviourState,
    pub blocks: BlockSet,
    pub intel: IntelSet,
}

impl Default for EdgeBehaviour {
    fn default() -> Self {
        EdgeBehaviour {
            state: BehaviourState::new(10_000),
            blocks: BlockSet::default(),
            intel: IntelSet::default(),
        }
    }
}

impl Shared {
    /// Hands an event to the singleton's queue; `encode` runs only when the queue exists.
    /// Never waits: without a singleton (no control plane configured) or with a full queue,
    /// the event is only counted.
    pub fn enqueue(&self, encode: impl FnOnce() -> Vec<u8>) {
        let Some(queue) = resolve_events_queue(&self.events_queue) else {
            return;
        };
        match hostcalls::enqueue_shared_queue(queue, Some(&encode())) {
            Ok(()) => self.metrics.events_enqueued.bump(),
            Err(_) => self.metrics.events_enqueue_failed.bump(),
        }
    }
}

/// Looks up the singleton's event queue until it exists. Called at configure time, on every
/// tick, and by a request with findings that finds it missing (never for clean requests).
pub fn resolve_events_queue(queue: &Cell<Option<u32>>) -> Option<u32> {
    if queue.get().is_none() {
        if let Ok(Some(id)) = hostcalls::resolve_shared_queue(shared::VM_ID, shared::EVENTS_QUEUE) {
            queue.set(Some(id));
        }
    }
    queue.get()
}

#[derive(Default)]
pub struct FilterRoot {
    shared: Option<Rc<Shared>>,
    metrics: Option<Rc<Metrics>>,
    /// CAS of the shared-data policy this VM runs, to notice new pushes.
    applied_cas: Option<u32>,
    events_queue: Rc<Cell<Option<u32>>>,
    behaviour: Rc<RefCell<EdgeBehaviour>>,
    tick_secs: Rc<Cell<u64>>,
    blocks_cas: Option<u32>,
    intel_cas: Option<u32>,
    penalties_cas: Option<u32>,
    /// Ticks since response sizes were last sent to the fleet.
    ticks_since_usage: u32,
    /// `max_keys` the behaviour state was sized for.
    behaviour_keys: usize,
}

impl FilterRoot {
    /// Compiles the policy from the plugin configuration (empty = built-in default), unless the
    /// control plane already pushed one. Returning false makes Envoy reject the configuration.
    pub fn on_configure_bytes(&mut self, config: &[u8], _size: usize) -> bool {
        let text = match std::str::from_utf8(config) {
            Ok(t) => t,
            Err(e) => {
                crate::log(
                    LogLevel::Critical,
                    &format!("vigil: plugin configuration is not UTF-8: {e}"),
                );
                return false;
            }
        };
        let policy = match CompiledPolicy::from_json(text) {
            Ok(p) => p,
            Err(e) => {
                crate::log(LogLevel::Critical, &format!("vigil: invalid policy: {e}"));
                return false;
            }
        };
        let metrics = Rc::new(Metrics::define());
        self.metrics = Some(metrics.clone());
        let version = policy
            .document()
            .version
            .clone()
            .unwrap_or_else(|| "static".into());
        crate::log(
            LogLevel::Info,
            &format!(
                "vigil: policy `{version}` loaded ({} rules, mode {:?})",
                policy.rules().filter(|(_, on)| *on).count(),
                policy.mode()
            ),
        );
        self.install(policy, version);
        // A VM reloaded after a failure, or configured after a push, starts on the pushed policy.
        self.poll_pushed_policy();
        self.poll_lists();
        resolve_events_queue(&self.events_queue);
        self.tick_secs.set(crate::unix_ms() / 1_000);
        let _ = hostcalls::set_tick_period(POLICY_POLL);
        true
    }

    fn install(&mut self, policy: CompiledPolicy, version: String) {
        let Some(metrics) = self.metrics.clone() else {
            return;
        };
        let max_keys = policy.behaviour().settings().max_keys;
        if max_keys != self.behaviour_keys {
            // A new bound: start the windows afresh rather than keep more than allowed.
            self.behaviour.borrow_mut().state = BehaviourState::new(max_keys);
            self.behaviour_keys = max_keys;
        }
        policy.prepare();
        self.shared = Some(Rc::new(Shared {
            policy,
            version,
            metrics,
            events_queue: self.events_queue.clone(),
            behaviour: self.behaviour.clone(),
            tick_secs: self.tick_secs.clone(),
        }));
    }

    pub fn on_tick(&mut self) {
        self.tick_secs.set(crate::unix_ms() / 1_000);
        if let Some(m) = &self.metrics {
            m.flush();
        }
        crate::timing::flush();
        self.poll_pushed_policy();
        self.poll_lists();
        resolve_events_queue(&self.events_queue);
        self.ticks_since_usage += 1;
        if self.ticks_since_usage >= USAGE_TICKS {
            self.ticks_since_usage = 0;
            self.send_usage();
        }
    }

    /// Response sizes per principal since the last call, one observation each, for the fleet's
    /// exfiltration windows.
    fn send_usage(&mut self) {
        let Some(shared) = self.shared.clone() else {
            return;
        };
        // Without the singleton's queue the sums keep growing until it appears.
        if resolve_events_queue(&self.events_queue).is_none() {
            return;
        }
        let usage = self.behaviour.borrow_mut().state.drain_usage();
        if usage.is_empty() {
            return;
        }
        let unix_ms = i64::try_from(crate::unix_ms()).unwrap_or(i64::MAX);
        for o in &usage {
            shared.enqueue(|| {
                let facts = crate::events::RequestFacts {
                    unix_ms,
                    request_id: "",
                    method: "",
                    target: b"",
                    client_ip: o.ip.clone(),
                    policy_version: &shared.version,
                };
                crate::events::observation_event(o, facts)
            });
        }
    }

    /// Rebuilds the block and reputation sets when the singleton published new ones.
    fn poll_lists(&mut self) {
        if let Some(bytes) = changed(shared::BLOCKS_KEY, &mut self.blocks_cas) {
            let Ok(list) = BlockList::decode(bytes.as_slice()) else {
                return;
            };
            let entries = list
                .blocks
                .into_iter()
                .map(|b| BlockEntry {
                    kind: b.kind,
                    value: b.value,
                    expires_unix_ms: u64::try_from(b.expires_unix_ms).unwrap_or(0),
                    reason: b.reason,
                    limit_only: b.limit_only,
                })
                .collect();
            let (set, rejected) = BlockSet::build(entries);
            for r in rejected {
                crate::log(
                    LogLevel::Warn,
                    &format!(
                        "vigil: ignoring block `{}` `{}`: not valid",
                        r.kind, r.value
                    ),
                );
            }
            self.behaviour.borrow_mut().blocks = set;
            if let Some(m) = &self.metrics {
                m.blocks_updates.bump();
            }
        }
        if let Some(bytes) = changed(shared::PENALTIES_KEY, &mut self.penalties_cas) {
            if let Ok(list) = BlockList::decode(bytes.as_slice()) {
                let now_ms = crate::unix_ms();
                let mut edge = self.behaviour.borrow_mut();
                for b in list.blocks {
                    let (Some(kind), Some(detector)) =
                        (OffenderKind::parse(&b.kind), Detector::parse(&b.reason))
                    else {
                        continue;
                    };
                    let action = if b.limit_only {
                        BehaviourAction::Limit
                    } else {
                        BehaviourAction::Block
                    };
                    let offender = Offender {
                        kind,
                        value: b.value,
                    };
                    let until = u64::try_from(b.expires_unix_ms).unwrap_or(0);
                    edge.state
                        .impose(&offender, action, detector, until, now_ms);
                }
            }
        }
        if let Some(bytes) = changed(shared::INTEL_KEY, &mut self.intel_cas) {
            let Ok(list) = IntelList::decode(bytes.as_slice()) else {
                return;
            };
            let entries = list
                .entries
                .into_iter()
                .map(|e| (e.cidr, e.label))
                .collect();
            let (set, _rejected) = IntelSet::build(entries);
            self.behaviour.borrow_mut().intel = set;
        }
    }

    /// Switches to the policy in shared data when its CAS changed. The singleton validated it
    /// with the same engine, so compiling cannot fail; if it somehow does, keep the current one.
    fn poll_pushed_policy(&mut self) {
        let Ok((Some(bytes), cas)) = hostcalls::get_shared_data(shared::POLICY_KEY) else {
            return;
        };
        if cas.is_some() && cas == self.applied_cas {
            return;
        }
        self.applied_cas = cas;
        let Some((version, json)) = shared::decode_policy(&bytes) else {
            return;
        };
        if self.shared.as_ref().is_some_and(|s| s.version == version) {
            return;
        }
        match CompiledPolicy::from_json(json) {
            Ok(policy) => {
                crate::log(
                    LogLevel::Info,
                    &format!("vigil: switched to pushed policy version {version}"),
                );
                if let Some(m) = &self.metrics {
                    m.policy_updates.bump();
                }
                self.install(policy, version.to_owned());
            }
            Err(e) => crate::log(
                LogLevel::Error,
                &format!("vigil: pushed policy {version} refused: {e}"),
            ),
        }
    }

    pub fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        let shared = self.shared.clone()?;
        Some(Box::new(VigilHttp::new(shared, context_id)))
    }
}

/// The shared-data value under `key` when its CAS differs from the one last seen.
fn changed(key: &str, seen: &mut Option<u32>) -> Option<Vec<u8>> {
    let Ok((Some(bytes), cas)) = hostcalls::get_shared_data(key) else {
        return None;
    };
    if cas.is_some() && cas == *seen {
        return None;
    }
    *seen = cas;
    Some(bytes)
}
