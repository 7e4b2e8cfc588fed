//! Envoy stats. Names are fixed at configure time and bounded: per category, severity and
//! action, never per IP or path. `envoy/gateway.yaml`'s `stats_tags` turn the name parts into
//! labels (`vigil_findings{category,severity,action}`); `envoy/prometheus/README.md` lists them.
//!
//! Worker counters are kept in the VM and flushed to Envoy on the root context's tick (every
//! 100 ms), so a request costs no host call for its stats.

use std::cell::Cell;

use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;
use vigil_engine::behaviour::{BehaviourAction, Detector};
use vigil_engine::{Category, RuleAction, RuleInfo, Severity};

/// A counter whose increments wait in the VM until [`Metrics::flush`].
pub struct Counter {
    id: Option<u32>,
    pending: Cell<u64>,
}

impl Counter {
    pub(crate) fn define(name: &str) -> Counter {
        Counter {
            id: counter(name),
            pending: Cell::new(0),
        }
    }

    pub fn bump(&self) {
        self.add(1);
    }

    pub fn add(&self, n: u64) {
        self.pending.set(self.pending.get().saturating_add(n));
    }

    pub(crate) fn flush(&self) {
        let n = self.pending.replace(0);
        if n > 0 {
            add(self.id, n);
        }
    }
}

pub struct Metrics {
    pub inspected: Counter,
    pub allowed: Counter,
    pub blocked: Counter,
    pub limited: Counter,
    pub monitored: Counter,
    pub would_block: Counter,
    pub body_truncated: Counter,
    pub policy_updates: Counter,
    pub events_enqueued: Counter,
    pub events_enqueue_failed: Counter,
    pub blocks_updates: Counter,
    /// Indexed by [`finding_index`].
    findings: Vec<Counter>,
    /// Behaviour verdicts and detections, indexed by `detector * 3 + action`.
    behaviour: Vec<Counter>,
}

const BEHAVIOUR_ACTIONS: [BehaviourAction; 3] = [
    BehaviourAction::Monitor,
    BehaviourAction::Limit,
    BehaviourAction::Block,
];
const FINDING_COUNTERS: usize = Category::ALL.len() * Severity::ALL.len() * RuleAction::ALL.len();

fn finding_index(category: Category, severity: Severity, action: RuleAction) -> usize {
    let s = match severity {
        Severity::Low => 0,
        Severity::Medium => 1,
        Severity::High => 2,
        Severity::Critical => 3,
    };
    let a = match action {
        RuleAction::Block => 0,
        RuleAction::Monitor => 1,
    };
    (category.index() * Severity::ALL.len() + s) * RuleAction::ALL.len() + a
}

pub fn counter(name: &str) -> Option<u32> {
    hostcalls::define_metric(MetricType::Counter, name).ok()
}

impl Metrics {
    pub fn define() -> Metrics {
        let mut findings = Vec::with_capacity(FINDING_COUNTERS);
        // The same order as `finding_index`.
        for category in Category::ALL {
            for severity in Severity::ALL {
                for action in RuleAction::ALL {
                    findings.push(Counter::define(&format!(
                        "vigil.findings.category.{}.severity.{}.action.{}",
                        category.as_str(),
                        severity.as_str(),
                        action.as_str()
                    )));
                }
            }
        }
        let mut behaviour = Vec::with_capacity(Detector::ALL.len() * 3);
        for detector in Detector::ALL {
            for action in BEHAVIOUR_ACTIONS {
                behaviour.push(Counter::define(&format!(
                    "vigil.behaviour.{}.{}",
                    detector.as_str(),
                    action.as_str()
                )));
            }
        }
        Metrics {
            blocks_updates: Counter::define("vigil.blocks.updates"),
            behaviour,
            inspected: Counter::define("vigil.requests.inspected"),
            allowed: Counter::define("vigil.requests.allowed"),
            blocked: Counter::define("vigil.requests.blocked"),
            limited: Counter::define("vigil.requests.limited"),
            monitored: Counter::define("vigil.requests.monitored"),
            would_block: Counter::define("vigil.requests.would_block"),
            body_truncated: Counter::define("vigil.requests.body_truncated"),
            policy_updates: Counter::define("vigil.policy.updates"),
            events_enqueued: Counter::define("vigil.events.enqueued"),
            events_enqueue_failed: Counter::define("vigil.events.enqueue_failed"),
            findings,
        }
    }

    /// The counter of findings of `rule`'s category, severity and action.
    pub fn finding(&self, rule: &RuleInfo) -> Option<&Counter> {
        self.findings
            .get(finding_index(rule.category, rule.severity, rule.action))
    }

    pub fn behaviour(&self, detector: Detector, action: BehaviourAction) -> Option<&Counter> {
        let d = Detector::ALL.iter().position(|x| *x == detector)?;
        let a = BEHAVIOUR_ACTIONS.iter().position(|x| *x == action)?;
        self.behaviour.get(d * 3 + a)
    }

    /// Hands the counts gathered since the last flush to Envoy.
    pub fn flush(&self) {
        let fixed = [
            &self.inspected,
            &self.allowed,
            &self.blocked,
            &self.limited,
            &self.monitored,
            &self.would_block,
            &self.body_truncated,
            &self.policy_updates,
            &self.events_enqueued,
            &self.events_enqueue_failed,
            &self.blocks_updates,
        ];
        for c in fixed
            .into_iter()
            .chain(self.findings.iter())
            .chain(self.behaviour.iter())
        {
            c.flush();
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `Metrics::define` pushes counters in nested-loop order; the index must agree.
    #[test]
    fn finding_index_follows_definition_order() {
        let mut expected = 0;
        for category in Category::ALL {
            for severity in Severity::ALL {
                for action in RuleAction::ALL {
                    assert_eq!(finding_index(category, severity, action), expected);
                    expected += 1;
                }
            }
        }
        assert_eq!(expected, FINDING_COUNTERS);
    }
}
