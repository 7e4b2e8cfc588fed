//! Envoy stats. Names are fixed at configure time and bounded: per category and action,
//! never per IP or path. `envoy/gateway.yaml`'s `stats_tags` turn the name parts into labels.

use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;
use vigil_engine::{Category, RuleAction};

pub struct Metrics {
    pub inspected: Option<u32>,
    pub allowed: Option<u32>,
    pub blocked: Option<u32>,
    pub monitored: Option<u32>,
    pub would_block: Option<u32>,
    pub body_truncated: Option<u32>,
    pub policy_updates: Option<u32>,
    pub events_enqueued: Option<u32>,
    pub events_enqueue_failed: Option<u32>,
    /// Indexed by `category.index() * 2 + action`.
    findings: Vec<Option<u32>>,
}

pub fn counter(name: &str) -> Option<u32> {
    hostcalls::define_metric(MetricType::Counter, name).ok()
}

impl Metrics {
    pub fn define() -> Metrics {
        let mut findings = Vec::with_capacity(Category::ALL.len() * 2);
        for category in Category::ALL {
            for action in RuleAction::ALL {
                findings.push(counter(&format!(
                    "vigil.findings.category.{}.action.{}",
                    category.as_str(),
                    action.as_str()
                )));
            }
        }
        Metrics {
            inspected: counter("vigil.requests.inspected"),
            allowed: counter("vigil.requests.allowed"),
            blocked: counter("vigil.requests.blocked"),
            monitored: counter("vigil.requests.monitored"),
            would_block: counter("vigil.requests.would_block"),
            body_truncated: counter("vigil.requests.body_truncated"),
            policy_updates: counter("vigil.policy.updates"),
            events_enqueued: counter("vigil.events.enqueued"),
            events_enqueue_failed: counter("vigil.events.enqueue_failed"),
            findings,
        }
    }

    pub fn finding(&self, category: Category, action: RuleAction) -> Option<u32> {
        let a = match action {
            RuleAction::Block => 0,
            RuleAction::Monitor => 1,
        };
        self.findings
            .get(category.index() * 2 + a)
            .copied()
            .flatten()
    }
}

pub fn incr(metric: Option<u32>) {
    if let Some(id) = metric {
        let _ = hostcalls::increment_metric(id, 1);
    }
}

pub fn gauge(name: &str) -> Option<u32> {
    hostcalls::define_metric(MetricType::Gauge, name).ok()
}

pub fn add(metric: Option<u32>, n: u64) {
    if let (Some(id), Ok(n)) = (metric, i64::try_from(n)) {
        let _ = hostcalls::increment_metric(id, n);
    }
}

pub fn set(metric: Option<u32>, value: u64) {
    if let Some(id) = metric {
        let _ = hostcalls::record_metric(id, value);
    }
}
