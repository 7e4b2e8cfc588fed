//! The filter's root context on each worker: owns the compiled policy and the metric ids, and
//! switches to a policy the singleton published in shared data (checked on a timer, never on
//! the request path).

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::HttpContext;
use proxy_wasm::types::LogLevel;
use vigil_engine::CompiledPolicy;

use crate::http::VigilHttp;
use crate::metrics::Metrics;
use crate::shared;

/// How often a worker looks for a newly pushed policy (well inside the 1 s push budget).
const POLICY_POLL: Duration = Duration::from_millis(100);

/// What every HTTP context of this VM shares.
pub struct Shared {
    pub policy: CompiledPolicy,
    /// The pushed version, or `static` for the plugin configuration's policy.
    pub version: String,
    pub metrics: Rc<Metrics>,
    /// The singleton's event queue, once it exists.
    pub events_queue: Rc<Cell<Option<u32>>>,
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
        resolve_events_queue(&self.events_queue);
        let _ = hostcalls::set_tick_period(POLICY_POLL);
        true
    }

    fn install(&mut self, policy: CompiledPolicy, version: String) {
        let Some(metrics) = self.metrics.clone() else {
            return;
        };
        policy.prepare();
        self.shared = Some(Rc::new(Shared {
            policy,
            version,
            metrics,
            events_queue: self.events_queue.clone(),
        }));
    }

    pub fn on_tick(&mut self) {
        if let Some(m) = &self.metrics {
            m.flush();
        }
        self.poll_pushed_policy();
        resolve_events_queue(&self.events_queue);
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
