//! The fleet correlator: the edges' detectors, run once more over the observations of every
//! edge, so an attack spread over several proxies (none passing its local threshold) is seen.
//!
//! Pure and synchronous: time is passed in, and what a detection leads to (a dynamic block, a
//! "detect" event) is returned for the caller to store and publish.

use std::sync::Arc;

use vigil_engine::behaviour::{
    BehaviourAction, BehaviourState, Detection, Detector, Observation, ObservationKind,
    OffenderKind,
};
use vigil_engine::CompiledPolicy;
use vigil_proto::v1::{self as proto, Event, Finding};

use super::fleet_store::BlockRecord;

/// Node id of the events the correlator writes.
pub const FLEET_NODE: &str = "fleet";
/// `created_by` of the blocks the correlator adds.
pub const CORRELATOR_ACTOR: &str = "correlator";
/// Block length when an edge's detection does not say.
const DEFAULT_BLOCK_SECS: u64 = 600;

pub struct Correlator {
    policy: Option<Arc<CompiledPolicy>>,
    /// The control plane's version number of `policy` (0: the built-in default).
    version: i64,
    state: BehaviourState,
}

impl Default for Correlator {
    fn default() -> Self {
        Correlator {
            policy: None,
            version: 0,
            state: BehaviourState::new(1),
        }
    }
}

impl Correlator {
    /// Follows a new current policy. The counts so far are kept when the behaviour settings did
    /// not change (a threshold edit elsewhere must not forget a running attack).
    pub fn set_policy(&mut self, policy: Arc<CompiledPolicy>, version: i64) {
        let same = self
            .policy
            .as_ref()
            .is_some_and(|old| old.behaviour().settings() == policy.behaviour().settings());
        if !same {
            self.state = BehaviourState::new(policy.behaviour().settings().max_keys);
        }
        self.policy = Some(policy);
        self.version = version;
    }

    /// For the `policy_version` of detection events ("" before any push).
    pub fn policy_version(&self) -> String {
        if self.version > 0 {
            self.version.to_string()
        } else {
            String::new()
        }
    }

    /// Counts one stored event's observation (if it has one); returns what it completes.
    pub fn observe(&mut self, event: &Event, server_now_ms: i64) -> Vec<Detection> {
        let Some(policy) = &self.policy else {
            return Vec::new();
        };
        let behaviour = policy.behaviour();
        if !behaviour.active() {
            return Vec::new();
        }
        let Some(observation) = event.observation.as_ref().and_then(to_engine) else {
            return Vec::new();
        };
        // An edge's clock may run ahead; never let it move the fleet's windows into the future.
        let now = event.unix_ms.clamp(0, server_now_ms.max(0)) as u64;
        self.state.observe(behaviour, &observation, now)
    }
}

pub fn to_engine(o: &proto::Observation) -> Option<Observation> {
    Some(Observation {
        kind: ObservationKind::parse(&o.kind)?,
        ip: o.ip.clone(),
        principal: o.principal.clone(),
        route: o.route.clone(),
        subject: o.subject.clone(),
        status: u16::try_from(o.status).unwrap_or(0),
        bytes: o.bytes,
        records: o.records,
        forward: false,
    })
}

fn block_kind(kind: OffenderKind) -> Option<&'static str> {
    match kind {
        OffenderKind::Ip => Some("ip"),
        OffenderKind::Principal => Some("principal"),
        OffenderKind::Token => Some("token"),
        OffenderKind::Route => None,
    }
}

/// The block a fleet detection calls for: limit/block actions on an address, principal or token.
pub fn block_for(d: &Detection, now_ms: i64) -> Option<BlockRecord> {
    let limit_only = match d.action {
        BehaviourAction::Monitor => return None,
        BehaviourAction::Limit => true,
        BehaviourAction::Block => false,
    };
    Some(BlockRecord {
        kind: block_kind(d.offender.kind)?.to_owned(),
        value: d.offender.value.clone(),
        expires_unix_ms: expiry(now_ms, d.block_secs),
        reason: format!("fleet:{}", d.detector.as_str()),
        limit_only,
        created_by: CORRELATOR_ACTOR.to_owned(),
        created_unix_ms: now_ms,
    })
}

fn expiry(now_ms: i64, secs: u64) -> i64 {
    let secs = if secs == 0 { DEFAULT_BLOCK_SECS } else { secs };
    now_ms.saturating_add(i64::try_from(secs.saturating_mul(1_000)).unwrap_or(i64::MAX))
}

fn severity(detector: Detector) -> &'static str {
    match detector {
        Detector::BruteForce
        | Detector::CredentialStuffing
        | Detector::Bola
        | Detector::Exfiltration => "critical",
        _ => "high",
    }
}

/// A detection as an event (outcome "detect"), so `events query` and alerting see it.
///
/// Convention shared with the edges' own detection events: one finding, category "behaviour",
/// `target` = `<offender kind>:<value>`, `fragment` = `count=N threshold=T block_secs=S`; the
/// offender also goes in `client_ip` (an address) or `principal`.
pub fn detection_event(d: &Detection, now_ms: i64, policy_version: &str) -> Event {
    let kind = d.offender.kind.as_str();
    let value = &d.offender.value;
    Event {
        node_id: FLEET_NODE.to_owned(),
        unix_ms: now_ms,
        outcome: "detect".to_owned(),
        path: if d.offender.kind == OffenderKind::Route {
            value.clone()
        } else {
            String::new()
        },
        client_ip: if d.offender.kind == OffenderKind::Ip {
            value.clone()
        } else {
            String::new()
        },
        principal: if d.offender.kind == OffenderKind::Principal {
            value.clone()
        } else {
            String::new()
        },
        policy_version: policy_version.to_owned(),
        findings: vec![Finding {
            rule_id: d.detector.rule_id(),
            category: "behaviour".to_owned(),
            severity: severity(d.detector).to_owned(),
            action: d.action.as_str().to_owned(),
            target: format!("{kind}:{value}"),
            fragment: format!(
                "count={} threshold={} block_secs={}",
                d.count, d.threshold, d.block_secs
            ),
        }],
        ..Default::default()
    }
}

/// An edge's own detection with action block becomes a fleet block, so one edge's local block
/// reaches every edge. `None` for other events and other actions.
pub fn block_from_edge(event: &Event, now_ms: i64) -> Option<BlockRecord> {
    if event.outcome != "detect" || event.node_id == FLEET_NODE {
        return None;
    }
    let finding = event
        .findings
        .iter()
        .find(|f| f.action == "block" && f.category == "behaviour")?;
    let (kind, value) = offender_of(event, finding)?;
    let detector = finding
        .rule_id
        .strip_prefix("behaviour.")
        .unwrap_or(&finding.rule_id);
    let block_secs = finding
        .fragment
        .split_whitespace()
        .find_map(|part| part.strip_prefix("block_secs="))
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(DEFAULT_BLOCK_SECS);
    Some(BlockRecord {
        kind: kind.to_owned(),
        value,
        expires_unix_ms: expiry(now_ms, block_secs),
        reason: format!("edge:{detector}"),
        limit_only: false,
        created_by: format!("edge:{}", event.node_id),
        created_unix_ms: now_ms,
    })
}

fn offender_of(event: &Event, finding: &Finding) -> Option<(&'static str, String)> {
    if let Some((kind, value)) = finding.target.split_once(':') {
        let kind = match kind {
            "ip" => Some("ip"),
            "principal" => Some("principal"),
            "token" => Some("token"),
            _ => None,
        };
        if let (Some(kind), false) = (kind, value.is_empty()) {
            return Some((kind, value.to_owned()));
        }
    }
    if !event.client_ip.is_empty() {
        return Some(("ip", event.client_ip.clone()));
    }
    if !event.principal.is_empty() {
        return Some(("principal", event.principal.clone()));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = r#"{
        "behaviour": {
            "brute_force": {
                "routes": ["/login"],
                "per_ip": {"window_secs": 60, "threshold": 4, "action": "block", "block_secs": 30}
            }
        }
    }"#;

    fn policy(json: &str) -> Arc<CompiledPolicy> {
        Arc::new(CompiledPolicy::from_json(json).unwrap())
    }

    fn failed_login(node: &str, seq: u64, ip: &str, unix_ms: i64) -> Event {
        Event {
            node_id: node.into(),
            boot_id: "b".into(),
            sequence: seq,
            unix_ms,
            outcome: "observe".into(),
            observation: Some(proto::Observation {
                kind: "login".into(),
                ip: ip.into(),
                principal: format!("ip:{ip}"),
                route: "/login".into(),
                subject: format!("user{seq}"),
                status: 401,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn failures_from_two_edges_add_up_to_one_block() {
        let mut c = Correlator::default();
        c.set_policy(policy(POLICY), 1);
        let now = 1_000_000;
        let mut detections = Vec::new();
        for seq in 0..4 {
            let node = if seq % 2 == 0 { "edge-a" } else { "edge-b" };
            detections.extend(c.observe(&failed_login(node, seq, "203.0.113.7", now), now));
        }
        assert_eq!(detections.len(), 1, "{detections:?}");
        let d = &detections[0];
        assert_eq!(d.detector, Detector::BruteForce);
        let block = block_for(d, now).unwrap();
        assert_eq!(
            (
                block.kind.as_str(),
                block.value.as_str(),
                block.reason.as_str()
            ),
            ("ip", "203.0.113.7", "fleet:brute_force")
        );
        assert_eq!(block.expires_unix_ms, now + 30_000);
        assert!(!block.limit_only);

        let event = detection_event(d, now, "3");
        assert_eq!(event.outcome, "detect");
        assert_eq!(event.client_ip, "203.0.113.7");
        assert_eq!(event.findings[0].rule_id, "behaviour.brute_force");
        assert_eq!(event.findings[0].severity, "critical");
        // The fleet's own detection events never turn into edge blocks a second time.
        assert!(block_from_edge(&event, now).is_none());
    }

    #[test]
    fn edge_clocks_ahead_are_clamped_and_unchanged_settings_keep_counts() {
        let mut c = Correlator::default();
        c.set_policy(policy(POLICY), 1);
        let now = 1_000_000;
        for seq in 0..3 {
            // Far in the future: counted at the server's time, not the edge's.
            assert!(c
                .observe(
                    &failed_login("a", seq, "198.51.100.1", now + 10_000_000),
                    now
                )
                .is_empty());
        }
        // Same behaviour settings, another mode: the three failures still count.
        let mut other: serde_json::Value = serde_json::from_str(POLICY).unwrap();
        other["mode"] = "monitor".into();
        c.set_policy(policy(&other.to_string()), 2);
        assert_eq!(
            c.observe(&failed_login("a", 9, "198.51.100.1", now), now)
                .len(),
            1
        );

        // New thresholds: counting starts over.
        other["behaviour"]["brute_force"]["per_ip"]["threshold"] = 2.into();
        c.set_policy(policy(&other.to_string()), 2);
        assert!(c
            .observe(&failed_login("a", 10, "198.51.100.1", now), now)
            .is_empty());
        assert_eq!(
            c.observe(&failed_login("a", 11, "198.51.100.1", now), now)
                .len(),
            1
        );
    }

    #[test]
    fn without_behaviour_settings_nothing_is_counted() {
        let mut c = Correlator::default();
        assert!(c
            .observe(&failed_login("a", 1, "192.0.2.1", 5), 5)
            .is_empty());
        c.set_policy(policy("{}"), 1);
        for seq in 0..10 {
            assert!(c
                .observe(&failed_login("a", seq, "192.0.2.1", 5), 5)
                .is_empty());
        }
    }

    #[test]
    fn monitor_and_route_detections_block_nothing() {
        let d = Detection {
            detector: Detector::ErrorSpike,
            offender: vigil_engine::behaviour::Offender {
                kind: OffenderKind::Route,
                value: "/users/{id}".into(),
            },
            count: 9,
            threshold: 5,
            action: BehaviourAction::Block,
            block_secs: 60,
        };
        assert!(block_for(&d, 0).is_none());
        let d = Detection {
            offender: vigil_engine::behaviour::Offender {
                kind: OffenderKind::Principal,
                value: "sub:alice".into(),
            },
            action: BehaviourAction::Limit,
            ..d
        };
        let block = block_for(&d, 0).unwrap();
        assert!(block.limit_only);
        assert_eq!(detection_event(&d, 0, "").principal, "sub:alice");
        let d = Detection {
            action: BehaviourAction::Monitor,
            ..d
        };
        assert!(block_for(&d, 0).is_none());
    }

    #[test]
    fn edge_block_detections_spread() {
        let mut event = Event {
            node_id: "edge-a".into(),
            outcome: "detect".into(),
            client_ip: "203.0.113.9".into(),
            findings: vec![Finding {
                rule_id: "behaviour.scanner".into(),
                category: "behaviour".into(),
                action: "block".into(),
                target: "ip:203.0.113.9".into(),
                fragment: "count=12 threshold=10 block_secs=120".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let block = block_from_edge(&event, 1_000).unwrap();
        assert_eq!(block.value, "203.0.113.9");
        assert_eq!(block.expires_unix_ms, 121_000);
        assert_eq!(block.reason, "edge:scanner");
        assert_eq!(block.created_by, "edge:edge-a");
        event.findings[0].action = "limit".into();
        assert!(block_from_edge(&event, 1_000).is_none());
    }
}
