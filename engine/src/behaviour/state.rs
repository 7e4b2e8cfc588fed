//! Per-key windows and penalties: admits or refuses a request before any signature work, and
//! turns observations into detections. One instance per worker VM at the edge; one in the
//! control plane over the whole fleet's observations.

use super::blocks::{BlockSet, IntelSet};
use super::compiled::CompiledBehaviour;
use super::table::BoundedMap;
use super::track::{fnv1a, Tracked};
use super::window::{DistinctWindow, SlidingCount, TokenBucket};
use super::{
    BehaviourAction, Detection, Detector, Observation, ObservationKind, Offender, OffenderKind,
    Trigger,
};

/// A request the behaviour layer has something to say about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    /// `Block` (403), `Limit` (429) or `Monitor` (passes, recorded).
    pub action: BehaviourAction,
    pub detector: Detector,
    pub offender: Offender,
    /// For 429 answers.
    pub retry_after_secs: u64,
    /// A detection this request itself completed (an owner mismatch), to report.
    pub detection: Option<Detection>,
}

#[derive(Debug, Clone)]
struct Penalty {
    until_ms: u64,
    action: BehaviourAction,
    detector: Detector,
}

/// Distinct values tracked per key beyond the threshold are useless; this bounds memory when
/// a threshold is set absurdly high.
const DISTINCT_CAP: u64 = 4_096;

pub struct BehaviourState {
    failures_by_ip: BoundedMap<SlidingCount>,
    failures_by_user: BoundedMap<SlidingCount>,
    usernames_by_ip: BoundedMap<DistinctWindow>,
    objects_by_principal: BoundedMap<DistinctWindow>,
    bytes_by_principal: BoundedMap<SlidingCount>,
    records_by_principal: BoundedMap<SlidingCount>,
    requests_by_route: BoundedMap<SlidingCount>,
    errors_by_route: BoundedMap<SlidingCount>,
    not_found_by_ip: BoundedMap<SlidingCount>,
    ips_by_token: BoundedMap<DistinctWindow>,
    buckets: BoundedMap<TokenBucket>,
    penalties: BoundedMap<Penalty>,
    /// (detector, offender) → until when a repeat detection is not reported again.
    reported: BoundedMap<u64>,
    /// Pairs already forwarded to the fleet recently (see `first_in`).
    forwarded: BoundedMap<u64>,
    /// Response sizes per principal not yet sent to the fleet (see `drain_usage`).
    usage: BoundedMap<Usage>,
}

#[derive(Debug)]
struct Usage {
    principal: String,
    ip: String,
    bytes: u64,
    records: u64,
}

fn key(tag: &str, value: &str) -> u64 {
    let mut bytes = Vec::with_capacity(tag.len() + 1 + value.len());
    bytes.extend_from_slice(tag.as_bytes());
    bytes.push(0);
    bytes.extend_from_slice(value.as_bytes());
    fnv1a(&bytes)
}

fn secs_ms(secs: u64) -> u64 {
    secs.saturating_mul(1_000)
}

impl BehaviourState {
    pub fn new(max_keys: usize) -> Self {
        BehaviourState {
            failures_by_ip: BoundedMap::new(max_keys),
            failures_by_user: BoundedMap::new(max_keys),
            usernames_by_ip: BoundedMap::new(max_keys),
            objects_by_principal: BoundedMap::new(max_keys),
            bytes_by_principal: BoundedMap::new(max_keys),
            records_by_principal: BoundedMap::new(max_keys),
            requests_by_route: BoundedMap::new(max_keys),
            errors_by_route: BoundedMap::new(max_keys),
            not_found_by_ip: BoundedMap::new(max_keys),
            ips_by_token: BoundedMap::new(max_keys),
            buckets: BoundedMap::new(max_keys),
            penalties: BoundedMap::new(max_keys),
            reported: BoundedMap::new(max_keys),
            forwarded: BoundedMap::new(max_keys),
            usage: BoundedMap::new(max_keys),
        }
    }

    /// Decides before inspection: pushed blocks, reputation, local penalties, owner mismatch,
    /// rate limits. `None`: nothing to say.
    pub fn admit(
        &mut self,
        behaviour: &CompiledBehaviour,
        blocks: &BlockSet,
        intel: &IntelSet,
        t: &Tracked,
        now_ms: u64,
    ) -> Option<Admission> {
        if !blocks.is_empty() {
            if let Some((entry, kind)) = blocks.find(t.ip, &t.principal, t.token.as_deref(), now_ms)
            {
                let retry = if entry.expires_unix_ms == 0 {
                    0
                } else {
                    entry.expires_unix_ms.saturating_sub(now_ms).div_ceil(1_000)
                };
                return Some(Admission {
                    action: if entry.limit_only {
                        BehaviourAction::Limit
                    } else {
                        BehaviourAction::Block
                    },
                    detector: Detector::Blocklist,
                    offender: Offender {
                        kind,
                        value: entry.value.clone(),
                    },
                    retry_after_secs: retry,
                    detection: None,
                });
            }
        }
        if let (false, Some(ip)) = (intel.is_empty(), t.ip) {
            if intel.lookup(ip).is_some() {
                return Some(Admission {
                    action: behaviour.settings.intel.action,
                    detector: Detector::Intel,
                    offender: Offender {
                        kind: OffenderKind::Ip,
                        value: t.ip_text.clone(),
                    },
                    retry_after_secs: 0,
                    detection: None,
                });
            }
        }
        if !self.penalties.is_empty() {
            let candidates = [
                (OffenderKind::Ip, t.ip_text.as_str()),
                (OffenderKind::Principal, t.principal.as_str()),
                (OffenderKind::Token, t.token.as_deref().unwrap_or("")),
            ];
            for (kind, value) in candidates {
                if value.is_empty() {
                    continue;
                }
                let k = key(kind.as_str(), value);
                let Some(p) = self.penalties.get(k) else {
                    continue;
                };
                if p.until_ms <= now_ms {
                    self.penalties.remove(k);
                    continue;
                }
                return Some(Admission {
                    action: p.action,
                    detector: p.detector,
                    offender: Offender {
                        kind,
                        value: value.to_owned(),
                    },
                    retry_after_secs: (p.until_ms - now_ms).div_ceil(1_000),
                    detection: None,
                });
            }
        }
        if let (Some(obj), Some(bola)) = (&t.object, &behaviour.settings.bola) {
            if obj.owner_mismatch {
                let offender = Offender {
                    kind: OffenderKind::Principal,
                    value: t.principal.clone(),
                };
                return Some(Admission {
                    action: bola.mismatch_action,
                    detector: Detector::Bola,
                    detection: Some(Detection {
                        detector: Detector::Bola,
                        offender: offender.clone(),
                        count: 1,
                        threshold: 1,
                        action: bola.mismatch_action,
                        block_secs: 0,
                    }),
                    offender,
                    retry_after_secs: 0,
                });
            }
        }
        for &i in &t.rate_limits {
            let Some(limit) = behaviour.rate_limits.get(i) else {
                continue;
            };
            let s = &limit.settings;
            let (kind, value) = match s.key {
                super::RateKey::Principal => (OffenderKind::Principal, t.principal.as_str()),
                super::RateKey::Ip => (OffenderKind::Ip, t.ip_text.as_str()),
                super::RateKey::Route => (OffenderKind::Route, s.route.as_str()),
            };
            let k = key(&s.name, value);
            let bucket = self.buckets.entry(
                k,
                now_ms,
                || TokenBucket::full(s.burst, now_ms),
                |b| b.idle(now_ms, s.per_second, s.burst),
            );
            if let Err(wait_ms) = bucket.take(now_ms, s.per_second, s.burst) {
                return Some(Admission {
                    action: s.action,
                    detector: Detector::RateAbuse,
                    offender: Offender {
                        kind,
                        value: value.to_owned(),
                    },
                    retry_after_secs: wait_ms.div_ceil(1_000).max(1),
                    detection: None,
                });
            }
        }
        None
    }

    /// The observations one finished request/response pair yields. `forward` marks those the
    /// fleet view needs; repeats the edge has already sent recently are not forwarded.
    pub fn observations(
        &mut self,
        behaviour: &CompiledBehaviour,
        t: &Tracked,
        status: u16,
        bytes: u64,
        records: u64,
        now_ms: u64,
    ) -> Vec<Observation> {
        let s = &behaviour.settings;
        let mut out = Vec::new();
        let base = |kind, subject: &str, forward| Observation {
            kind,
            ip: t.ip_text.clone(),
            principal: t.principal.clone(),
            route: t.route.clone(),
            subject: subject.to_owned(),
            status,
            bytes,
            records,
            forward,
        };
        if let Some(login) = &t.login {
            let mut o = base(ObservationKind::Login, &login.username, true);
            o.route.clone_from(&login.route);
            out.push(o);
        }
        if let (Some(obj), Some(bola)) = (&t.object, &s.bola) {
            let pair = key(&obj.route, &format!("{}\0{}", t.principal, obj.id));
            let fresh = self.first_in(pair, bola.distinct_ids.window_secs, now_ms);
            let mut o = base(ObservationKind::Object, &obj.id, fresh);
            o.route.clone_from(&obj.route);
            out.push(o);
        }
        if s.exfiltration.is_some() || s.error_spike.is_some() {
            // Not forwarded one by one: the fleet gets per-principal sums (`drain_usage`).
            out.push(base(ObservationKind::Response, "", false));
            if s.exfiltration.is_some() && (bytes > 0 || records > 0) {
                let usage = self.usage.entry(
                    key("usage", &t.principal),
                    now_ms,
                    || Usage {
                        principal: t.principal.clone(),
                        ip: t.ip_text.clone(),
                        bytes: 0,
                        records: 0,
                    },
                    |_| false,
                );
                usage.bytes = usage.bytes.saturating_add(bytes);
                usage.records = usage.records.saturating_add(records);
            }
        }
        if s.scanner.is_some() && (status == 404 || t.probe) {
            out.push(base(ObservationKind::NotFound, "", true));
        }
        if let (Some(token), Some(ts), false) = (&t.token, &s.token_sharing, t.ip_text.is_empty()) {
            let fresh = self.first_in(key(token, &t.ip_text), ts.window_secs, now_ms);
            out.push(base(ObservationKind::Token, token, fresh));
        }
        out
    }

    /// Response sizes summed per principal since the last call, as observations for the fleet
    /// (status 0: a sum, not one response). The adapter calls this about once a second, so an
    /// edge sends one observation per active principal per second, not one per response.
    pub fn drain_usage(&mut self) -> Vec<Observation> {
        self.usage
            .drain()
            .map(|u| Observation {
                kind: ObservationKind::Response,
                ip: u.ip,
                principal: u.principal,
                route: String::new(),
                subject: String::new(),
                status: 0,
                bytes: u.bytes,
                records: u.records,
                forward: true,
            })
            .collect()
    }

    /// True the first time `k` is seen in half a window: distinct-count detectors at fleet scope
    /// need each pair once per window, not once per request.
    fn first_in(&mut self, k: u64, window_secs: u64, now_ms: u64) -> bool {
        let until = self.forwarded.entry(k, now_ms, || 0, |u| *u <= now_ms);
        if *until > now_ms {
            return false;
        }
        *until = now_ms.saturating_add(secs_ms(window_secs) / 2);
        true
    }

    /// Counts one observation; returns the detections it completes (each reported once per
    /// window for the same offender).
    pub fn observe(
        &mut self,
        behaviour: &CompiledBehaviour,
        o: &Observation,
        now_ms: u64,
    ) -> Vec<Detection> {
        let s = &behaviour.settings;
        let mut found = Vec::new();
        match o.kind {
            ObservationKind::Login => {
                let failed = o.status == 401 || o.status == 403;
                if let (true, Some(bf)) = (failed, &s.brute_force) {
                    if !o.ip.is_empty() {
                        let n = count(
                            &mut self.failures_by_ip,
                            key("ip", &o.ip),
                            &bf.per_ip,
                            now_ms,
                            1,
                        );
                        self.fire(
                            &mut found,
                            Detector::BruteForce,
                            OffenderKind::Ip,
                            &o.ip,
                            n,
                            &bf.per_ip,
                            now_ms,
                        );
                    }
                    if let (Some(t), false) = (&bf.per_username, o.subject.is_empty()) {
                        let n = count(
                            &mut self.failures_by_user,
                            key("user", &o.subject),
                            t,
                            now_ms,
                            1,
                        );
                        // The account is under attack from many addresses: limit logins to it.
                        self.fire(
                            &mut found,
                            Detector::BruteForce,
                            OffenderKind::Principal,
                            &format!("user:{}", o.subject),
                            n,
                            t,
                            now_ms,
                        );
                    }
                }
                if let (Some(t), false, false) = (
                    &s.credential_stuffing,
                    o.subject.is_empty(),
                    o.ip.is_empty(),
                ) {
                    let n = distinct(
                        &mut self.usernames_by_ip,
                        key("ip", &o.ip),
                        t,
                        now_ms,
                        fnv1a(o.subject.as_bytes()),
                    );
                    self.fire(
                        &mut found,
                        Detector::CredentialStuffing,
                        OffenderKind::Ip,
                        &o.ip,
                        n,
                        t,
                        now_ms,
                    );
                }
            }
            ObservationKind::Object => {
                if let Some(bola) = &s.bola {
                    let t = &bola.distinct_ids;
                    let n = distinct(
                        &mut self.objects_by_principal,
                        key(&o.route, &o.principal),
                        t,
                        now_ms,
                        fnv1a(o.subject.as_bytes()),
                    );
                    self.fire(
                        &mut found,
                        Detector::Bola,
                        OffenderKind::Principal,
                        &o.principal,
                        n,
                        t,
                        now_ms,
                    );
                }
            }
            ObservationKind::Response => {
                if let Some(ex) = &s.exfiltration {
                    if let Some(t) = &ex.bytes {
                        let n = count(
                            &mut self.bytes_by_principal,
                            key("p", &o.principal),
                            t,
                            now_ms,
                            o.bytes,
                        );
                        self.fire(
                            &mut found,
                            Detector::Exfiltration,
                            OffenderKind::Principal,
                            &o.principal,
                            n,
                            t,
                            now_ms,
                        );
                    }
                    if let (Some(t), true) = (&ex.records, o.records > 0) {
                        let n = count(
                            &mut self.records_by_principal,
                            key("p", &o.principal),
                            t,
                            now_ms,
                            o.records,
                        );
                        self.fire(
                            &mut found,
                            Detector::Exfiltration,
                            OffenderKind::Principal,
                            &o.principal,
                            n,
                            t,
                            now_ms,
                        );
                    }
                    if let (Some(max), true) = (ex.max_response_bytes, o.status != 0) {
                        if o.bytes > max {
                            let single = Trigger {
                                window_secs: 60,
                                threshold: max,
                                action: ex.single_response_action,
                                block_secs: ex.bytes.as_ref().map_or(600, |t| t.block_secs),
                            };
                            self.fire(
                                &mut found,
                                Detector::Exfiltration,
                                OffenderKind::Principal,
                                &o.principal,
                                o.bytes,
                                &single,
                                now_ms,
                            );
                        }
                    }
                }
                if let (Some(es), false) = (&s.error_spike, o.route.is_empty()) {
                    let window = secs_ms(es.window_secs);
                    let k = key("route", &o.route);
                    let total = self
                        .requests_by_route
                        .entry(k, now_ms, SlidingCount::default, |c| c.idle(now_ms, window))
                        .add(now_ms, window, 1);
                    let errors_map = &mut self.errors_by_route;
                    let errors = {
                        let c = errors_map
                            .entry(k, now_ms, SlidingCount::default, |c| c.idle(now_ms, window));
                        if o.status >= 400 {
                            c.add(now_ms, window, 1)
                        } else {
                            c.estimate(now_ms, window)
                        }
                    };
                    if total >= es.min_requests && (errors as f64) >= es.ratio * total as f64 {
                        let t = Trigger {
                            window_secs: es.window_secs,
                            threshold: es.min_requests,
                            action: BehaviourAction::Monitor,
                            block_secs: 0,
                        };
                        self.fire(
                            &mut found,
                            Detector::ErrorSpike,
                            OffenderKind::Route,
                            &o.route,
                            errors,
                            &t,
                            now_ms,
                        );
                    }
                }
            }
            ObservationKind::NotFound => {
                if let (Some(sc), false) = (&s.scanner, o.ip.is_empty()) {
                    let weight = if o.status == 404 { 1 } else { sc.probe_weight };
                    let n = count(
                        &mut self.not_found_by_ip,
                        key("ip", &o.ip),
                        &sc.not_found,
                        now_ms,
                        weight,
                    );
                    self.fire(
                        &mut found,
                        Detector::Scanner,
                        OffenderKind::Ip,
                        &o.ip,
                        n,
                        &sc.not_found,
                        now_ms,
                    );
                }
            }
            ObservationKind::Token => {
                if let (Some(t), false) = (&s.token_sharing, o.ip.is_empty()) {
                    let n = distinct(
                        &mut self.ips_by_token,
                        key("token", &o.subject),
                        t,
                        now_ms,
                        fnv1a(o.ip.as_bytes()),
                    );
                    self.fire(
                        &mut found,
                        Detector::TokenSharing,
                        OffenderKind::Token,
                        &o.subject,
                        n,
                        t,
                        now_ms,
                    );
                }
            }
        }
        found
    }

    /// Makes a detection's `limit` or `block` take effect here (the edge's own penalties).
    pub fn penalise(&mut self, d: &Detection, now_ms: u64) {
        let until_ms = now_ms.saturating_add(secs_ms(d.block_secs));
        self.impose(&d.offender, d.action, d.detector, until_ms, now_ms);
    }

    /// Applies a penalty decided elsewhere (another worker of this Envoy) until `until_ms`.
    pub fn impose(
        &mut self,
        offender: &Offender,
        action: BehaviourAction,
        detector: Detector,
        until_ms: u64,
        now_ms: u64,
    ) {
        if action == BehaviourAction::Monitor
            || offender.kind == OffenderKind::Route
            || until_ms <= now_ms
        {
            return;
        }
        let p = self.penalties.entry(
            key(offender.kind.as_str(), &offender.value),
            now_ms,
            || Penalty {
                until_ms,
                action,
                detector,
            },
            |p| p.until_ms <= now_ms,
        );
        if p.until_ms < until_ms
            || (p.action == BehaviourAction::Limit && action == BehaviourAction::Block)
        {
            *p = Penalty {
                until_ms,
                action,
                detector,
            };
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn fire(
        &mut self,
        found: &mut Vec<Detection>,
        detector: Detector,
        kind: OffenderKind,
        value: &str,
        n: u64,
        trigger: &Trigger,
        now_ms: u64,
    ) {
        if n < trigger.threshold {
            return;
        }
        // The threshold tells apart detections of one detector on one offender (bytes vs records).
        let k = key(detector.as_str(), value) ^ (kind as u64) ^ trigger.threshold.rotate_left(17);
        let quiet_ms = secs_ms(trigger.window_secs.max(trigger.block_secs.min(3_600)));
        let until = self.reported.entry(k, now_ms, || 0, |u| *u <= now_ms);
        if *until > now_ms {
            return;
        }
        *until = now_ms.saturating_add(quiet_ms);
        found.push(Detection {
            detector,
            offender: Offender {
                kind,
                value: value.to_owned(),
            },
            count: n,
            threshold: trigger.threshold,
            action: trigger.action,
            block_secs: trigger.block_secs,
        });
    }
}

fn count(map: &mut BoundedMap<SlidingCount>, k: u64, t: &Trigger, now_ms: u64, amount: u64) -> u64 {
    let window = secs_ms(t.window_secs);
    map.entry(k, now_ms, SlidingCount::default, |c| c.idle(now_ms, window))
        .add(now_ms, window, amount)
}

fn distinct(
    map: &mut BoundedMap<DistinctWindow>,
    k: u64,
    t: &Trigger,
    now_ms: u64,
    value: u64,
) -> u64 {
    let window = secs_ms(t.window_secs);
    let cap = t.threshold.min(DISTINCT_CAP) as usize;
    map.entry(k, now_ms, DistinctWindow::default, |d| {
        d.idle(now_ms, window)
    })
    .add(now_ms, window, value, cap)
}
