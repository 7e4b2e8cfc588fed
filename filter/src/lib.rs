//! vigil's proxy-wasm adapter for Envoy. Thin by design: every decision is `vigil-engine`'s.
//!
//! One `.wasm`, two roles, chosen by the plugin's `root_id`:
//! - `vigil` (any other id too): the HTTP filter, one VM per worker thread ([`worker`], [`http`]);
//! - `vigil_service`: the singleton on the main thread ([`service`]) that holds the gRPC stream to
//!   the control plane, publishes pushed policies in shared data and ships events.
//!
//! Nothing here may panic on any request: a trap reloads the VM and fails the request. Host calls
//! whose SDK wrappers unwrap are made through `hostcalls` directly, with errors handled.

mod behaviour;
mod config;
mod events;
mod headers;
mod http;
mod metrics;
mod service;
mod shared;
mod timing;
mod worker;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{ContextType, LogLevel};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_context_id| -> Box<dyn RootContext> { Box::new(Root::Unconfigured) });
}}

/// Logs through the host; a failed log call is not worth failing a request for.
pub(crate) fn log(level: LogLevel, message: &str) {
    let _ = proxy_wasm::hostcalls::log(level, message);
}

/// Wall-clock milliseconds from the host (0 if it cannot say).
pub(crate) fn unix_ms() -> u64 {
    proxy_wasm::hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The root id that selects the singleton service role.
pub const SERVICE_ROOT_ID: &str = "vigil_service";

/// A root context becomes a filter or the service once Envoy tells it its root id.
enum Root {
    Unconfigured,
    Filter(worker::FilterRoot),
    Service(Box<service::ServiceRoot>),
}

impl Root {
    fn root_id(&self) -> String {
        self.get_property(vec!["plugin_root_id"])
            .and_then(|b| String::from_utf8(b).ok())
            .unwrap_or_default()
    }
}

impl Context for Root {
    fn on_grpc_call_response(&mut self, token_id: u32, status_code: u32, response_size: usize) {
        if let Root::Service(s) = self {
            s.on_grpc_call_response(token_id, status_code, response_size);
        }
    }

    fn on_grpc_stream_message(&mut self, token_id: u32, message_size: usize) {
        if let Root::Service(s) = self {
            s.on_grpc_stream_message(token_id, message_size);
        }
    }

    fn on_grpc_stream_close(&mut self, token_id: u32, status_code: u32) {
        if let Root::Service(s) = self {
            s.on_grpc_stream_close(token_id, status_code);
        }
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, size: usize) -> bool {
        let config = self.get_plugin_configuration().unwrap_or_default();
        if self.root_id() == SERVICE_ROOT_ID {
            let mut service = Box::<service::ServiceRoot>::default();
            let ok = service.configure(&config);
            *self = Root::Service(service);
            return ok;
        }
        let mut filter = match std::mem::replace(self, Root::Unconfigured) {
            Root::Filter(f) => f,
            _ => worker::FilterRoot::default(),
        };
        let ok = filter.on_configure_bytes(&config, size);
        *self = Root::Filter(filter);
        ok
    }

    fn on_tick(&mut self) {
        match self {
            Root::Filter(f) => f.on_tick(),
            Root::Service(s) => s.on_tick(),
            Root::Unconfigured => {}
        }
    }

    fn on_queue_ready(&mut self, queue_id: u32) {
        if let Root::Service(s) = self {
            s.on_queue_ready(queue_id);
        }
    }

    fn get_type(&self) -> Option<ContextType> {
        match self {
            Root::Service(_) => None,
            _ => Some(ContextType::HttpContext),
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        match self {
            Root::Filter(f) => f.create_http_context(context_id),
            _ => None,
        }
    }
}
