//! vigil's proxy-wasm adapter for Envoy. Thin by design: it reads the request with as few
//! host calls as possible, hands it to `vigil-engine`, and carries out the verdict.
//! Nothing here may panic on any request: a trap reloads the VM and fails the request.

mod http;
mod metrics;
mod root;

use proxy_wasm::traits::RootContext;
use proxy_wasm::types::LogLevel;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_context_id| -> Box<dyn RootContext> { Box::new(root::VigilRoot::default()) });
}}

/// Logs through the host; a failed log call is not worth failing a request for.
pub(crate) fn log(level: LogLevel, message: &str) {
    let _ = proxy_wasm::hostcalls::log(level, message);
}
