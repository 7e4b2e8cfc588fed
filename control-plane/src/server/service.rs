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
    AckAlertRequest, Alert as AlertMessage, AlertSilence, ListAlertsRequest, ListAlertsResponse,
    SilenceAlertsRequest,
};
use vigil_proto::v1::{
    Event, EventAck, EventBatch, EventList, EventQuery, GetPolicyRequest, ListNodesRequest,
    ListNodesResponse, ListPoliciesRequest, ListPoliciesResponse, NodeState, NodeStatus,
    PolicyVersion, PushPolicyRequest, PushPolicyResponse, RollbackRequest, StatusAck, TailRequest,
    WatchRequest, WatchResponse,
};

use super::alerting::Alerting;
use super::auth::Role;
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

fn store_status(e: StoreError) -> Status {
    match e {
        StoreError::UnknownVersion(_) => Status::not_found(e.to_string()),
        StoreError::NothingToRollBack(_) => Status::failed_precondition(e.to_string()),
        other => {
            tracing::error!(error = %other, "store failure");
            Status::internal("the control plane's database failed; see its log")
        }
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

fn non_empty(s: String) -> Option<String> {
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
        // WatchStream yields the current value at once, then every change. With no policy
        // yet, the first message is empty: it still tells the edge that it is connected (its
        // `vigil_service_connected` gauge), which alerting relies on.
        let mut first = true;
        let updates = WatchStream::new(self.hub.policy_updates()).filter_map(move |current| {
            let opening = std::mem::replace(&mut first, false);
            match current {
                Some(b) => Some(Ok(WatchResponse {
                    policy: Some((*b).clone()),
                })),
                None if opening => Some(Ok(WatchResponse { policy: None })),
                None => None,
            }
        });
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
        let mut new_events = Vec::with_capacity(stored);
        for i in report.stored {
            if let Some(e) = events.get_mut(i).and_then(Option::take) {
                metrics.count_findings(&e.findings);
                new_events.push(e);
            }
        }
        // Alerting failures are logged, never refused: the events are stored already.
        if let Err(e) = self.alerting.observe(&new_events, now).await {
            tracing::error!(error = %e, "alerting: cannot record alerts for a batch");
        }
        for e in new_events {
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
    fn announce(&self, change: &Change, what: &str) {
        if let Change::Created(record) = change {
            self.hub.metrics.policy_pushes.inc();
            self.hub.publish_policy(record);
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
        let PushPolicyRequest { json, comment } = request.into_inner();
        if json.trim().is_empty() {
            self.hub.metrics.policy_rejected.inc();
            return Err(Status::invalid_argument(
                "empty policy: push `{}` for the built-in default policy",
            ));
        }
        // Compiling builds regex sets: CPU work, kept off the async workers.
        let checked = tokio::task::spawn_blocking(move || {
            let document = PolicyDocument::from_json(&json)?;
            CompiledPolicy::compile(document.clone())?;
            Ok::<_, vigil_engine::PolicyError>(document.to_json())
        })
        .await
        .map_err(|e| Status::internal(format!("validation task failed: {e}")))?;
        let canonical = match checked {
            Ok(json) => json,
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
            .run(move |s| s.push_policy(&canonical, &comment, role.as_str(), now))
            .await
            .map_err(store_status)?;
        self.announce(&change, "push");
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
        let valid =
            tokio::task::spawn_blocking(move || CompiledPolicy::from_json(&json).map(|_| ()))
                .await
                .map_err(|e| Status::internal(format!("validation task failed: {e}")))?;
        if let Err(e) = valid {
            return Err(Status::failed_precondition(format!(
                "version {} does not validate with this control plane: {e}",
                target.version
            )));
        }
        let target_version = target.version;
        let now = now_unix_ms();
        let change = self
            .hub
            .store
            .run(move |s| s.rollback(target_version, role.as_str(), now))
            .await
            .map_err(store_status)?;
        self.announce(&change, "rollback");
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
