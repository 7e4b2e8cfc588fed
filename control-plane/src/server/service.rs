//! The gRPC services: RuleService and EventService for edges, AdminService for the CLI.
//! Authorisation has already happened (see `auth`); the caller's role is a request extension.

use std::pin::Pin;
use std::sync::Arc;

use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::{BroadcastStream, WatchStream};
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};
use vigil_engine::{CompiledPolicy, PolicyDocument};
use vigil_proto::v1::admin_service_server::AdminService;
use vigil_proto::v1::event_service_server::EventService;
use vigil_proto::v1::rule_service_server::RuleService;
use vigil_proto::v1::{
    AckAlertRequest, AddBlockRequest, Alert as AlertMessage, AlertSilence, BlockEntry, Event,
    EventAck, EventBatch, EventList, EventQuery, GetPolicyRequest, IntelList, ListAlertsRequest,
    ListAlertsResponse, ListAuditRequest, ListAuditResponse, ListBlocksRequest, ListBlocksResponse,
    ListIntelRequest, ListNodesRequest, ListNodesResponse, ListPoliciesRequest,
    ListPoliciesResponse, LoadIntelRequest, LoadIntelResponse, NodeState, NodeStatus,
    PolicyVersion, PushPolicyRequest, PushPolicyResponse, RemoveBlockRequest, RollbackRequest,
    SilenceAlertsRequest, StatusAck, TailRequest, WatchRequest, WatchResponse,
};

use super::alerting::Alerting;
use super::auth::{Actor, Role};
use super::fleet;
use super::hub::{bundle, Hub, LiveStream};
use super::store::{Change, EventFilter, NodeUpdate, PolicyRecord, StoreError};
use crate::timefmt::now_unix_ms;

/// Response metadata set when a push or rollback changed nothing (the document is current).
pub const UNCHANGED_HEADER: &str = "x-vigil-unchanged";

fn change_response(change: &Change) -> Response<PushPolicyResponse> {
    let mut response = Response::new(PushPolicyResponse {
        bundle: Some(bundle(change.record())),
    });
    if matches!(change, Change::Unchanged(_)) {
        response.metadata_mut().insert(
            UNCHANGED_HEADER,
            tonic::metadata::MetadataValue::from_static("true"),
        );
    }
    response
}

/// Events per batch; a larger batch is refused as a whole (edges send far fewer).
pub const MAX_BATCH: usize = 10_000;
pub const DEFAULT_QUERY_LIMIT: u32 = 100;
pub const MAX_QUERY_LIMIT: u32 = 10_000;

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

pub(super) fn store_status(e: StoreError) -> Status {
    match e {
        StoreError::StaleBase { .. } => Status::failed_precondition(e.to_string()),
        StoreError::UnknownVersion(_) => Status::not_found(e.to_string()),
        StoreError::NothingToRollBack(_) => Status::failed_precondition(e.to_string()),
        other => {
            tracing::error!(error = %other, "store failure");
            Status::internal("the control plane's database failed; see its log")
        }
    }
}

/// The name of the caller's token, for the audit trail (its role when unnamed).
pub(super) fn actor<T>(request: &Request<T>) -> String {
    match request.extensions().get::<Actor>() {
        Some(Actor(name)) => name.to_string(),
        None => role(request).as_str().to_owned(),
    }
}

fn role<T>(request: &Request<T>) -> Role {
    // The auth layer always sets it; without it, assume the least privileged reader.
    request
        .extensions()
        .get::<Role>()
        .copied()
        .unwrap_or(Role::Viewer)
}

pub(super) fn non_empty(s: String) -> Option<String> {
    if s.is_empty() {
        None
    } else {
        Some(s)
    }
}

fn parse_version(field: &str, text: &str) -> Result<Option<i64>, Status> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    match text.parse::<i64>() {
        Ok(v) if v > 0 => Ok(Some(v)),
        _ => Err(Status::invalid_argument(format!(
            "`{field}` must be a version number, got `{text}`"
        ))),
    }
}

fn version_message(record: &PolicyRecord) -> PolicyVersion {
    PolicyVersion {
        bundle: Some(bundle(record)),
        author: record.author_role.clone(),
        comment: record.comment.clone(),
        current: record.current,
    }
}

// ---------------------------------------------------------------------- RuleService

pub struct Rules {
    pub hub: Arc<Hub>,
}

#[tonic::async_trait]
impl RuleService for Rules {
    type WatchStream = BoxStream<WatchResponse>;

    async fn watch(
        &self,
        request: Request<WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let node = request.into_inner().node.unwrap_or_default();
        if node.node_id.is_empty() {
            return Err(Status::invalid_argument("`node.node_id` is empty"));
        }
        let update = NodeUpdate {
            node_id: node.node_id.clone(),
            boot_id: node.boot_id.clone(),
            applied_version: Some(node.applied_version.clone()),
            last_error: None,
            events_dropped: None,
        };
        let now = now_unix_ms();
        self.hub
            .store
            .run(move |s| s.update_node(&update, now))
            .await
            .map_err(store_status)?;
        let connection = self.hub.connect(&node.node_id);
        self.hub
            .metrics
            .set_node_version(&node.node_id, &node.applied_version);
        tracing::info!(
            node = %node.node_id,
            boot = %node.boot_id,
            applied = %node.applied_version,
            filter = %node.filter_version,
            "watch stream opened"
        );
        // The first message carries the policy (once there is one), blocks and intel; later
        // messages whichever changed. Marking the current values seen before following the
        // changes means nothing committed in between is missed.
        let mut policy_rx = self.hub.policy_updates();
        let mut blocks_rx = self.hub.fleet.block_updates();
        let mut intel_rx = self.hub.fleet.intel_updates();
        let first = WatchResponse {
            policy: policy_rx
                .borrow_and_update()
                .as_ref()
                .map(|b| (**b).clone()),
            blocks: Some((**blocks_rx.borrow_and_update()).clone()),
            intel: Some((**intel_rx.borrow_and_update()).clone()),
        };
        let policies = WatchStream::from_changes(policy_rx).filter_map(|current| {
            current.map(|b| WatchResponse {
                policy: Some((*b).clone()),
                ..Default::default()
            })
        });
        let blocks = WatchStream::from_changes(blocks_rx).map(|b| WatchResponse {
            blocks: Some((*b).clone()),
            ..Default::default()
        });
        let intel = WatchStream::from_changes(intel_rx).map(|i| WatchResponse {
            intel: Some((*i).clone()),
            ..Default::default()
        });
        let updates = tokio_stream::once(first)
            .chain(policies.merge(blocks).merge(intel))
            .map(Ok);
        let stream = LiveStream::new(&self.hub, Box::pin(updates), connection);
        Ok(Response::new(Box::pin(stream)))
    }

    async fn report_status(
        &self,
        request: Request<NodeStatus>,
    ) -> Result<Response<StatusAck>, Status> {
        let status = request.into_inner();
        let node = status.node.unwrap_or_default();
        if node.node_id.is_empty() {
            return Err(Status::invalid_argument("`node.node_id` is empty"));
        }
        if !status.applied && !status.error.is_empty() {
            tracing::warn!(
                node = %node.node_id,
                version = %status.version,
                error = %status.error,
                "edge refused a policy bundle"
            );
        }
        let applied_version = if status.applied {
            non_empty(status.version.clone())
        } else {
            non_empty(node.applied_version.clone())
        };
        if let Some(version) = &applied_version {
            if self.hub.is_connected(&node.node_id) {
                self.hub.metrics.set_node_version(&node.node_id, version);
            }
        }
        let update = NodeUpdate {
            node_id: node.node_id,
            boot_id: node.boot_id,
            applied_version,
            last_error: Some(status.error),
            events_dropped: Some(status.events_dropped),
        };
        let now = now_unix_ms();
        self.hub
            .store
            .run(move |s| s.update_node(&update, now))
            .await
            .map_err(store_status)?;
        Ok(Response::new(StatusAck {}))
    }
}

// ---------------------------------------------------------------------- EventService

pub struct Events {
    pub hub: Arc<Hub>,
    pub alerting: Arc<Alerting>,
}

#[tonic::async_trait]
impl EventService for Events {
    async fn report(&self, request: Request<EventBatch>) -> Result<Response<EventAck>, Status> {
        let batch = request.into_inner();
        if batch.events.len() > MAX_BATCH {
            return Err(Status::invalid_argument(format!(
                "batch of {} events is larger than {MAX_BATCH}",
                batch.events.len()
            )));
        }
        for (i, e) in batch.events.iter().enumerate() {
            if e.node_id.is_empty() {
                return Err(Status::invalid_argument(format!(
                    "events[{i}].node_id is empty"
                )));
            }
            if e.boot_id.is_empty() {
                return Err(Status::invalid_argument(format!(
                    "events[{i}].boot_id is empty"
                )));
            }
        }
        let now = now_unix_ms();
        let dropped = batch.events_dropped;
        let events = batch.events;
        // The transaction commits before the acknowledgement is sent.
        let (report, events) = self
            .hub
            .store
            .run(move |s| {
                let report = s.insert_events(&events, dropped, now)?;
                Ok((report, events))
            })
            .await
            .map_err(store_status)?;
        let metrics = &self.hub.metrics;
        metrics.event_batches.inc();
        metrics.events_stored.add(report.stored.len() as u64);
        metrics.events_duplicate.add(u64::from(report.duplicates));
        let stored = report.stored.len();
        let mut events: Vec<Option<Event>> = events.into_iter().map(Some).collect();
        let mut fresh = Vec::with_capacity(stored);
        for i in report.stored {
            if let Some(e) = events.get_mut(i).and_then(Option::take) {
                metrics.count_findings(&e.findings);
                fresh.push(e);
            }
        }
        // Only new events reach the correlator: a resend is not a second failed login.
        fleet::ingest(&self.hub, &fresh).await;
        // Alerting failures are logged, never refused: the events are stored already.
        if let Err(e) = self.alerting.observe(&fresh, now).await {
            tracing::error!(error = %e, "alerting: cannot record alerts for a batch");
        }
        for e in fresh {
            self.hub.publish_event(e);
        }
        tracing::debug!(stored, duplicates = report.duplicates, "event batch");
        Ok(Response::new(EventAck {
            stored: u32::try_from(stored).unwrap_or(u32::MAX),
            duplicates: report.duplicates,
        }))
    }
}

// ---------------------------------------------------------------------- AdminService

pub struct Admin {
    pub hub: Arc<Hub>,
    pub alerting: Arc<Alerting>,
}

impl Admin {
    /// `compiled`: the new document as validation compiled it, for the correlator (compiling
    /// it again would delay the answer by as long as validation took).
    fn announce(&self, change: &Change, what: &str, compiled: CompiledPolicy) {
        if let Change::Created(record) = change {
            self.hub.metrics.policy_pushes.inc();
            self.hub.publish_policy(record);
            self.hub
                .fleet
                .set_policy(Arc::new(compiled), record.version);
            tracing::info!(
                version = record.version,
                sha256 = %record.sha256,
                author = %record.author_role,
                comment = %record.comment,
                "{what}: new current policy"
            );
        }
    }
}

#[tonic::async_trait]
impl AdminService for Admin {
    async fn push_policy(
        &self,
        request: Request<PushPolicyRequest>,
    ) -> Result<Response<PushPolicyResponse>, Status> {
        let role = role(&request);
        let actor = actor(&request);
        let PushPolicyRequest {
            json,
            comment,
            base_version,
        } = request.into_inner();
        let base = parse_version("base_version", &base_version)?;
        if json.trim().is_empty() {
            self.hub.metrics.policy_rejected.inc();
            return Err(Status::invalid_argument(
                "empty policy: push `{}` for the built-in default policy",
            ));
        }
        // Compiling builds regex sets: CPU work, kept off the async workers.
        let checked = tokio::task::spawn_blocking(move || {
            let document = PolicyDocument::from_json(&json)?;
            let compiled = CompiledPolicy::compile(document.clone())?;
            Ok::<_, vigil_engine::PolicyError>((document.to_json(), compiled))
        })
        .await
        .map_err(|e| Status::internal(format!("validation task failed: {e}")))?;
        let (canonical, compiled) = match checked {
            Ok(checked) => checked,
            Err(e) => {
                self.hub.metrics.policy_rejected.inc();
                tracing::warn!(error = %e, "refused policy push: invalid policy");
                return Err(Status::invalid_argument(format!("invalid policy: {e}")));
            }
        };
        let now = now_unix_ms();
        let change = self
            .hub
            .store
            .run(move |s| {
                let change = s.push_policy_on(&canonical, &comment, role.as_str(), now, base)?;
                if let Change::Created(r) = &change {
                    let detail = format!("version {}: {}", r.version, r.comment);
                    s.audit(&actor, "policy.push", &detail, now)?;
                }
                Ok(change)
            })
            .await
            .map_err(store_status)?;
        self.announce(&change, "push", compiled);
        Ok(change_response(&change))
    }

    async fn list_policies(
        &self,
        _request: Request<ListPoliciesRequest>,
    ) -> Result<Response<ListPoliciesResponse>, Status> {
        let records = self
            .hub
            .store
            .run(|s| s.list_policies())
            .await
            .map_err(store_status)?;
        Ok(Response::new(ListPoliciesResponse {
            versions: records.iter().map(version_message).collect(),
        }))
    }

    async fn get_policy(
        &self,
        request: Request<GetPolicyRequest>,
    ) -> Result<Response<PolicyVersion>, Status> {
        let version = parse_version("version", &request.get_ref().version)?;
        let record = self
            .hub
            .store
            .run(move |s| s.get_policy(version))
            .await
            .map_err(store_status)?;
        match (record, version) {
            (Some(r), _) => Ok(Response::new(version_message(&r))),
            (None, Some(v)) => Err(Status::not_found(format!(
                "policy version {v} does not exist"
            ))),
            (None, None) => Err(Status::not_found("no policy has been pushed yet")),
        }
    }

    async fn rollback(
        &self,
        request: Request<RollbackRequest>,
    ) -> Result<Response<PushPolicyResponse>, Status> {
        let role = role(&request);
        let actor = actor(&request);
        let to = parse_version("to_version", &request.get_ref().to_version)?;
        let target = self
            .hub
            .store
            .run(move |s| s.rollback_target(to))
            .await
            .map_err(store_status)?;
        // The stored document passed validation when it was pushed; check it again in case
        // this engine is stricter than the one that accepted it.
        let json = target.json.clone();
        let valid = tokio::task::spawn_blocking(move || CompiledPolicy::from_json(&json))
            .await
            .map_err(|e| Status::internal(format!("validation task failed: {e}")))?;
        let compiled = match valid {
            Ok(compiled) => compiled,
            Err(e) => {
                return Err(Status::failed_precondition(format!(
                    "version {} does not validate with this control plane: {e}",
                    target.version
                )))
            }
        };
        let target_version = target.version;
        let now = now_unix_ms();
        let change = self
            .hub
            .store
            .run(move |s| {
                let change = s.rollback(target_version, role.as_str(), now)?;
                if let Change::Created(r) = &change {
                    let detail = format!(
                        "version {} restores the policy of version {target_version}",
                        r.version
                    );
                    s.audit(&actor, "policy.rollback", &detail, now)?;
                }
                Ok(change)
            })
            .await
            .map_err(store_status)?;
        self.announce(&change, "rollback", compiled);
        Ok(change_response(&change))
    }

    async fn query_events(
        &self,
        request: Request<EventQuery>,
    ) -> Result<Response<EventList>, Status> {
        let q = request.into_inner();
        let filter = EventFilter {
            since_unix_ms: q.since_unix_ms,
            category: non_empty(q.category),
            rule_id: non_empty(q.rule_id),
            client_ip: non_empty(q.client_ip),
            node_id: non_empty(q.node_id),
            limit: match q.limit {
                0 => DEFAULT_QUERY_LIMIT,
                n => n.min(MAX_QUERY_LIMIT),
            },
            observations: q.observations,
        };
        let events = self
            .hub
            .store
            .run(move |s| s.query_events(&filter))
            .await
            .map_err(store_status)?;
        Ok(Response::new(EventList { events }))
    }

    type TailEventsStream = BoxStream<Event>;

    async fn tail_events(
        &self,
        _request: Request<TailRequest>,
    ) -> Result<Response<Self::TailEventsStream>, Status> {
        let feed = BroadcastStream::new(self.hub.event_feed()).map(|item| match item {
            Ok(event) => Ok((*event).clone()),
            Err(BroadcastStreamRecvError::Lagged(n)) => Err(Status::resource_exhausted(format!(
                "tail fell behind by {n} events; reconnect (or use `events query` for history)"
            ))),
        });
        Ok(Response::new(Box::pin(LiveStream::new(
            &self.hub,
            Box::pin(feed),
            (),
        ))))
    }

    async fn list_nodes(
        &self,
        _request: Request<ListNodesRequest>,
    ) -> Result<Response<ListNodesResponse>, Status> {
        let records = self
            .hub
            .store
            .run(|s| s.list_nodes())
            .await
            .map_err(store_status)?;
        let nodes = records
            .into_iter()
            .map(|n| NodeState {
                connected: self.hub.is_connected(&n.node_id),
                node_id: n.node_id,
                applied_version: n.applied_version,
                last_error: n.last_error,
                last_seen_unix_ms: n.last_seen_unix_ms,
                events_dropped: n.events_dropped,
                events_received: n.events_received,
                boot_id: n.boot_id,
            })
            .collect();
        Ok(Response::new(ListNodesResponse { nodes }))
    }

    // Fleet response (bodies in `fleet_admin`).

    async fn add_block(
        &self,
        request: Request<AddBlockRequest>,
    ) -> Result<Response<BlockEntry>, Status> {
        self.add_block_impl(request).await
    }

    async fn remove_block(
        &self,
        request: Request<RemoveBlockRequest>,
    ) -> Result<Response<ListBlocksResponse>, Status> {
        self.remove_block_impl(request).await
    }

    async fn list_blocks(
        &self,
        request: Request<ListBlocksRequest>,
    ) -> Result<Response<ListBlocksResponse>, Status> {
        self.list_blocks_impl(request).await
    }

    async fn load_intel(
        &self,
        request: Request<LoadIntelRequest>,
    ) -> Result<Response<LoadIntelResponse>, Status> {
        self.load_intel_impl(request).await
    }

    async fn list_intel(
        &self,
        request: Request<ListIntelRequest>,
    ) -> Result<Response<IntelList>, Status> {
        self.list_intel_impl(request).await
    }

    async fn list_audit(
        &self,
        request: Request<ListAuditRequest>,
    ) -> Result<Response<ListAuditResponse>, Status> {
        self.list_audit_impl(request).await
    }

    // ---- alerts

    async fn list_alerts(
        &self,
        request: Request<ListAlertsRequest>,
    ) -> Result<Response<ListAlertsResponse>, Status> {
        let q = request.into_inner();
        let limit = match q.limit {
            0 => DEFAULT_QUERY_LIMIT,
            n => n.min(MAX_QUERY_LIMIT),
        };
        let alerts = self
            .alerting
            .list(q.include_resolved, limit, now_unix_ms())
            .await
            .map_err(store_status)?;
        let outbox_pending =
            u64::try_from(self.hub.metrics.alert_outbox_pending.get()).unwrap_or(0);
        Ok(Response::new(ListAlertsResponse {
            alerts: alerts
                .iter()
                .map(|(a, silenced)| alert_message(a, *silenced))
                .collect(),
            outbox_pending,
        }))
    }

    async fn ack_alert(
        &self,
        request: Request<AckAlertRequest>,
    ) -> Result<Response<AlertMessage>, Status> {
        let role = role(&request);
        let target = request.into_inner().alert.trim().to_owned();
        if target.is_empty() {
            return Err(Status::invalid_argument(
                "`alert` (an id or fingerprint) is empty",
            ));
        }
        match self
            .alerting
            .ack(&target, role.as_str(), now_unix_ms())
            .await
            .map_err(store_status)?
        {
            Some(alert) => Ok(Response::new(alert_message(&alert, false))),
            None => Err(Status::not_found(format!(
                "no firing alert with id or fingerprint `{target}`"
            ))),
        }
    }

    async fn silence_alerts(
        &self,
        request: Request<SilenceAlertsRequest>,
    ) -> Result<Response<AlertSilence>, Status> {
        let role = role(&request);
        let q = request.into_inner();
        if q.duration_ms <= 0 {
            return Err(Status::invalid_argument("`duration_ms` must be positive"));
        }
        let now = now_unix_ms();
        let silence = super::alerting::engine::Silence {
            id: 0,
            rule: non_empty(q.rule),
            key: non_empty(q.key),
            until_ms: now.saturating_add(q.duration_ms),
            created_by: role.as_str().to_owned(),
            comment: q.comment,
        };
        let s = self
            .alerting
            .silence(silence, now)
            .await
            .map_err(store_status)?;
        Ok(Response::new(AlertSilence {
            id: s.id,
            rule: s.rule.unwrap_or_default(),
            key: s.key.unwrap_or_default(),
            until_unix_ms: s.until_ms,
            created_by: s.created_by,
            comment: s.comment,
        }))
    }
}

fn alert_message(a: &super::alerting::engine::Alert, silenced: bool) -> AlertMessage {
    AlertMessage {
        id: a.id,
        fingerprint: a.fingerprint.clone(),
        rule: a.rule.clone(),
        key_kind: a.key_kind.as_str().to_owned(),
        key: a.key.clone(),
        severity: a.severity.as_str().to_owned(),
        level: a.level.as_str().to_owned(),
        status: if a.is_firing() { "firing" } else { "resolved" }.to_owned(),
        count: a.count,
        first_seen_unix_ms: a.first_seen_ms,
        last_seen_unix_ms: a.last_seen_ms,
        resolved_unix_ms: a.resolved_ms.unwrap_or(0),
        acked_by: a.acked_by.clone().unwrap_or_default(),
        acked_unix_ms: a.acked_ms.unwrap_or(0),
        silenced,
        summary: a.summary.clone(),
        notified: a.sent.keys().cloned().collect(),
    }
}
