//! The behaviour side of a request: admit it (pushed blocks, reputation, this worker's
//! penalties, rate limits) before any signature work, and count its response afterwards.
//! Every decision is the engine's; this module only gathers facts and carries verdicts out.

use prost::Message;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, MapType};
use vigil_engine::behaviour::{
    Admission, BehaviourAction, ClaimLookup, Detection, OffenderKind, Tracked,
};
use vigil_engine::{Mode, Request};
use vigil_proto::v1::{BlockList, DynamicBlock};

use crate::events::{self, BehaviourEvent, RequestFacts};
use crate::headers::HeaderMap;
use crate::http::VigilHttp;
use crate::shared;

/// What the response callbacks need, gathered on the request path.
pub struct ResponseWatch {
    pub tracked: Tracked,
    pub status: u16,
    pub bytes: u64,
    pub records: u64,
    /// Content-Length was present: body chunks need not be counted.
    pub sized: bool,
}

impl VigilHttp {
    /// Runs the behaviour checks when the policy has detectors or the control plane pushed
    /// blocks; otherwise costs one borrow and three length checks. `Some(action)`: the request
    /// was answered here.
    pub(crate) fn admit(&self, request: &Request<'_>) -> Option<Action> {
        let shared = self.shared.clone();
        let behaviour = shared.policy.behaviour();
        {
            let edge = shared.behaviour.borrow();
            if !behaviour.active() && edge.blocks.is_empty() && edge.intel.is_empty() {
                return None;
            }
        }
        let peer = self
            .get_property(vec!["source", "address"])
            .and_then(|b| String::from_utf8(b).ok());
        let metadata = behaviour.settings().principal.jwt_authn_metadata.as_deref();
        let verified = |claim: &str| -> Option<String> {
            let key = metadata?;
            let path = vec![
                "metadata",
                "filter_metadata",
                "envoy.filters.http.jwt_authn",
                key,
                claim,
            ];
            self.get_property(path)
                .and_then(|b| String::from_utf8(b).ok())
        };
        let tracked = behaviour.track(
            request,
            shared.policy.api_key_headers(),
            peer.as_deref(),
            metadata.map(|_| &verified as ClaimLookup<'_>),
        );
        let now_ms = self.request_ms();
        let admission = {
            let mut guard = shared.behaviour.borrow_mut();
            let edge = &mut *guard;
            edge.state
                .admit(behaviour, &edge.blocks, &edge.intel, &tracked, now_ms)
        };
        let answer = admission.and_then(|a| self.carry_out(&a, &tracked, request, now_ms));
        if answer.is_none() && behaviour.active() {
            *self.watch.borrow_mut() = Some(ResponseWatch {
                tracked,
                status: 0,
                bytes: 0,
                records: 0,
                sized: false,
            });
        }
        answer
    }

    fn carry_out(
        &self,
        a: &Admission,
        t: &Tracked,
        request: &Request<'_>,
        now_ms: u64,
    ) -> Option<Action> {
        let shared = &self.shared;
        let enforce = shared.policy.mode() == Mode::Enforce;
        let action = if enforce {
            a.action
        } else {
            BehaviourAction::Monitor
        };
        if let Some(c) = shared.metrics.behaviour(a.detector, action) {
            c.bump();
        }
        let facts = RequestFacts {
            unix_ms: i64::try_from(now_ms).unwrap_or(i64::MAX),
            request_id: &self.request_id,
            method: request.method,
            target: request.target,
            client_ip: t.ip_text.clone(),
            policy_version: &shared.version,
        };
        if let Some(d) = &a.detection {
            self.shared
                .enqueue(|| events::detection_event(d, &t.principal, facts.clone()));
        }
        self.shared.enqueue(|| {
            events::encode_behaviour(
                BehaviourEvent {
                    outcome: action.as_str(),
                    detector: a.detector,
                    action: a.action.as_str(),
                    offender: format!("{}:{}", a.offender.kind.as_str(), a.offender.value),
                    detail: String::new(),
                    principal: &t.principal,
                },
                facts,
            )
        });
        let rule = a.detector.rule_id();
        let body = serde_json::json!({
            "error": match action {
                BehaviourAction::Limit => "too many requests",
                _ => "request blocked",
            },
            "request_id": self.request_id,
            "rule": rule,
        })
        .to_string();
        match action {
            BehaviourAction::Monitor => None,
            BehaviourAction::Block => {
                shared.metrics.blocked.bump();
                self.send_http_response(
                    403,
                    vec![
                        ("content-type", "application/json"),
                        ("x-vigil-request-id", &self.request_id),
                    ],
                    Some(body.as_bytes()),
                );
                Some(Action::Pause)
            }
            BehaviourAction::Limit => {
                shared.metrics.limited.bump();
                let retry = a.retry_after_secs.max(1).to_string();
                self.send_http_response(
                    429,
                    vec![
                        ("content-type", "application/json"),
                        ("retry-after", &retry),
                        ("x-vigil-request-id", &self.request_id),
                    ],
                    Some(body.as_bytes()),
                );
                Some(Action::Pause)
            }
        }
    }

    /// Status, size and record count from the response headers (one host call).
    pub(crate) fn watch_response_headers(&mut self) {
        if self.watch.borrow().is_none() || !self.shared.policy.behaviour().watches_responses() {
            return;
        }
        let headers = HeaderMap::read(MapType::HttpResponseHeaders);
        let records_header = self
            .shared
            .policy
            .behaviour()
            .settings()
            .exfiltration
            .as_ref()
            .map(|e| e.records_header.to_ascii_lowercase());
        let mut watch = self.watch.borrow_mut();
        let Some(w) = watch.as_mut() else { return };
        let number = |v: &[u8]| {
            std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
        };
        for (name, value) in headers.pairs() {
            match name {
                ":status" => {
                    w.status = number(value)
                        .and_then(|n| u16::try_from(n).ok())
                        .unwrap_or(0)
                }
                "content-length" => {
                    if let Some(n) = number(value) {
                        w.bytes = n;
                        w.sized = true;
                    }
                }
                other if records_header.as_deref() == Some(other) => {
                    w.records = number(value).unwrap_or(0);
                }
                _ => {}
            }
        }
    }

    pub(crate) fn watch_response_body(&mut self, chunk: usize) {
        if let Some(w) = self.watch.borrow_mut().as_mut().filter(|w| !w.sized) {
            w.bytes = w.bytes.saturating_add(chunk as u64);
        }
    }

    /// At the end of the stream: count the pair, act on detections, send the fleet what it needs.
    pub(crate) fn finish_watch(&mut self) {
        let Some(w) = self.watch.borrow_mut().take() else {
            return;
        };
        let shared = self.shared.clone();
        let behaviour = shared.policy.behaviour();
        // The response's end, not the request's start: windows count when the pair finished.
        let now_ms = crate::unix_ms();
        let mut detections = Vec::new();
        let observations = {
            let mut edge = shared.behaviour.borrow_mut();
            let observations = edge
                .state
                .observations(behaviour, &w.tracked, w.status, w.bytes, w.records, now_ms);
            for o in &observations {
                for d in edge.state.observe(behaviour, o, now_ms) {
                    if shared.policy.mode() == Mode::Enforce {
                        edge.state.penalise(&d, now_ms);
                        share_penalty(&d, now_ms);
                    }
                    detections.push(d);
                }
            }
            observations
        };
        if detections.is_empty() && !observations.iter().any(|o| o.forward) {
            return;
        }
        let header = |name: &str| self.headers.get(name);
        let method = header(":method")
            .and_then(|m| std::str::from_utf8(m).ok())
            .unwrap_or("GET");
        let target = header(":path").unwrap_or(b"/");
        let facts = RequestFacts {
            unix_ms: i64::try_from(now_ms).unwrap_or(i64::MAX),
            request_id: &self.request_id,
            method,
            target,
            client_ip: w.tracked.ip_text.clone(),
            policy_version: &shared.version,
        };
        for d in &detections {
            if let Some(c) = shared.metrics.behaviour(d.detector, d.action) {
                c.bump();
            }
            self.shared
                .enqueue(|| events::detection_event(d, &w.tracked.principal, facts.clone()));
        }
        for o in observations.iter().filter(|o| o.forward) {
            self.shared
                .enqueue(|| events::observation_event(o, facts.clone()));
        }
    }
}

/// Tells the other workers of this Envoy about a penalty (read-modify-write with CAS; a lost
/// race is retried, and after three the control plane's block still follows).
fn share_penalty(d: &Detection, now_ms: u64) {
    if d.action == BehaviourAction::Monitor || d.offender.kind == OffenderKind::Route {
        return;
    }
    let until = now_ms.saturating_add(d.block_secs.saturating_mul(1_000));
    for _ in 0..3 {
        let (bytes, cas) = match hostcalls::get_shared_data(shared::PENALTIES_KEY) {
            Ok(found) => found,
            Err(_) => return,
        };
        let mut list = bytes
            .and_then(|b| BlockList::decode(b.as_slice()).ok())
            .unwrap_or_default();
        list.blocks
            .retain(|b| u64::try_from(b.expires_unix_ms).unwrap_or(0) > now_ms);
        list.blocks.push(DynamicBlock {
            kind: d.offender.kind.as_str().to_owned(),
            value: d.offender.value.clone(),
            expires_unix_ms: i64::try_from(until).unwrap_or(i64::MAX),
            reason: d.detector.as_str().to_owned(),
            limit_only: d.action == BehaviourAction::Limit,
        });
        let excess = list
            .blocks
            .len()
            .saturating_sub(shared::MAX_SHARED_PENALTIES);
        list.blocks.drain(..excess);
        list.revision += 1;
        if hostcalls::set_shared_data(shared::PENALTIES_KEY, Some(&list.encode_to_vec()), cas)
            .is_ok()
        {
            return;
        }
    }
}
