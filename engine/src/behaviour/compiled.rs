//! The behaviour section compiled once per policy: route patterns parsed, settings checked.
//! Errors name the field, like the rest of policy validation.

use crate::policy::PolicyError;
use crate::routes::RoutePattern;

use super::settings::{BehaviourSettings, RateLimitSettings, Trigger};

pub(crate) struct CompiledBolaRoute {
    pub pattern: RoutePattern,
    pub route: String,
    pub position: usize,
    pub owner_claim: Option<String>,
}

pub(crate) struct CompiledRateLimit {
    pub pattern: RoutePattern,
    pub methods: Vec<String>,
    pub settings: RateLimitSettings,
}

/// The behaviour part of a compiled policy.
pub struct CompiledBehaviour {
    pub(crate) settings: BehaviourSettings,
    pub(crate) login_routes: Vec<(RoutePattern, String)>,
    pub(crate) bola_routes: Vec<CompiledBolaRoute>,
    pub(crate) rate_limits: Vec<CompiledRateLimit>,
    pub(crate) probe_paths: Vec<RoutePattern>,
    /// Route patterns named anywhere in the policy, for per-route error ratios.
    pub(crate) known_routes: Vec<(RoutePattern, String)>,
}

impl CompiledBehaviour {
    pub fn settings(&self) -> &BehaviourSettings {
        &self.settings
    }

    /// Any detector needs per-request facts (address, principal) at all.
    pub fn active(&self) -> bool {
        let s = &self.settings;
        s.brute_force.is_some()
            || s.credential_stuffing.is_some()
            || !s.rate_limits.is_empty()
            || s.bola.is_some()
            || s.exfiltration.is_some()
            || s.error_spike.is_some()
            || s.scanner.is_some()
            || s.token_sharing.is_some()
    }

    /// Responses are observed (status, size) by some detector.
    pub fn watches_responses(&self) -> bool {
        let s = &self.settings;
        s.brute_force.is_some()
            || s.credential_stuffing.is_some()
            || s.exfiltration.is_some()
            || s.error_spike.is_some()
            || s.scanner.is_some()
    }

    pub(crate) fn compile(
        settings: &BehaviourSettings,
        policy_routes: &[String],
    ) -> Result<CompiledBehaviour, PolicyError> {
        let pattern = |field: String, text: &str| {
            RoutePattern::parse(text).map_err(|m| PolicyError::invalid(None, field, m))
        };
        let trigger = |field: &str, t: &Trigger| -> Result<(), PolicyError> {
            if t.window_secs == 0 || t.window_secs > 86_400 {
                return Err(PolicyError::invalid(
                    None,
                    format!("{field}.window_secs"),
                    "must be between 1 and 86400",
                ));
            }
            if t.threshold == 0 {
                return Err(PolicyError::invalid(
                    None,
                    format!("{field}.threshold"),
                    "must be at least 1",
                ));
            }
            Ok(())
        };
        if settings.max_keys == 0 || settings.max_keys > 1_000_000 {
            return Err(PolicyError::invalid(
                None,
                "behaviour.max_keys",
                "must be between 1 and 1000000",
            ));
        }
        let mut login_routes = Vec::new();
        if let Some(bf) = &settings.brute_force {
            if bf.routes.is_empty() {
                return Err(PolicyError::invalid(
                    None,
                    "behaviour.brute_force.routes",
                    "name at least one login route",
                ));
            }
            for (i, r) in bf.routes.iter().enumerate() {
                login_routes.push((
                    pattern(format!("behaviour.brute_force.routes[{i}]"), r)?,
                    r.clone(),
                ));
            }
            trigger("behaviour.brute_force.per_ip", &bf.per_ip)?;
            if let Some(t) = &bf.per_username {
                trigger("behaviour.brute_force.per_username", t)?;
            }
        }
        if let Some(t) = &settings.credential_stuffing {
            trigger("behaviour.credential_stuffing", t)?;
            if settings.brute_force.is_none() {
                return Err(PolicyError::invalid(
                    None,
                    "behaviour.credential_stuffing",
                    "needs behaviour.brute_force.routes to know the login routes",
                ));
            }
        }
        let mut rate_limits = Vec::new();
        for (i, r) in settings.rate_limits.iter().enumerate() {
            let field = format!("behaviour.rate_limits[{i}]");
            if !(r.per_second > 0.0 && r.per_second.is_finite()) {
                return Err(PolicyError::invalid(
                    Some(&r.name),
                    format!("{field}.per_second"),
                    "must be a positive number",
                ));
            }
            if r.burst == 0 {
                return Err(PolicyError::invalid(
                    Some(&r.name),
                    format!("{field}.burst"),
                    "must be at least 1",
                ));
            }
            rate_limits.push(CompiledRateLimit {
                pattern: RoutePattern::parse(&r.route).map_err(|m| {
                    PolicyError::invalid(Some(&r.name), format!("{field}.route"), m)
                })?,
                methods: r.methods.iter().map(|m| m.to_ascii_uppercase()).collect(),
                settings: r.clone(),
            });
        }
        let mut bola_routes = Vec::new();
        if let Some(bola) = &settings.bola {
            trigger("behaviour.bola.distinct_ids", &bola.distinct_ids)?;
            for (i, r) in bola.routes.iter().enumerate() {
                let field = format!("behaviour.bola.routes[{i}]");
                let p = pattern(format!("{field}.path"), &r.path)?;
                let position = p.param_position(&r.param).ok_or_else(|| {
                    PolicyError::invalid(
                        None,
                        format!("{field}.param"),
                        format!("`{}` has no `{{{}}}` segment", r.path, r.param),
                    )
                })?;
                bola_routes.push(CompiledBolaRoute {
                    pattern: p,
                    route: r.path.clone(),
                    position,
                    owner_claim: r.owner_claim.clone(),
                });
            }
        }
        if let Some(ex) = &settings.exfiltration {
            if let Some(t) = &ex.bytes {
                trigger("behaviour.exfiltration.bytes", t)?;
            }
            if let Some(t) = &ex.records {
                trigger("behaviour.exfiltration.records", t)?;
            }
            if ex.bytes.is_none() && ex.records.is_none() && ex.max_response_bytes.is_none() {
                return Err(PolicyError::invalid(
                    None,
                    "behaviour.exfiltration",
                    "set bytes, records or max_response_bytes",
                ));
            }
        }
        if let Some(es) = &settings.error_spike {
            if !(es.ratio > 0.0 && es.ratio <= 1.0) {
                return Err(PolicyError::invalid(
                    None,
                    "behaviour.error_spike.ratio",
                    "must be in (0, 1]",
                ));
            }
            if es.window_secs == 0 || es.min_requests == 0 {
                return Err(PolicyError::invalid(
                    None,
                    "behaviour.error_spike",
                    "window_secs and min_requests must be at least 1",
                ));
            }
        }
        let mut probe_paths = Vec::new();
        if let Some(sc) = &settings.scanner {
            trigger("behaviour.scanner.not_found", &sc.not_found)?;
            for (i, p) in sc.probe_paths.iter().enumerate() {
                probe_paths.push(pattern(format!("behaviour.scanner.probe_paths[{i}]"), p)?);
            }
        }
        if let Some(t) = &settings.token_sharing {
            trigger("behaviour.token_sharing", t)?;
        }
        let mut known_routes: Vec<(RoutePattern, String)> = login_routes.clone();
        known_routes.extend(
            bola_routes
                .iter()
                .map(|b| (b.pattern.clone(), b.route.clone())),
        );
        for r in policy_routes {
            if let Ok(p) = RoutePattern::parse(r) {
                known_routes.push((p, r.clone()));
            }
        }
        for r in &rate_limits {
            known_routes.push((r.pattern.clone(), r.settings.route.clone()));
        }
        Ok(CompiledBehaviour {
            settings: settings.clone(),
            login_routes,
            bola_routes,
            rate_limits,
            probe_paths,
            known_routes,
        })
    }
}
