//! Bearer-token authorisation for every gRPC call, decided in one place by method path.
//!
//! | method                                   | who may call      |
//! | ---------------------------------------- | ----------------- |
//! | `vigil.v1.RuleService/*`, `EventService/*` | node, admin     |
//! | `vigil.v1.AdminService/PushPolicy`, `Rollback` | admin       |
//! | `vigil.v1.AdminService/AckAlert`, `SilenceAlerts` | admin    |
//! | other `vigil.v1.AdminService/*`          | viewer, admin     |
//! | anything else                            | admin             |
//!
//! A missing or unknown token is `Unauthenticated`; a valid token without the right is
//! `PermissionDenied`. Tokens are compared by SHA-256 digest in constant time, against every
//! configured token, so neither the content nor the position of a match leaks through timing.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use sha2::{Digest, Sha256};
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};

use super::metrics::Metrics;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    Viewer,
    Node,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Viewer => "viewer",
            Role::Node => "node",
        }
    }
}

/// Who may call a method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Edges (and admins): policy stream, status, events.
    Edge,
    /// Admins only: changes the current policy.
    Write,
    /// Viewers and admins: reads.
    Read,
}

impl Access {
    pub fn allows(self, role: Role) -> bool {
        matches!(
            (self, role),
            (_, Role::Admin) | (Access::Edge, Role::Node) | (Access::Read, Role::Viewer)
        )
    }
}

/// The access a gRPC method path (`/package.Service/Method`) needs.
pub fn required_access(path: &str) -> Access {
    let path = path.strip_prefix('/').unwrap_or(path);
    let (service, method) = path.split_once('/').unwrap_or((path, ""));
    match service {
        "vigil.v1.RuleService" | "vigil.v1.EventService" => Access::Edge,
        "vigil.v1.AdminService" => match method {
            "PushPolicy" | "Rollback" => Access::Write,
            // Fleet response: blocks and reputation lists change what every edge enforces.
            "AddBlock" | "RemoveBlock" | "LoadIntel" => Access::Write,
            "AckAlert" | "SilenceAlerts" => Access::Write,
            _ => Access::Read,
        },
        _ => Access::Write,
    }
}

/// The configured tokens, kept only as digests, each with a name for the audit trail.
#[derive(Debug, Default)]
pub struct Tokens {
    entries: Vec<([u8; 32], Role, Arc<str>)>,
}

/// Who made a call: the name of the token presented (`admin#1`, or a token file's stem).
/// Set next to [`Role`] as a request extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor(pub Arc<str>);

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // black_box keeps the optimiser from turning the fold into an early-exit comparison.
    std::hint::black_box(diff) == 0
}

impl Tokens {
    pub fn add(&mut self, token: &str, role: Role, name: &str) {
        self.entries.push((digest(token), role, Arc::from(name)));
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The role of a presented token; every entry is compared, whatever matches.
    pub fn role_of(&self, presented: &str) -> Option<Role> {
        self.identify(presented).map(|(role, _)| role)
    }

    /// The role and name of a presented token; every entry is compared, whatever matches.
    pub fn identify(&self, presented: &str) -> Option<(Role, Arc<str>)> {
        let presented = digest(presented);
        let mut found = None;
        for (d, role, name) in &self.entries {
            if same(d, &presented) && found.is_none() {
                found = Some((*role, Arc::clone(name)));
            }
        }
        found
    }
}

/// Why a call was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    MissingToken,
    MalformedHeader,
    UnknownToken,
    Forbidden { role: Role, path: String },
}

impl Refusal {
    pub fn reason(&self) -> String {
        match self {
            Refusal::MissingToken => "missing `authorization: Bearer <token>` metadata".into(),
            Refusal::MalformedHeader => "`authorization` metadata is not `Bearer <token>`".into(),
            Refusal::UnknownToken => "unknown token".into(),
            Refusal::Forbidden { role, path } => {
                format!("a {} token may not call {path}", role.as_str())
            }
        }
    }

    pub fn status(&self) -> tonic::Status {
        match self {
            Refusal::Forbidden { .. } => tonic::Status::permission_denied(self.reason()),
            _ => tonic::Status::unauthenticated(self.reason()),
        }
    }
}

/// Decides one call from its path and `authorization` header value.
#[cfg(test)]
pub fn authorize(
    tokens: &Tokens,
    path: &str,
    authorization: Option<&[u8]>,
) -> Result<Role, Refusal> {
    identify(tokens, path, authorization).map(|(role, _)| role)
}

/// [`authorize`], also naming the token.
pub fn identify(
    tokens: &Tokens,
    path: &str,
    authorization: Option<&[u8]>,
) -> Result<(Role, Arc<str>), Refusal> {
    let header = authorization.ok_or(Refusal::MissingToken)?;
    let header = std::str::from_utf8(header).map_err(|_| Refusal::MalformedHeader)?;
    let (scheme, token) = header
        .trim()
        .split_once(' ')
        .ok_or(Refusal::MalformedHeader)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Refusal::MalformedHeader);
    }
    let (role, name) = tokens.identify(token.trim()).ok_or(Refusal::UnknownToken)?;
    if required_access(path).allows(role) {
        Ok((role, name))
    } else {
        Err(Refusal::Forbidden {
            role,
            path: path.trim_start_matches('/').to_owned(),
        })
    }
}

/// Tower layer that authorises every request before it reaches a service, and hands the
/// caller's [`Role`] to the handler as a request extension.
#[derive(Clone)]
pub struct AuthLayer {
    tokens: Arc<Tokens>,
    metrics: Arc<Metrics>,
}

impl AuthLayer {
    pub fn new(tokens: Arc<Tokens>, metrics: Arc<Metrics>) -> AuthLayer {
        AuthLayer { tokens, metrics }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = Authorized<S>;

    fn layer(&self, inner: S) -> Authorized<S> {
        Authorized {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Authorized<S> {
    inner: S,
    layer: AuthLayer,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

fn peer<B>(request: &http::Request<B>) -> String {
    let ext = request.extensions();
    ext.get::<TcpConnectInfo>()
        .and_then(TcpConnectInfo::remote_addr)
        .or_else(|| {
            ext.get::<TlsConnectInfo<TcpConnectInfo>>()
                .and_then(|i| i.get_ref().remote_addr())
        })
        .map(|a| a.to_string())
        .unwrap_or_else(|| "unknown".into())
}

impl<S, B> tower::Service<http::Request<B>> for Authorized<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let path = request.uri().path().to_owned();
        let decision = identify(
            &self.layer.tokens,
            &path,
            request
                .headers()
                .get(http::header::AUTHORIZATION)
                .map(|v| v.as_bytes()),
        );
        match decision {
            Ok((role, name)) => {
                request.extensions_mut().insert(role);
                request.extensions_mut().insert(Actor(name));
                // The service that was polled ready is the one that must take the call.
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                Box::pin(inner.call(request))
            }
            Err(refusal) => {
                self.layer.metrics.auth_failures.inc();
                tracing::warn!(
                    method = %path,
                    peer = %peer(&request),
                    reason = %refusal.reason(),
                    "refused call"
                );
                let response = refusal.status().into_http();
                Box::pin(async move { Ok(response) })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        let mut t = Tokens::default();
        t.add("admin-token", Role::Admin, "admin#1");
        t.add("viewer-token", Role::Viewer, "viewer#1");
        t.add("node-token", Role::Node, "node#1");
        t
    }

    #[test]
    fn roles_per_method() {
        let t = tokens();
        let call = |path: &str, token: &str| {
            let header = format!("Bearer {token}");
            authorize(&t, path, Some(header.as_bytes()))
        };
        let edge = [
            "/vigil.v1.RuleService/Watch",
            "/vigil.v1.RuleService/ReportStatus",
            "/vigil.v1.EventService/Report",
        ];
        for path in edge {
            assert_eq!(call(path, "node-token"), Ok(Role::Node), "{path}");
            assert_eq!(call(path, "admin-token"), Ok(Role::Admin), "{path}");
            assert!(matches!(
                call(path, "viewer-token"),
                Err(Refusal::Forbidden { .. })
            ));
        }
        for path in [
            "/vigil.v1.AdminService/PushPolicy",
            "/vigil.v1.AdminService/Rollback",
            "/vigil.v1.AdminService/AddBlock",
            "/vigil.v1.AdminService/RemoveBlock",
            "/vigil.v1.AdminService/LoadIntel",
            "/vigil.v1.AdminService/AckAlert",
            "/vigil.v1.AdminService/SilenceAlerts",
        ] {
            assert_eq!(call(path, "admin-token"), Ok(Role::Admin));
            assert!(matches!(
                call(path, "viewer-token"),
                Err(Refusal::Forbidden { .. })
            ));
            assert!(matches!(
                call(path, "node-token"),
                Err(Refusal::Forbidden { .. })
            ));
        }
        for method in [
            "ListPolicies",
            "GetPolicy",
            "QueryEvents",
            "TailEvents",
            "ListNodes",
            "ListBlocks",
            "ListIntel",
            "ListAudit",
            "ListAlerts",
        ] {
            let path = format!("/vigil.v1.AdminService/{method}");
            assert_eq!(call(&path, "viewer-token"), Ok(Role::Viewer));
            assert_eq!(call(&path, "admin-token"), Ok(Role::Admin));
            assert!(matches!(
                call(&path, "node-token"),
                Err(Refusal::Forbidden { .. })
            ));
        }
        assert!(matches!(
            call("/grpc.reflection.v1.ServerReflection/X", "viewer-token"),
            Err(Refusal::Forbidden { .. })
        ));
    }

    #[test]
    fn bad_credentials_are_unauthenticated() {
        let t = tokens();
        let path = "/vigil.v1.AdminService/ListPolicies";
        assert_eq!(authorize(&t, path, None), Err(Refusal::MissingToken));
        assert_eq!(
            authorize(&t, path, Some(b"Bearer nope")),
            Err(Refusal::UnknownToken)
        );
        assert_eq!(
            authorize(&t, path, Some(b"Basic dmlld2VyLXRva2Vu")),
            Err(Refusal::MalformedHeader)
        );
        assert_eq!(
            authorize(&t, path, Some(b"bearer viewer-token")),
            Ok(Role::Viewer)
        );
        assert_eq!(
            identify(&t, path, Some(b"Bearer admin-token")).map(|(_, n)| n.to_string()),
            Ok("admin#1".to_string())
        );
        assert_eq!(
            Refusal::UnknownToken.status().code(),
            tonic::Code::Unauthenticated
        );
        let forbidden = Refusal::Forbidden {
            role: Role::Viewer,
            path: "x".into(),
        };
        assert_eq!(forbidden.status().code(), tonic::Code::PermissionDenied);
    }
}
