//! The floors for `make bench`. With an empty configuration, the cheapest possible HTTP filter:
//! what any wasm filter pays per request in Envoy (VM entry, context creation). With the
//! configuration `read`, it also does what any filter that inspects requests must do and
//! nothing more: read the request headers in one host call, hold the request until its body
//! is complete, read the body, and continue. vigil's own cost is what it adds to these.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, MapType, Status};

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(NoopRoot { read: false }) });
}}

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_get_header_map_pairs(
        map_type: MapType,
        return_map_data: *mut *mut u8,
        return_map_size: *mut usize,
    ) -> Status;
}

struct NoopRoot {
    read: bool,
}
impl Context for NoopRoot {}
impl RootContext for NoopRoot {
    fn on_configure(&mut self, _: usize) -> bool {
        self.read = self.get_plugin_configuration().as_deref() == Some(b"read");
        true
    }
    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Noop { read: self.read }))
    }
}

struct Noop {
    read: bool,
}
impl Context for Noop {}
impl HttpContext for Noop {
    fn on_http_request_headers(&mut self, _: usize, end_of_stream: bool) -> Action {
        if !self.read {
            return Action::Continue;
        }
        // The serialised map, as vigil reads it (the SDK's reader allocates per header).
        let mut data: *mut u8 = std::ptr::null_mut();
        let mut size: usize = 0;
        // SAFETY: the host hands over a `size`-byte allocation it made with this module's
        // `proxy_on_memory_allocate`; it is taken back with the same layout and dropped.
        let headers = unsafe {
            match proxy_get_header_map_pairs(MapType::HttpRequestHeaders, &mut data, &mut size) {
                Status::Ok if !data.is_null() => Vec::from_raw_parts(data, size, size),
                _ => Vec::new(),
            }
        };
        std::hint::black_box(headers);
        if end_of_stream {
            Action::Continue
        } else {
            Action::Pause
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !self.read {
            return Action::Continue;
        }
        if !end_of_stream {
            return Action::Pause;
        }
        std::hint::black_box(self.get_http_request_body(0, body_size));
        Action::Continue
    }
}
