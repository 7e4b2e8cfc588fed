//! Per-request context: collect headers (one host call), buffer the body up to the policy
//! limit, ask the engine, then continue, or answer 403 with a small JSON body.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::UNIX_EPOCH;

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, MapType};
use vigil_engine::{Outcome, Request};

use crate::events::{self, RequestFacts};
use crate::headers::HeaderMap;
use crate::timing::{self, Phase};
use crate::worker::Shared;

pub struct VigilHttp {
    pub(crate) shared: Rc<Shared>,
    context_id: u32,
    pub(crate) headers: HeaderMap,
    pub(crate) request_id: String,
    decided: bool,
    /// The request's clock reading in Unix ms, taken once (a host call) when first needed.
    clock: Cell<Option<u64>>,
    /// Set when behaviour detectors want to see this request's response.
    pub(crate) watch: RefCell<Option<crate::behaviour::ResponseWatch>>,
}

impl Context for VigilHttp {}

impl VigilHttp {
    pub fn new(shared: Rc<Shared>, context_id: u32) -> Self {
        VigilHttp {
            shared,
            context_id,
            headers: HeaderMap::default(),
            request_id: String::new(),
            decided: false,
            clock: Cell::new(None),
            watch: RefCell::new(None),
        }
    }

    /// The time of this request in Unix ms: one clock read serves the behaviour checks and the
    /// events (token expiry reads the tick's clock).
    pub(crate) fn request_ms(&self) -> u64 {
        if let Some(ms) = self.clock.get() {
            return ms;
        }
        let ms = crate::unix_ms();
        self.clock.set(Some(ms));
        ms
    }

    /// Envoy's `x-request-id` when present (it generates one by default), else a local one;
    /// and whether it is local.
    fn request_id(&self) -> (String, bool) {
        let from_envoy = self
            .headers
            .get("x-request-id")
            .and_then(|v| std::str::from_utf8(v).ok())
            .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()));
        match from_envoy {
            Some(id) => (id.to_owned(), false),
            None => {
                let nanos = self
                    .get_current_time()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0);
                (format!("{nanos:x}-{:x}", self.context_id), true)
            }
        }
    }

    /// Runs the engine and carries out its verdict. Returns the action for the current callback.
    fn decide(&mut self, body: Option<&[u8]>, body_truncated: bool) -> Action {
        self.decided = true;
        let headers = self.headers.pairs();
        let header = |name: &str| headers.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
        let method = header(":method")
            .and_then(|m| std::str::from_utf8(m).ok())
            .unwrap_or("GET");
        let target = header(":path").unwrap_or(b"/");
        let request = Request {
            method,
            target,
            headers: &headers,
            body,
            body_truncated,
        };
        let now = || match self.shared.tick_secs.get() {
            0 => self.request_ms() / 1_000,
            secs => secs,
        };
        if let Some(answered) = self.admit(&request) {
            return answered;
        }
        let shared = &self.shared;
        let verdict = timing::timed(Phase::Engine, || shared.policy.inspect(&request, &now));

        let m = &shared.metrics;
        m.inspected.bump();
        if verdict.body_truncated {
            m.body_truncated.bump();
        }
        for f in &verdict.findings {
            if let Some(c) = m.finding(f.rule) {
                c.bump();
            }
        }
        if verdict.would_block && verdict.outcome != Outcome::Block {
            m.would_block.bump();
        }
        if !verdict.findings.is_empty() {
            self.enqueue_event(&verdict, method, target);
        }
        match verdict.outcome {
            Outcome::Allow => {
                m.allowed.bump();
                Action::Continue
            }
            Outcome::Monitor => {
                m.monitored.bump();
                Action::Continue
            }
            Outcome::Block => {
                m.blocked.bump();
                let rule = verdict
                    .blocking_rule
                    .map(|r| r.id.as_str())
                    .unwrap_or("policy");
                let body = serde_json::json!({
                    "error": "request blocked",
                    "request_id": self.request_id,
                    "rule": rule,
                })
                .to_string();
                self.send_http_response(
                    403,
                    vec![
                        ("content-type", "application/json"),
                        ("x-vigil-request-id", &self.request_id),
                    ],
                    Some(body.as_bytes()),
                );
                Action::Pause
            }
        }
    }
}

impl VigilHttp {
    /// Hands the event to the singleton's queue. Never waits: without a singleton (no control
    /// plane configured) or with a full queue, the event is only counted.
    fn enqueue_event(&self, verdict: &vigil_engine::Verdict<'_>, method: &str, target: &[u8]) {
        self.shared.enqueue(|| {
            let client_ip = self
                .get_property(vec!["source", "address"])
                .and_then(|b| String::from_utf8(b).ok())
                .map(|a| events::ip_of(&a))
                .unwrap_or_default();
            let facts = RequestFacts {
                unix_ms: i64::try_from(self.request_ms()).unwrap_or(i64::MAX),
                request_id: &self.request_id,
                method,
                target,
                client_ip,
                policy_version: &self.shared.version,
            };
            events::encode(verdict, facts)
        });
    }
}

impl HttpContext for VigilHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        timing::timed(Phase::Nothing, || ());
        timing::timed(Phase::RequestHeaders, || {
            self.request_headers(end_of_stream)
        })
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        timing::timed(Phase::RequestBody, || {
            self.request_body(body_size, end_of_stream)
        })
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        self.watch_response_headers();
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, _end_of_stream: bool) -> Action {
        self.watch_response_body(body_size);
        Action::Continue
    }

    fn on_log(&mut self) {
        self.finish_watch();
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        if self.decided {
            return Action::Continue;
        }
        let limit = self.shared.policy.body_limit();
        let body = self.get_http_request_body(0, limit).unwrap_or_default();
        self.decide(Some(&body), false)
    }
}

impl VigilHttp {
    fn request_headers(&mut self, end_of_stream: bool) -> Action {
        self.headers = HeaderMap::read(MapType::HttpRequestHeaders);
        let (id, local) = self.request_id();
        self.request_id = id;
        // The upstream already has the id as Envoy's `x-request-id`. The header is written
        // only for a made-up id, or over a client's own (which must never pass as ours):
        // changing request headers costs Envoy a new route lookup.
        if local || self.headers.get("x-vigil-request-id").is_some() {
            self.set_http_request_header("x-vigil-request-id", Some(&self.request_id.clone()));
        }
        if end_of_stream {
            return self.decide(None, false);
        }
        // Hold the headers until the body has been inspected.
        Action::Pause
    }

    fn request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.decided {
            return Action::Continue; // past the inspection limit: the rest streams through
        }
        let limit = self.shared.policy.body_limit();
        if !end_of_stream && body_size < limit {
            return Action::Pause; // buffer until the end or the limit
        }
        let take = body_size.min(limit);
        let body = self.get_http_request_body(0, take).unwrap_or_default();
        let truncated = body_size > limit || (!end_of_stream && body_size >= limit);
        self.decide(Some(&body), truncated)
    }
}
