//! The root context: owns the compiled policy and the metric ids for one worker VM.

use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{ContextType, LogLevel};
use vigil_engine::CompiledPolicy;

use crate::http::VigilHttp;
use crate::metrics::Metrics;

/// What every HTTP context of this VM shares.
pub struct Shared {
    pub policy: CompiledPolicy,
    pub metrics: Metrics,
}

#[derive(Default)]
pub struct VigilRoot {
    shared: Option<Rc<Shared>>,
}

impl Context for VigilRoot {}

impl RootContext for VigilRoot {
    /// Compiles the policy from the plugin configuration (empty = built-in default).
    /// Returning false makes Envoy reject the configuration, so a bad policy never serves.
    fn on_configure(&mut self, _size: usize) -> bool {
        let config = self.get_plugin_configuration().unwrap_or_default();
        let text = match std::str::from_utf8(&config) {
            Ok(t) => t,
            Err(e) => {
                crate::log(
                    LogLevel::Critical,
                    &format!("vigil: plugin configuration is not UTF-8: {e}"),
                );
                return false;
            }
        };
        match CompiledPolicy::from_json(text) {
            Ok(policy) => {
                crate::log(
                    LogLevel::Info,
                    &format!(
                        "vigil: policy `{}` loaded ({} rules, mode {:?})",
                        policy.version(),
                        policy.rules().filter(|(_, on)| *on).count(),
                        policy.mode()
                    ),
                );
                self.shared = Some(Rc::new(Shared {
                    policy,
                    metrics: Metrics::define(),
                }));
                true
            }
            Err(e) => {
                crate::log(LogLevel::Critical, &format!("vigil: invalid policy: {e}"));
                false
            }
        }
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        let shared = self.shared.clone()?;
        Some(Box::new(VigilHttp::new(shared, context_id)))
    }
}
