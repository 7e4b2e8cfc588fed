//! What behaviour detection needs to know about one request, gathered once on the request path
//! and kept by the adapter until the response arrives.

use std::net::IpAddr;

use crate::inspect::Request;
use crate::jwt::base64url_decode;
use crate::normalize::{normalize_path, percent_decode};
use crate::routes::RoutePattern;
use crate::targets::{self, BodyFormat};

use super::address::client_ip;
use super::compiled::CompiledBehaviour;

/// A short stable identifier for a secret (token, API key): the secret itself never leaves the
/// edge. FNV-1a 64: fast, and enough to tell tokens apart.
pub fn fingerprint(secret: &[u8]) -> String {
    format!("{:016x}", fnv1a(secret))
}

pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// Looks a claim up in a verified identity (e.g. `jwt_authn`'s payload in dynamic metadata).
pub type ClaimLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Login {
    pub route: String,
    /// Lower-cased; empty when the body did not name one.
    pub username: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectAccess {
    pub route: String,
    pub id: String,
    /// The id differs from the owner claim the policy requires it to equal.
    pub owner_mismatch: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Tracked {
    pub ip: Option<IpAddr>,
    /// The address as text ("" when unknown).
    pub ip_text: String,
    /// `sub:<claim>`, `key:<fingerprint>` or `ip:<address>`.
    pub principal: String,
    /// `t:<fingerprint>` of the bearer token or API key.
    pub token: Option<String>,
    pub login: Option<Login>,
    pub object: Option<ObjectAccess>,
    /// The policy route pattern this request matched, for per-route ratios ("" for none).
    pub route: String,
    pub probe: bool,
    /// Indexes of the rate limits that apply.
    pub rate_limits: Vec<usize>,
}

impl CompiledBehaviour {
    /// Gathers the facts for one request. `peer` is the downstream address. `verified_claim`
    /// looks a claim up in what a verifier (Envoy's `jwt_authn`) established; when given, the
    /// bearer token's own payload is not trusted for identity.
    pub fn track(
        &self,
        request: &Request<'_>,
        api_key_headers: &[String],
        peer: Option<&str>,
        verified_claim: Option<ClaimLookup<'_>>,
    ) -> Tracked {
        let header = |name: &str| {
            request
                .headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| *v)
        };
        let ip = client_ip(
            header("x-forwarded-for"),
            peer,
            self.settings.client_ip.trusted_hops,
        );
        let ip_text = ip.map(|i| i.to_string()).unwrap_or_default();

        let bearer = header("authorization").and_then(|v| {
            let v = targets::trim(v);
            (v.len() > 7 && v[..7].eq_ignore_ascii_case(b"bearer ")).then(|| targets::trim(&v[7..]))
        });
        let api_key = api_key_headers
            .iter()
            .find_map(|h| header(h))
            .filter(|v| !v.is_empty());
        let claims: Option<serde_json::Value> = match verified_claim {
            Some(_) => None,
            None => bearer.and_then(jwt_payload),
        };
        let claim = |name: &str| match verified_claim {
            Some(lookup) => lookup(name)
                .filter(|v| !v.is_empty())
                .map(|v| v.chars().take(128).collect()),
            None => claims.as_ref().and_then(|c| claim_text(c, name)),
        };
        let principal = if let Some(sub) = claim(&self.settings.principal.jwt_claim) {
            format!("sub:{sub}")
        } else if let Some(key) = api_key {
            format!("key:{}", fingerprint(key))
        } else if !ip_text.is_empty() {
            format!("ip:{ip_text}")
        } else {
            "anonymous".to_owned()
        };
        let token = bearer.or(api_key).map(|t| format!("t:{}", fingerprint(t)));

        let raw_path = request.target.split(|&b| b == b'?').next().unwrap_or(b"/");
        let mut decoded = Vec::with_capacity(raw_path.len());
        percent_decode(raw_path, false, &mut decoded);
        let path = normalize_path(&decoded);

        let login = self
            .login_routes
            .iter()
            .find(|(p, _)| p.matches(&path))
            .map(|(_, route)| Login {
                route: route.clone(),
                username: self.username(request),
            });
        let object = self
            .bola_routes
            .iter()
            .find(|b| b.pattern.matches(&path))
            .and_then(|b| {
                let id = RoutePattern::segment(&path, b.position)?;
                let id = String::from_utf8_lossy(id).into_owned();
                let owner_mismatch = b
                    .owner_claim
                    .as_deref()
                    .is_some_and(|c| claim(c).is_none_or(|owner| owner != id));
                Some(ObjectAccess {
                    route: b.route.clone(),
                    id,
                    owner_mismatch,
                })
            });
        let route = self
            .known_routes
            .iter()
            .find(|(p, _)| p.matches(&path))
            .map(|(_, r)| r.clone())
            .unwrap_or_default();
        let probe = self.probe_paths.iter().any(|p| p.matches(&path));
        let rate_limits = self
            .rate_limits
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                (r.methods.is_empty() || r.methods.iter().any(|m| m == request.method))
                    && r.pattern.matches(&path)
            })
            .map(|(i, _)| i)
            .collect();
        Tracked {
            ip,
            ip_text,
            principal,
            token,
            login,
            object,
            route,
            probe,
            rate_limits,
        }
    }

    /// The username a login request names in its body (JSON or form), lower-cased.
    fn username(&self, request: &Request<'_>) -> String {
        let (Some(body), Some(bf)) = (request.body, &self.settings.brute_force) else {
            return String::new();
        };
        let wanted = |name: &[u8]| {
            bf.username_fields
                .iter()
                .any(|f| f.as_bytes().eq_ignore_ascii_case(name))
        };
        let content_type = request
            .headers
            .iter()
            .find(|(n, _)| *n == "content-type")
            .map(|(_, v)| *v);
        let mut found: Option<Vec<u8>> = None;
        match targets::body_format(content_type, body) {
            BodyFormat::Json => {
                let _ = targets::walk_json(body, |is_key, name, value| {
                    if !is_key && found.is_none() && wanted(name) {
                        found = Some(value.to_vec());
                    }
                });
            }
            BodyFormat::Form => targets::walk_pairs(body, |name, value| {
                if found.is_none() && wanted(name) {
                    let mut out = Vec::new();
                    percent_decode(value, true, &mut out);
                    found = Some(out);
                }
            }),
            _ => {}
        }
        let mut name = String::from_utf8_lossy(&found.unwrap_or_default()).to_lowercase();
        name.truncate(128);
        name
    }
}

fn jwt_payload(token: &[u8]) -> Option<serde_json::Value> {
    let mut parts = token.split(|&b| b == b'.');
    let (_, payload) = (parts.next()?, parts.next()?);
    serde_json::from_slice(&base64url_decode(payload)?).ok()
}

fn claim_text(claims: &serde_json::Value, name: &str) -> Option<String> {
    match claims.get(name)? {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.chars().take(128).collect()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}
