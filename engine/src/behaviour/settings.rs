//! The `behaviour` section of a policy: which detectors run, on which routes, with which
//! windows, thresholds and responses. Every detector is off until the policy names it.

use serde::{Deserialize, Serialize};

/// What a detector does to the offender once it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BehaviourAction {
    /// Record (event, stats) only.
    #[default]
    Monitor,
    /// Answer 429 with `retry-after` until the penalty ends.
    Limit,
    /// Answer 403 until the penalty ends.
    Block,
}

impl BehaviourAction {
    pub fn parse(s: &str) -> Option<BehaviourAction> {
        [Self::Monitor, Self::Limit, Self::Block]
            .into_iter()
            .find(|a| a.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Monitor => "monitor",
            Self::Limit => "limit",
            Self::Block => "block",
        }
    }
}

/// When a count becomes a detection and what follows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    pub window_secs: u64,
    pub threshold: u64,
    #[serde(default)]
    pub action: BehaviourAction,
    /// How long a `limit` or `block` lasts.
    #[serde(default = "defaults::block_secs")]
    pub block_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BehaviourSettings {
    #[serde(default)]
    pub client_ip: ClientIpSettings,
    #[serde(default)]
    pub principal: PrincipalSettings,
    /// Keys each detector tracks at most (per worker at the edge); the least recently seen go first.
    #[serde(default = "defaults::max_keys")]
    pub max_keys: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brute_force: Option<BruteForceSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_stuffing: Option<Trigger>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rate_limits: Vec<RateLimitSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bola: Option<BolaSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exfiltration: Option<ExfiltrationSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_spike: Option<ErrorSpikeSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scanner: Option<ScannerSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_sharing: Option<Trigger>,
    #[serde(default)]
    pub intel: IntelSettings,
}

impl Default for BehaviourSettings {
    fn default() -> Self {
        BehaviourSettings {
            client_ip: ClientIpSettings::default(),
            principal: PrincipalSettings::default(),
            max_keys: defaults::max_keys(),
            brute_force: None,
            credential_stuffing: None,
            rate_limits: Vec::new(),
            bola: None,
            exfiltration: None,
            error_spike: None,
            scanner: None,
            token_sharing: None,
            intel: IntelSettings::default(),
        }
    }
}

impl BehaviourSettings {
    pub fn is_default(&self) -> bool {
        *self == BehaviourSettings::default()
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientIpSettings {
    /// Proxies in front of Envoy that each append to `x-forwarded-for`. 0: the peer address is
    /// the client; N: the N-th address from the right of `x-forwarded-for` is.
    #[serde(default)]
    pub trusted_hops: u8,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrincipalSettings {
    /// The JWT claim naming the caller.
    #[serde(default = "defaults::claim")]
    pub jwt_claim: String,
    /// When Envoy's `jwt_authn` runs before vigil with `payload_in_metadata: NAME`, set this to
    /// NAME: claims then come from the verified payload in dynamic metadata, never from the
    /// unverified token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt_authn_metadata: Option<String>,
}

impl Default for PrincipalSettings {
    fn default() -> Self {
        PrincipalSettings {
            jwt_claim: defaults::claim(),
            jwt_authn_metadata: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BruteForceSettings {
    /// Login routes (`/login`, `/oauth/token`); their 401/403 answers count as failures.
    pub routes: Vec<String>,
    /// Body fields (JSON or form) that carry the username.
    #[serde(default = "defaults::username_fields")]
    pub username_fields: Vec<String>,
    /// Failures per client IP.
    pub per_ip: Trigger,
    /// Failures per username (the account under attack), from any address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_username: Option<Trigger>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RateKey {
    #[default]
    Principal,
    Ip,
    /// One bucket per route pattern for everyone.
    Route,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSettings {
    pub name: String,
    /// Route pattern; `/**` for every route.
    #[serde(default = "defaults::all_routes")]
    pub route: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    #[serde(default)]
    pub key: RateKey,
    /// Sustained requests per second.
    pub per_second: f64,
    /// Requests allowed in a burst above the sustained rate.
    pub burst: u32,
    #[serde(default = "defaults::limit")]
    pub action: BehaviourAction,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BolaRoute {
    /// `/users/{id}/orders`.
    pub path: String,
    /// The path parameter that names the object.
    pub param: String,
    /// When set, the object id must equal this JWT claim of the caller (`sub`): any other id is
    /// refused at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_claim: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BolaSettings {
    pub routes: Vec<BolaRoute>,
    /// Distinct object ids per principal.
    pub distinct_ids: Trigger,
    /// What an owner-claim mismatch gets.
    #[serde(default = "defaults::block")]
    pub mismatch_action: BehaviourAction,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExfiltrationSettings {
    /// Response bytes per principal in the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<Trigger>,
    /// Records per principal in the window, counted from `records_header` of responses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records: Option<Trigger>,
    #[serde(default = "defaults::records_header")]
    pub records_header: String,
    /// A single response larger than this is a detection by itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_response_bytes: Option<u64>,
    #[serde(default)]
    pub single_response_action: BehaviourAction,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorSpikeSettings {
    pub window_secs: u64,
    /// Requests a route needs in the window before its ratio means anything.
    pub min_requests: u64,
    /// Share of 4xx/5xx answers (0..1) that counts as a spike.
    pub ratio: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScannerSettings {
    /// 404 answers per client IP.
    pub not_found: Trigger,
    /// Paths only scanners ask for; each hit counts as `probe_weight` 404s.
    #[serde(default = "defaults::probe_paths")]
    pub probe_paths: Vec<String>,
    #[serde(default = "defaults::probe_weight")]
    pub probe_weight: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntelSettings {
    /// What a request from an address on a loaded reputation list gets.
    #[serde(default = "defaults::block")]
    pub action: BehaviourAction,
}

impl Default for IntelSettings {
    fn default() -> Self {
        IntelSettings {
            action: defaults::block(),
        }
    }
}

mod defaults {
    use super::BehaviourAction;

    pub fn block_secs() -> u64 {
        600
    }
    pub fn max_keys() -> usize {
        10_000
    }
    pub fn claim() -> String {
        "sub".into()
    }
    pub fn username_fields() -> Vec<String> {
        ["username", "user", "email", "login"]
            .map(String::from)
            .to_vec()
    }
    pub fn all_routes() -> String {
        "/**".into()
    }
    pub fn limit() -> BehaviourAction {
        BehaviourAction::Limit
    }
    pub fn block() -> BehaviourAction {
        BehaviourAction::Block
    }
    pub fn records_header() -> String {
        "x-total-count".into()
    }
    pub fn probe_paths() -> Vec<String> {
        [
            "/.env",
            "/.git/**",
            "/wp-admin/**",
            "/wp-login.php",
            "/phpmyadmin/**",
            "/.aws/**",
            "/server-status",
            "/actuator/**",
            "/.DS_Store",
            "/config.json",
        ]
        .map(String::from)
        .to_vec()
    }
    pub fn probe_weight() -> u64 {
        5
    }
}
