//! Turning a verdict into the compact protobuf event the singleton ships.

use prost::Message;
use vigil_engine::behaviour::{Detection, Detector, Observation};
use vigil_engine::Verdict;
use vigil_proto::v1::{Event, Finding, Observation as ObservationMessage};

/// Paths in events are cut here: enough to see the route, bounded for memory and storage.
const PATH_MAX: usize = 256;

#[derive(Clone)]
pub struct RequestFacts<'a> {
    pub unix_ms: i64,
    pub request_id: &'a str,
    pub method: &'a str,
    pub target: &'a [u8],
    pub client_ip: String,
    pub policy_version: &'a str,
}

/// Encodes the event; node id, boot id and sequence are stamped by the singleton.
pub fn encode(verdict: &Verdict<'_>, facts: RequestFacts<'_>) -> Vec<u8> {
    let path =
        String::from_utf8_lossy(&facts.target[..facts.target.len().min(PATH_MAX)]).into_owned();
    let event = Event {
        unix_ms: facts.unix_ms,
        request_id: facts.request_id.to_owned(),
        outcome: verdict.outcome.as_str().to_owned(),
        score: verdict.score,
        method: facts.method.to_owned(),
        path,
        client_ip: facts.client_ip,
        policy_version: facts.policy_version.to_owned(),
        findings: verdict
            .findings
            .iter()
            .map(|f| Finding {
                rule_id: f.rule.id.clone(),
                category: f.rule.category.as_str().to_owned(),
                severity: f.rule.severity.as_str().to_owned(),
                action: f.rule.action.as_str().to_owned(),
                target: f.target.clone(),
                fragment: f.fragment.clone(),
            })
            .collect(),
        ..Default::default()
    };
    event.encode_to_vec()
}

/// A behaviour verdict on a request (`block`, `limit`, `monitor`) or a detection (`detect`).
pub struct BehaviourEvent<'a> {
    pub outcome: &'a str,
    pub detector: Detector,
    pub action: &'a str,
    /// `ip:203.0.113.9`, `principal:sub:alice`, ...: what the verdict is about.
    pub offender: String,
    /// Count and threshold, for detections.
    pub detail: String,
    pub principal: &'a str,
}

fn behaviour_severity(detector: Detector) -> &'static str {
    match detector {
        Detector::BruteForce
        | Detector::CredentialStuffing
        | Detector::Bola
        | Detector::Exfiltration => "critical",
        _ => "high",
    }
}

pub fn encode_behaviour(b: BehaviourEvent<'_>, facts: RequestFacts<'_>) -> Vec<u8> {
    let path =
        String::from_utf8_lossy(&facts.target[..facts.target.len().min(PATH_MAX)]).into_owned();
    Event {
        unix_ms: facts.unix_ms,
        request_id: facts.request_id.to_owned(),
        outcome: b.outcome.to_owned(),
        method: facts.method.to_owned(),
        path,
        client_ip: facts.client_ip,
        policy_version: facts.policy_version.to_owned(),
        principal: b.principal.to_owned(),
        findings: vec![Finding {
            rule_id: b.detector.rule_id(),
            category: "behaviour".to_owned(),
            severity: behaviour_severity(b.detector).to_owned(),
            action: b.action.to_owned(),
            target: b.offender,
            fragment: b.detail,
        }],
        ..Default::default()
    }
    .encode_to_vec()
}

pub fn detection_event(d: &Detection, principal: &str, facts: RequestFacts<'_>) -> Vec<u8> {
    encode_behaviour(
        BehaviourEvent {
            outcome: "detect",
            detector: d.detector,
            action: d.action.as_str(),
            offender: format!("{}:{}", d.offender.kind.as_str(), d.offender.value),
            // The control plane reads `block_secs` to spread the block for as long.
            detail: format!(
                "count={} threshold={} block_secs={}",
                d.count, d.threshold, d.block_secs
            ),
            principal,
        },
        facts,
    )
}

pub fn observation_event(o: &Observation, facts: RequestFacts<'_>) -> Vec<u8> {
    let path =
        String::from_utf8_lossy(&facts.target[..facts.target.len().min(PATH_MAX)]).into_owned();
    Event {
        unix_ms: facts.unix_ms,
        request_id: facts.request_id.to_owned(),
        outcome: "observe".to_owned(),
        method: facts.method.to_owned(),
        path,
        client_ip: facts.client_ip,
        policy_version: facts.policy_version.to_owned(),
        principal: o.principal.clone(),
        observation: Some(ObservationMessage {
            kind: o.kind.as_str().to_owned(),
            ip: o.ip.clone(),
            principal: o.principal.clone(),
            route: o.route.clone(),
            subject: o.subject.clone(),
            status: u32::from(o.status),
            bytes: o.bytes,
            records: o.records,
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

/// `10.0.0.1:5555` → `10.0.0.1`, `[::1]:5555` → `::1`.
pub fn ip_of(address: &str) -> String {
    if let Some(rest) = address.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default().to_owned();
    }
    match address.rsplit_once(':') {
        Some((ip, port)) if !ip.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            ip.to_owned()
        }
        _ => address.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ips() {
        assert_eq!(ip_of("10.0.0.1:5555"), "10.0.0.1");
        assert_eq!(ip_of("[::1]:80"), "::1");
        assert_eq!(ip_of("127.0.0.1"), "127.0.0.1");
    }
}
