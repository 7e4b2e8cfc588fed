//! The request path: build targets, normalise, match, score, decide.

use std::borrow::Cow;

use crate::compiled::{Check, CompiledPolicy, ExceptionRule, RuleInfo};
use crate::detect::protocol;
use crate::jwt::{token_shape, JwtProblem};
use crate::model::{Mode, RuleAction, Severity};
use crate::normalize::{normalize, normalize_path, percent_decode, Encoding};
use crate::targets::{self, BodyFormat, TargetKind};

/// The request as the engine sees it; the adapter fills it with as few host calls as it can.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The request target as sent: path and query, still percent-encoded.
    pub target: &'a [u8],
    /// Header names in lower case (HTTP/2 and Envoy guarantee this), values as bytes.
    pub headers: &'a [(&'a str, &'a [u8])],
    /// The body up to the policy's limit, if any.
    pub body: Option<&'a [u8]>,
    /// The body was longer than the limit; only the first part is in `body`.
    pub body_truncated: bool,
}

/// What to do with the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// No findings.
    Allow,
    /// Findings recorded, request passes (monitor mode, monitor rules, or below the threshold).
    Monitor,
    /// Answer 403.
    Block,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allow => "allow",
            Outcome::Monitor => "monitor",
            Outcome::Block => "block",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding<'p> {
    pub rule: &'p RuleInfo,
    /// Where it matched: `path`, `query:q`, `header:referer`, `body:note`, ...
    pub target: String,
    /// The matched text after normalisation, truncated, control characters escaped.
    pub fragment: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict<'p> {
    pub outcome: Outcome,
    /// Sum of the severity scores of findings whose action is `block`.
    pub score: u32,
    pub findings: Vec<Finding<'p>>,
    /// The rule reported to the client when blocked: the most severe blocking finding.
    pub blocking_rule: Option<&'p RuleInfo>,
    /// The blocking score reached the threshold. With `outcome` other than `Block` (monitor
    /// mode), the request would have been blocked in enforce mode.
    pub would_block: bool,
    pub body_truncated: bool,
}

/// Score of one finding of a given severity (as in OWASP CRS: critical 5, error 4, ...).
pub fn severity_score(severity: Severity) -> u32 {
    match severity {
        Severity::Critical => 5,
        Severity::High => 4,
        Severity::Medium => 3,
        Severity::Low => 2,
    }
}

/// Matched fragments longer than this are cut: enough to recognise, too short to leak data.
pub const FRAGMENT_MAX: usize = 64;
const TARGET_NAME_MAX: usize = 64;

/// Headers that carry no attacker-chosen text worth matching, or are checked separately.
const SKIPPED_HEADERS: &[&str] = &[
    "accept-encoding",
    "content-length",
    "x-request-id",
    "x-vigil-request-id",
    "x-forwarded-proto",
    "connection",
    "te",
    "cookie",
];

impl CompiledPolicy {
    /// Inspects one request. `now_unix_secs` is called only when a check needs the time.
    pub fn inspect<'p>(
        &'p self,
        request: &Request<'_>,
        now_unix_secs: &dyn Fn() -> u64,
    ) -> Verdict<'p> {
        let mut run = Inspection::new(self, request);
        run.signatures(request);
        run.header_checks(request, now_unix_secs);
        run.protocol(request);
        run.finish(request)
    }
}

struct Inspection<'p, 'r> {
    policy: &'p CompiledPolicy,
    findings: Vec<Finding<'p>>,
    fired: Vec<u64>,
    candidates: Vec<u64>,
    raw_path: &'r [u8],
    route_path: Option<Vec<u8>>,
}

impl<'p, 'r> Inspection<'p, 'r> {
    fn new(policy: &'p CompiledPolicy, request: &Request<'r>) -> Self {
        let raw_path = request.target.split(|&b| b == b'?').next().unwrap_or(b"");
        Inspection {
            policy,
            findings: Vec::new(),
            fired: vec![0; policy.rules.len().div_ceil(64)],
            candidates: Vec::new(),
            raw_path,
            route_path: None,
        }
    }

    /// The decoded, dot-resolved path for route matching, computed once and only if needed.
    fn route_path(&mut self) -> &[u8] {
        if self.route_path.is_none() {
            let mut decoded = Vec::with_capacity(self.raw_path.len());
            percent_decode(self.raw_path, false, &mut decoded);
            self.route_path = Some(normalize_path(&decoded));
        }
        self.route_path.as_deref().unwrap_or(b"/")
    }

    fn signatures(&mut self, request: &Request<'_>) {
        let target = request.target;
        let (path, query) = match target.iter().position(|&b| b == b'?') {
            Some(q) => (&target[..q], &target[q + 1..]),
            None => (target, &b""[..]),
        };
        self.scan(TargetKind::Path, b"", path, Encoding::Plain);
        targets::walk_pairs(query, |name, value| {
            self.scan(TargetKind::QueryName, name, name, Encoding::Form);
            self.scan(TargetKind::QueryValue, name, value, Encoding::Form);
        });
        for &(name, value) in request.headers {
            if name.starts_with(':') || SKIPPED_HEADERS.contains(&name) {
                if name == "cookie" {
                    targets::walk_cookies(value, |n, v| {
                        self.scan(TargetKind::Cookie, n, v, Encoding::Form)
                    });
                }
                continue;
            }
            let kind = if name == "user-agent" {
                TargetKind::UserAgent
            } else {
                TargetKind::Header
            };
            self.scan(kind, name.as_bytes(), value, Encoding::Plain);
        }
        if let Some(body) = request.body {
            self.body(request, body);
        }
    }

    fn body(&mut self, request: &Request<'_>, body: &[u8]) {
        let content_type = header(request, "content-type");
        match targets::body_format(content_type, body) {
            BodyFormat::Json => {
                let walked = targets::walk_json(body, |is_key, name, value| {
                    let kind = if is_key {
                        TargetKind::BodyKey
                    } else {
                        TargetKind::BodyValue
                    };
                    self.scan(kind, name, value, Encoding::Plain);
                });
                // Truncated or malformed JSON: what was walked counts, and the raw text is checked too.
                if walked.is_err() {
                    self.scan(TargetKind::BodyRaw, b"", body, Encoding::Plain);
                }
            }
            BodyFormat::Form => targets::walk_pairs(body, |name, value| {
                self.scan(TargetKind::BodyKey, name, name, Encoding::Form);
                self.scan(TargetKind::BodyValue, name, value, Encoding::Form);
            }),
            BodyFormat::Multipart => {
                let boundary = content_type.and_then(targets::multipart_boundary);
                match boundary {
                    Some(b) => targets::walk_multipart(body, b, |name, value| {
                        self.scan(TargetKind::BodyValue, name, value, Encoding::Plain)
                    }),
                    None => self.scan(TargetKind::BodyRaw, b"", body, Encoding::Plain),
                }
            }
            BodyFormat::Xml => {
                self.scan(TargetKind::BodyXml, b"", body, Encoding::Plain);
                targets::walk_xml(body, |name, value| {
                    self.scan(TargetKind::BodyValue, name, value, Encoding::Plain)
                });
            }
            BodyFormat::Text => self.scan(TargetKind::BodyRaw, b"", body, Encoding::Plain),
            BodyFormat::Binary => {}
        }
    }

    fn scan(&mut self, kind: TargetKind, name: &[u8], raw: &[u8], encoding: Encoding) {
        if raw.is_empty() {
            return;
        }
        let policy = self.policy;
        // Header values and names repeat across requests: their matches are remembered.
        let memo_tag = matches!(
            kind,
            TargetKind::Header
                | TargetKind::UserAgent
                | TargetKind::QueryName
                | TargetKind::BodyKey
        )
        .then(|| (kind as u8) << 1 | (encoding == Encoding::Form) as u8);
        // A key is scanned as its own name: the memo keeps it once, under a tag of its own.
        let (memo_tag, memo_name) = match memo_tag {
            Some(tag) if std::ptr::eq(name, raw) => (Some(tag | 0x80), &b""[..]),
            other => (other, name),
        };
        if let Some(tag) = memo_tag {
            let mut remembered = None;
            if policy
                .scan_memo
                .get(tag, memo_name, raw, |hits| remembered = Some(hits.clone()))
            {
                for (rule, matched) in remembered.unwrap_or_default() {
                    self.record(rule, kind, name, &matched);
                }
                return;
            }
        }
        let value = normalize(raw, encoding);
        let mut matches = Vec::new();
        policy
            .signatures
            .scan(kind, name, &value, &mut self.candidates, |m| {
                matches.push(m)
            });
        for m in &matches {
            self.record(m.rule, kind, name, &value[m.start..m.end]);
        }
        if let Some(tag) = memo_tag {
            let hits = matches
                .iter()
                .map(|m| (m.rule, value[m.start..m.end].to_vec()))
                .collect();
            policy.scan_memo.put(tag, memo_name, raw, hits);
        }
    }

    fn record(&mut self, rule: usize, kind: TargetKind, name: &[u8], matched: &[u8]) {
        let (word, bit) = (rule / 64, 1u64 << (rule % 64));
        if self.fired[word] & bit != 0 {
            return; // one finding per rule per request: a repeated payload is still one attack
        }
        let param = display_name(kind, name);
        if self.excepted(rule, &param) {
            return;
        }
        self.fired[word] |= bit;
        let target = match kind {
            TargetKind::Path => "path".to_owned(),
            TargetKind::BodyRaw | TargetKind::BodyXml => "body".to_owned(),
            _ => format!("{}:{}", kind.label(), param),
        };
        self.findings.push(Finding {
            rule: &self.policy.rules[rule],
            target,
            fragment: fragment(matched),
        });
    }

    fn excepted(&mut self, rule: usize, param: &str) -> bool {
        if self.policy.exceptions.is_empty() {
            return false;
        }
        let info = &self.policy.rules[rule];
        let policy = self.policy;
        let path = self.route_path().to_vec();
        policy.exceptions.iter().any(|e| {
            let rule_matches = match &e.rule {
                ExceptionRule::Any => true,
                ExceptionRule::Category(c) => *c == info.category,
                ExceptionRule::Id(id) => *id == info.id,
            };
            rule_matches
                && e.route.matches(&path)
                && e.param
                    .as_deref()
                    .is_none_or(|p| p.eq_ignore_ascii_case(param))
        })
    }

    fn header_checks(&mut self, request: &Request<'_>, now: &dyn Fn() -> u64) {
        let policy = self.policy;
        let limit = policy.document.limits.header_value_bytes as usize;
        if let Some(rule) = policy.check(Check::HeaderOversized) {
            if let Some(&(name, value)) = request.headers.iter().find(|(_, v)| v.len() > limit) {
                let note = format!("{} bytes", value.len());
                self.record(rule, TargetKind::Header, name.as_bytes(), note.as_bytes());
            }
        }
        let bearer = header(request, "authorization").and_then(|v| {
            let v = targets::trim(v);
            (v.len() > 7 && v[..7].eq_ignore_ascii_case(b"bearer ")).then(|| targets::trim(&v[7..]))
        });
        if let Some(token) = bearer {
            let mut shape = None;
            policy.token_memo.get(0, token, b"", |s| shape = Some(*s));
            let shape = shape.unwrap_or_else(|| {
                let decoded = token_shape(token);
                policy.token_memo.put(0, token, b"", decoded);
                decoded
            });
            let problem = shape.problem(now, policy.document.auth.jwt_leeway_secs);
            let check = match problem {
                Some(JwtProblem::AlgNone) => Some(Check::JwtAlgNone),
                Some(JwtProblem::Malformed) => Some(Check::JwtMalformed),
                Some(JwtProblem::Expired) => Some(Check::JwtExpired),
                None => None,
            };
            if let Some(rule) = check.and_then(|c| policy.check(c)) {
                let shown = &token[..token.len().min(24)];
                self.record(rule, TargetKind::Header, b"authorization", shown);
            }
        }
        if let Some(rule) = policy.check(Check::AuthMissing) {
            if !policy.routes.is_empty() && !has_credentials(policy, request) {
                let method = request.method;
                let path = self.route_path().to_vec();
                let protected = policy.routes.iter().any(|r| {
                    r.require_auth
                        && (r.methods.is_empty()
                            || r.methods.iter().any(|m| m.eq_ignore_ascii_case(method)))
                        && r.pattern.matches(&path)
                });
                if protected {
                    self.record(rule, TargetKind::Path, b"", b"no credentials");
                }
            }
        }
    }

    /// Request-level protocol checks (`detect::protocol`): method, overrides, framing headers.
    fn protocol(&mut self, request: &Request<'_>) {
        let policy = self.policy;
        protocol::check(request.method, request.target, request.headers, |p| {
            let rule = policy.protocol_base + p.rule;
            if policy.enabled[rule] {
                self.record(rule, TargetKind::Header, p.header.as_bytes(), p.evidence);
            }
        });
    }

    fn finish(self, request: &Request<'_>) -> Verdict<'p> {
        let mode = self.policy.document.mode;
        let blocking = || {
            self.findings
                .iter()
                .filter(|f| f.rule.action == RuleAction::Block)
        };
        let score: u32 = blocking().map(|f| severity_score(f.rule.severity)).sum();
        let over = score >= self.policy.document.anomaly_threshold;
        // The first of the most severe blocking findings: stable, and the strongest evidence.
        let blocking_rule = if over {
            blocking()
                .map(|f| f.rule)
                .fold(None, |best: Option<&RuleInfo>, r| match best {
                    Some(b) if b.severity >= r.severity => Some(b),
                    _ => Some(r),
                })
        } else {
            None
        };
        let outcome = if over && mode == Mode::Enforce {
            Outcome::Block
        } else if self.findings.is_empty() {
            Outcome::Allow
        } else {
            Outcome::Monitor
        };
        Verdict {
            outcome,
            score,
            blocking_rule,
            would_block: over,
            findings: self.findings,
            body_truncated: request.body_truncated,
        }
    }
}

fn header<'a>(request: &Request<'a>, name: &str) -> Option<&'a [u8]> {
    request
        .headers
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| *v)
}

fn has_credentials(policy: &CompiledPolicy, request: &Request<'_>) -> bool {
    request.headers.iter().any(|&(name, value)| {
        if value.is_empty() {
            return false;
        }
        if name == "authorization" || policy.api_key_headers.iter().any(|h| h == name) {
            return true;
        }
        if name == "cookie" {
            let mut found = false;
            targets::walk_cookies(value, |n, v| {
                found |= !v.is_empty()
                    && policy
                        .session_cookies
                        .iter()
                        .any(|c| n.eq_ignore_ascii_case(c.as_bytes()));
            });
            return found;
        }
        false
    })
}

/// A target name as people read it: decoded, lower-case for headers, bounded.
fn display_name(kind: TargetKind, name: &[u8]) -> String {
    let decoded: Cow<'_, [u8]> = match kind.encoding() {
        Encoding::Form => normalize(name, Encoding::Form),
        Encoding::Plain => Cow::Borrowed(name),
    };
    let s = String::from_utf8_lossy(&decoded[..decoded.len().min(TARGET_NAME_MAX)]);
    s.chars().filter(|c| !c.is_control()).collect()
}

/// The matched text, truncated on a character boundary, with control characters escaped.
fn fragment(matched: &[u8]) -> String {
    let text = String::from_utf8_lossy(matched);
    let mut out = String::with_capacity(FRAGMENT_MAX + 4);
    for c in text.chars() {
        if out.len() >= FRAGMENT_MAX {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}
