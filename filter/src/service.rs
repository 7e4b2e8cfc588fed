//! The singleton service (root id `vigil_service`, main thread, same `vm_id` as the filter).
//!
//! - Holds `RuleService.Watch` open to the control plane; each bundle is checked (sha256, then
//!   compiled by the same engine the workers run) and, if good, published in shared data where
//!   every worker picks it up within its poll period. A bad bundle is refused and reported; the
//!   last good policy stays.
//! - Drains the workers' event queue, stamps each event with (node, boot, sequence), keeps at
//!   most `max_buffered_events` (dropping the oldest, counted) and ships them in batches with
//!   `EventService.Report`; a batch leaves the buffer only when the control plane acknowledged it.
//! - Reconnects with exponential backoff; nothing on the request path ever waits for it.

use std::collections::hash_map::RandomState;
use std::collections::VecDeque;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use prost::Message;
use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, LogLevel};
use sha2::{Digest, Sha256};
use vigil_engine::CompiledPolicy;
use vigil_proto::paths;
use vigil_proto::v1::{
    Event, EventAck, EventBatch, NodeInfo, NodeStatus, PolicyBundle, WatchRequest, WatchResponse,
};

use crate::config::ServiceConfig;
use crate::metrics::{add, counter, gauge, incr, set};
use crate::shared;

const CALL_TIMEOUT: Duration = Duration::from_secs(5);

struct ServiceMetrics {
    connected: Option<u32>,
    policies_applied: Option<u32>,
    policies_refused: Option<u32>,
    events_sent: Option<u32>,
    events_dropped: Option<u32>,
    events_buffered: Option<u32>,
    report_failures: Option<u32>,
}

impl ServiceMetrics {
    fn define() -> Self {
        ServiceMetrics {
            connected: gauge("vigil.service.connected"),
            policies_applied: counter("vigil.service.policies_applied"),
            policies_refused: counter("vigil.service.policies_refused"),
            events_sent: counter("vigil.service.events_sent"),
            events_dropped: counter("vigil.service.events_dropped"),
            events_buffered: gauge("vigil.service.events_buffered"),
            report_failures: counter("vigil.service.report_failures"),
        }
    }
}

/// Exponential backoff counted in ticks.
#[derive(Default)]
struct Backoff {
    wait_ticks: u64,
    next_ticks: u64,
}

impl Backoff {
    fn ready(&mut self) -> bool {
        if self.wait_ticks == 0 {
            return true;
        }
        self.wait_ticks -= 1;
        false
    }
    fn failed(&mut self, max_ticks: u64) {
        self.next_ticks = (self.next_ticks * 2).clamp(1, max_ticks.max(1));
        self.wait_ticks = self.next_ticks;
    }
    fn succeeded(&mut self) {
        *self = Backoff::default();
    }
}

#[derive(Default)]
pub struct ServiceRoot {
    config: Option<ServiceConfig>,
    boot_id: String,
    metrics: Option<ServiceMetrics>,
    queue: Option<u32>,
    next_sequence: u64,
    buffer: VecDeque<Event>,
    dropped: u64,
    /// In-flight Report call: its token and the highest sequence it carries.
    report: Option<(u32, u64)>,
    report_backoff: Backoff,
    watch: Option<u32>,
    watch_backoff: Backoff,
    /// Version applied from the control plane ("" while on the static policy).
    applied_version: String,
    /// Statuses not yet accepted by the control plane, oldest first.
    pending_status: VecDeque<NodeStatus>,
    status_call: Option<u32>,
}

impl ServiceRoot {
    pub fn configure(&mut self, bytes: &[u8]) -> bool {
        let config = match ServiceConfig::parse(bytes) {
            Ok(c) => c,
            Err(e) => {
                crate::log(
                    LogLevel::Critical,
                    &format!("vigil service: invalid configuration: {e}"),
                );
                return false;
            }
        };
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(now_ms().unsigned_abs());
        self.boot_id = format!("{:016x}", hasher.finish());
        self.metrics = Some(ServiceMetrics::define());
        self.queue = hostcalls::register_shared_queue(shared::EVENTS_QUEUE).ok();
        let _ = hostcalls::set_tick_period(Duration::from_millis(config.tick_ms));
        crate::log(
            LogLevel::Info,
            &format!(
                "vigil service: node `{}` boot {} reporting to cluster `{}`",
                config.node_id, self.boot_id, config.cluster
            ),
        );
        self.config = Some(config);
        self.open_watch();
        true
    }

    fn metadata(config: &ServiceConfig) -> Vec<(&str, Vec<u8>)> {
        if config.token.is_empty() {
            Vec::new()
        } else {
            vec![(
                "authorization",
                format!("Bearer {}", config.token).into_bytes(),
            )]
        }
    }

    fn node_info(&self) -> NodeInfo {
        NodeInfo {
            node_id: self
                .config
                .as_ref()
                .map(|c| c.node_id.clone())
                .unwrap_or_default(),
            boot_id: self.boot_id.clone(),
            applied_version: self.applied_version.clone(),
            filter_version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }

    fn max_backoff_ticks(&self) -> u64 {
        self.config
            .as_ref()
            .map_or(1, |c| (c.backoff_max_ms / c.tick_ms.max(1)).max(1))
    }

    fn open_watch(&mut self) {
        let Some(config) = &self.config else { return };
        let metadata = Self::metadata(config);
        let md: Vec<(&str, &[u8])> = metadata.iter().map(|(k, v)| (*k, v.as_slice())).collect();
        match hostcalls::open_grpc_stream(&config.cluster, paths::RULE_SERVICE, paths::WATCH, md) {
            Ok(token) => {
                let request = WatchRequest {
                    node: Some(self.node_info()),
                }
                .encode_to_vec();
                if hostcalls::send_grpc_stream_message(token, Some(&request), true).is_ok() {
                    self.watch = Some(token);
                } else {
                    let _ = hostcalls::cancel_grpc_stream(token);
                    self.watch_backoff.failed(self.max_backoff_ticks());
                }
            }
            Err(_) => self.watch_backoff.failed(self.max_backoff_ticks()),
        }
    }

    pub fn on_tick(&mut self) {
        if self.watch.is_none() && self.watch_backoff.ready() {
            self.open_watch();
        }
        self.drain_queue();
        self.send_status();
        if self.report.is_none() && !self.buffer.is_empty() && self.report_backoff.ready() {
            self.send_report();
        }
    }

    pub fn on_queue_ready(&mut self, _queue_id: u32) {
        self.drain_queue();
        // Ship at once when a full batch is waiting; otherwise the next tick does.
        let batch = self.config.as_ref().map_or(usize::MAX, |c| c.batch_size);
        if self.report.is_none()
            && self.buffer.len() >= batch
            && self.report_backoff.wait_ticks == 0
        {
            self.send_report();
        }
    }

    fn drain_queue(&mut self) {
        let Some(queue) = self.queue else { return };
        let max = self.config.as_ref().map_or(0, |c| c.max_buffered_events);
        let (node_id, boot_id) = (self.node_info().node_id, self.boot_id.clone());
        while let Ok(Some(bytes)) = hostcalls::dequeue_shared_queue(queue) {
            let Ok(mut event) = Event::decode(bytes.as_slice()) else {
                continue;
            };
            self.next_sequence += 1;
            event.node_id.clone_from(&node_id);
            event.boot_id.clone_from(&boot_id);
            event.sequence = self.next_sequence;
            self.buffer.push_back(event);
            if self.buffer.len() > max {
                // Keep the newest: when the control plane comes back, recent activity matters most.
                self.buffer.pop_front();
                self.dropped += 1;
                if let Some(m) = &self.metrics {
                    incr(m.events_dropped);
                }
            }
        }
        if let Some(m) = &self.metrics {
            set(m.events_buffered, self.buffer.len() as u64);
        }
    }

    fn send_report(&mut self) {
        let Some(config) = &self.config else { return };
        let take = config.batch_size.min(self.buffer.len());
        let events: Vec<Event> = self.buffer.iter().take(take).cloned().collect();
        let Some(last) = events.last().map(|e| e.sequence) else {
            return;
        };
        let batch = EventBatch {
            events,
            events_dropped: self.dropped,
        }
        .encode_to_vec();
        let metadata = Self::metadata(config);
        let md: Vec<(&str, &[u8])> = metadata.iter().map(|(k, v)| (*k, v.as_slice())).collect();
        match hostcalls::dispatch_grpc_call(
            &config.cluster,
            paths::EVENT_SERVICE,
            paths::REPORT_EVENTS,
            md,
            Some(&batch),
            CALL_TIMEOUT,
        ) {
            Ok(token) => self.report = Some((token, last)),
            Err(_) => self.report_failed(),
        }
    }

    fn report_failed(&mut self) {
        self.report = None;
        self.report_backoff.failed(self.max_backoff_ticks());
        if let Some(m) = &self.metrics {
            incr(m.report_failures);
        }
    }

    fn send_status(&mut self) {
        if self.status_call.is_some() {
            return;
        }
        let Some(config) = &self.config else { return };
        let Some(status) = self.pending_status.front() else {
            return;
        };
        let mut status = status.clone();
        status.events_dropped = self.dropped;
        let metadata = Self::metadata(config);
        let md: Vec<(&str, &[u8])> = metadata.iter().map(|(k, v)| (*k, v.as_slice())).collect();
        if let Ok(token) = hostcalls::dispatch_grpc_call(
            &config.cluster,
            paths::RULE_SERVICE,
            paths::REPORT_STATUS,
            md,
            Some(&status.encode_to_vec()),
            CALL_TIMEOUT,
        ) {
            self.status_call = Some(token);
        }
    }

    pub fn on_grpc_call_response(&mut self, token: u32, status_code: u32, size: usize) {
        if self.status_call == Some(token) {
            self.status_call = None;
            if status_code == 0 {
                self.pending_status.pop_front();
            }
            return;
        }
        let Some((report_token, last_sequence)) = self.report else {
            return;
        };
        if report_token != token {
            return;
        }
        if status_code != 0 {
            crate::log(
                LogLevel::Warn,
                &format!(
                    "vigil service: event report failed with gRPC status {status_code}; will retry"
                ),
            );
            self.report_failed();
            return;
        }
        let ack = hostcalls::get_buffer(BufferType::GrpcReceiveBuffer, 0, size)
            .ok()
            .flatten()
            .and_then(|b| EventAck::decode(b.as_slice()).ok())
            .unwrap_or_default();
        // Acknowledged: drop everything up to the batch's last sequence (the oldest may already
        // have been dropped for space while the call was in flight).
        let mut sent = 0u64;
        while self
            .buffer
            .front()
            .is_some_and(|e| e.sequence <= last_sequence)
        {
            self.buffer.pop_front();
            sent += 1;
        }
        self.report = None;
        self.report_backoff.succeeded();
        if let Some(m) = &self.metrics {
            add(
                m.events_sent,
                u64::from(ack.stored) + u64::from(ack.duplicates).min(sent),
            );
            set(m.events_buffered, self.buffer.len() as u64);
        }
        // More waiting: keep the pipe full rather than waiting for the next tick.
        if !self.buffer.is_empty() {
            self.send_report();
        }
    }

    pub fn on_grpc_stream_message(&mut self, token: u32, size: usize) {
        if self.watch != Some(token) {
            return;
        }
        self.watch_backoff.succeeded();
        if let Some(m) = &self.metrics {
            set(m.connected, 1);
        }
        let message = hostcalls::get_buffer(BufferType::GrpcReceiveBuffer, 0, size)
            .ok()
            .flatten()
            .and_then(|b| WatchResponse::decode(b.as_slice()).ok());
        let Some(message) = message else { return };
        if let Some(blocks) = message.blocks {
            self.publish(shared::BLOCKS_KEY, &blocks.encode_to_vec(), "blocks");
        }
        if let Some(intel) = message.intel {
            self.publish(shared::INTEL_KEY, &intel.encode_to_vec(), "intel");
        }
        if let Some(bundle) = message.policy {
            self.apply(bundle);
        }
    }

    pub fn on_grpc_stream_close(&mut self, token: u32, status_code: u32) {
        if self.watch != Some(token) {
            return;
        }
        self.watch = None;
        self.watch_backoff.failed(self.max_backoff_ticks());
        if let Some(m) = &self.metrics {
            set(m.connected, 0);
        }
        crate::log(LogLevel::Warn, &format!("vigil service: control plane stream closed (gRPC status {status_code}); enforcing the last good policy, reconnecting"));
    }

    /// Hands a block or reputation list to the workers, which pick it up on their next tick.
    fn publish(&self, key: &str, bytes: &[u8], what: &str) {
        if let Err(status) = hostcalls::set_shared_data(key, Some(bytes), None) {
            crate::log(
                LogLevel::Error,
                &format!("vigil service: could not publish {what}: {status:?}"),
            );
        }
    }

    /// Checks a bundle and publishes it to the workers, or refuses it and keeps the last good one.
    fn apply(&mut self, bundle: PolicyBundle) {
        if bundle.version == self.applied_version {
            return;
        }
        let digest = Sha256::digest(bundle.json.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        let verdict = if !bundle.sha256.eq_ignore_ascii_case(&hex) {
            Err(format!(
                "sha256 mismatch: bundle says {}, content is {hex}",
                bundle.sha256
            ))
        } else {
            CompiledPolicy::from_json(&bundle.json)
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        let status = match verdict.and_then(|()| {
            hostcalls::set_shared_data(
                shared::POLICY_KEY,
                Some(&shared::encode_policy(&bundle.version, &bundle.json)),
                None,
            )
            .map_err(|s| format!("shared data write failed: {s:?}"))
        }) {
            Ok(()) => {
                self.applied_version.clone_from(&bundle.version);
                crate::log(
                    LogLevel::Info,
                    &format!("vigil service: applied policy version {}", bundle.version),
                );
                if let Some(m) = &self.metrics {
                    incr(m.policies_applied);
                }
                NodeStatus {
                    node: Some(self.node_info()),
                    version: bundle.version,
                    applied: true,
                    ..Default::default()
                }
            }
            Err(error) => {
                crate::log(
                    LogLevel::Error,
                    &format!(
                        "vigil service: refused policy version {}: {error}",
                        bundle.version
                    ),
                );
                if let Some(m) = &self.metrics {
                    incr(m.policies_refused);
                }
                NodeStatus {
                    node: Some(self.node_info()),
                    version: bundle.version,
                    applied: false,
                    error,
                    ..Default::default()
                }
            }
        };
        self.pending_status.push_back(status);
        if self.pending_status.len() > 16 {
            self.pending_status.pop_front();
        }
        self.send_status();
    }
}

fn now_ms() -> i64 {
    i64::try_from(crate::unix_ms()).unwrap_or(i64::MAX)
}
