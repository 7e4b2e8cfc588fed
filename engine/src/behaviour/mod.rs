//! Behaviour detection: what one request cannot show but a series of them does (brute force,
//! credential stuffing, rate abuse, BOLA enumeration, bulk exfiltration, error spikes, scanners,
//! shared tokens), plus enforcement of dynamic blocks and reputation lists.
//!
//! The same [`BehaviourState`] runs at the edge (per worker, over its own traffic) and in the
//! control plane (over observations from every edge), so a threshold means the same thing in
//! both places. Time is always passed in.

mod address;
mod blocks;
mod compiled;
mod settings;
mod state;
mod table;
mod track;
mod window;

pub use address::{client_ip, parse_ip, AddressRange, RangeSet};
pub use blocks::{BlockEntry, BlockSet, IntelSet};
pub use compiled::CompiledBehaviour;
pub use settings::*;
pub use state::{Admission, BehaviourState};
pub use track::{fingerprint, ClaimLookup, Tracked};
pub use window::{DistinctWindow, SlidingCount, TokenBucket};

/// The detectors, with the stable names used in policies, stats and events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Detector {
    BruteForce,
    CredentialStuffing,
    RateAbuse,
    Bola,
    Exfiltration,
    ErrorSpike,
    Scanner,
    TokenSharing,
    /// An address on a loaded reputation list.
    Intel,
    /// A block pushed by the control plane (fleet detection or an analyst).
    Blocklist,
}

impl Detector {
    pub const ALL: [Detector; 10] = [
        Self::BruteForce,
        Self::CredentialStuffing,
        Self::RateAbuse,
        Self::Bola,
        Self::Exfiltration,
        Self::ErrorSpike,
        Self::Scanner,
        Self::TokenSharing,
        Self::Intel,
        Self::Blocklist,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::BruteForce => "brute_force",
            Self::CredentialStuffing => "credential_stuffing",
            Self::RateAbuse => "rate_abuse",
            Self::Bola => "bola",
            Self::Exfiltration => "exfiltration",
            Self::ErrorSpike => "error_spike",
            Self::Scanner => "scanner",
            Self::TokenSharing => "token_sharing",
            Self::Intel => "intel",
            Self::Blocklist => "blocklist",
        }
    }

    pub fn parse(s: &str) -> Option<Detector> {
        Self::ALL.into_iter().find(|d| d.as_str() == s)
    }

    /// Rule id used in events and exceptions: `behaviour.brute_force`.
    pub fn rule_id(self) -> String {
        format!("behaviour.{}", self.as_str())
    }
}

/// What a detection or block is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OffenderKind {
    Ip,
    Principal,
    Token,
    /// A route (error spikes): never blocked, only reported.
    Route,
}

impl OffenderKind {
    pub fn parse(s: &str) -> Option<OffenderKind> {
        [Self::Ip, Self::Principal, Self::Token, Self::Route]
            .into_iter()
            .find(|k| k.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ip => "ip",
            Self::Principal => "principal",
            Self::Token => "token",
            Self::Route => "route",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Offender {
    pub kind: OffenderKind,
    pub value: String,
}

/// A detector fired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detection {
    pub detector: Detector,
    pub offender: Offender,
    /// What was counted (failures, distinct ids, bytes, ...) and the threshold it reached.
    pub count: u64,
    pub threshold: u64,
    pub action: BehaviourAction,
    /// How long a `limit` or `block` lasts.
    pub block_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObservationKind {
    /// An answer from a login route: `subject` is the username, `status` the answer.
    Login,
    /// An object id touched on a BOLA route: `subject` is the id.
    Object,
    /// A response's size: `bytes`, `records`, `status`.
    Response,
    /// A 404, or a request for a probe path.
    NotFound,
    /// A token (`subject`, a fingerprint) seen from `ip`.
    Token,
}

impl ObservationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::Object => "object",
            Self::Response => "response",
            Self::NotFound => "not_found",
            Self::Token => "token",
        }
    }

    pub fn parse(s: &str) -> Option<ObservationKind> {
        [
            Self::Login,
            Self::Object,
            Self::Response,
            Self::NotFound,
            Self::Token,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// One fact behaviour detectors count. Edges derive them from request/response pairs and also
/// send them to the control plane, which feeds every edge's observations to its own state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub kind: ObservationKind,
    pub ip: String,
    pub principal: String,
    pub route: String,
    pub subject: String,
    pub status: u16,
    pub bytes: u64,
    pub records: u64,
    /// Worth sending to the control plane (the fleet view needs it; duplicates are not sent).
    pub forward: bool,
}
