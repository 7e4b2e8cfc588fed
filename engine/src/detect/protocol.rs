//! Protocol abuse seen in the request line and header fields as a whole: framing headers
//! that disagree (request smuggling), method and path overrides that route around access
//! control, Range headers that ask for the same bytes many times, charsets used to hide
//! payloads from inspection, forwarded-host headers carrying more than a host, methods an
//! API never serves, and headers that only scanners send. One pass over the headers.

use crate::model::{Category, Severity};

pub struct ProtocolRule {
    pub id: &'static str,
    pub category: Category,
    pub severity: Severity,
    pub description: &'static str,
}

const fn rule(id: &'static str, description: &'static str) -> ProtocolRule {
    ProtocolRule {
        id,
        category: Category::Protocol,
        severity: Severity::Critical,
        description,
    }
}

/// The rules, indexed by the constants below (their order is their index).
pub const RULES: &[ProtocolRule] = &[
    rule(
        "protocol-method-override",
        "a method override header or _method parameter that turns a safe request into a write, or asks for TRACE/CONNECT",
    ),
    rule(
        "protocol-path-override",
        "X-Original-URL / X-Rewrite-URL from a client: a path that bypasses front-end access rules",
    ),
    rule(
        "protocol-range-abuse",
        "a Range header with many ranges (resource exhaustion, CVE-2011-3192 style)",
    ),
    rule(
        "protocol-content-length",
        "a Content-Length that is not one decimal number, or several that disagree (request smuggling)",
    ),
    rule(
        "protocol-transfer-encoding",
        "a Transfer-Encoding other than a plain final `chunked`, repeated, or sent with Content-Length (request smuggling)",
    ),
    rule(
        "protocol-charset-evasion",
        "a body charset used to hide payloads from inspection (UTF-7, EBCDIC code pages, UTF-32)",
    ),
    rule(
        "protocol-forwarded-host",
        "a forwarded-host header that carries a path, quotes or markup (cache poisoning, password-reset poisoning)",
    ),
    rule(
        "protocol-method-unusual",
        "a method outside GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS (TRACE, TRACK, DEBUG, WebDAV probes)",
    ),
    ProtocolRule {
        id: "scanner-header",
        category: Category::Scanner,
        severity: Severity::Critical,
        description: "a header that only vulnerability scanners send",
    },
];

pub const METHOD_OVERRIDE: usize = 0;
pub const PATH_OVERRIDE: usize = 1;
pub const RANGE_ABUSE: usize = 2;
pub const CONTENT_LENGTH: usize = 3;
pub const TRANSFER_ENCODING: usize = 4;
pub const CHARSET_EVASION: usize = 5;
pub const FORWARDED_HOST: usize = 6;
pub const METHOD_UNUSUAL: usize = 7;
pub const SCANNER_HEADER: usize = 8;

/// One problem: the rule (an index into [`RULES`]), where (a header name, or `:method`, or
/// `_method`), and the evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Problem<'a> {
    pub rule: usize,
    pub header: &'a str,
    pub evidence: &'a [u8],
}

/// More ranges than this in one Range header is abuse; media players ask for one or two.
const MAX_RANGES: usize = 10;

/// Checks the method, target and headers (names in lower case).
pub fn check<'a>(
    method: &'a str,
    target: &'a [u8],
    headers: &'a [(&'a str, &'a [u8])],
    mut report: impl FnMut(Problem<'a>),
) {
    let safe_method = method.eq_ignore_ascii_case("GET") || method.eq_ignore_ascii_case("HEAD");
    if !is_standard_method(method) {
        report(Problem {
            rule: METHOD_UNUSUAL,
            header: ":method",
            evidence: method.as_bytes(),
        });
    }
    let mut content_length: Option<&[u8]> = None;
    let mut transfer_encoding = false;
    for &(name, value) in headers {
        match name {
            "x-http-method-override" | "x-http-method" | "x-method-override"
                if override_is_abuse(value, safe_method) =>
            {
                report(Problem {
                    rule: METHOD_OVERRIDE,
                    header: name,
                    evidence: value,
                })
            }
            "x-original-url" | "x-rewrite-url" | "x-override-url" | "x-original-uri"
                if !value.is_empty() =>
            {
                report(Problem {
                    rule: PATH_OVERRIDE,
                    header: name,
                    evidence: value,
                })
            }
            "range" | "request-range"
                if value.iter().filter(|&&b| b == b',').count() >= MAX_RANGES =>
            {
                report(Problem {
                    rule: RANGE_ABUSE,
                    header: name,
                    evidence: value,
                })
            }
            "content-length" => {
                let v = crate::targets::trim(value);
                let number = !v.is_empty() && v.len() <= 19 && v.iter().all(u8::is_ascii_digit);
                let disagrees = content_length.is_some_and(|first| first != v);
                if !number || disagrees {
                    report(Problem {
                        rule: CONTENT_LENGTH,
                        header: name,
                        evidence: value,
                    });
                }
                content_length = Some(v);
            }
            "transfer-encoding" => {
                if transfer_encoding || !plain_chunked(value) {
                    report(Problem {
                        rule: TRANSFER_ENCODING,
                        header: name,
                        evidence: value,
                    });
                }
                transfer_encoding = true;
            }
            "content-type" if evasive_charset(value) => report(Problem {
                rule: CHARSET_EVASION,
                header: name,
                evidence: value,
            }),
            "x-forwarded-host" | "x-host" | "x-forwarded-server" | "x-http-host-override"
                if !host_list(value) =>
            {
                report(Problem {
                    rule: FORWARDED_HOST,
                    header: name,
                    evidence: value,
                })
            }
            _ if scanner_header(name) => report(Problem {
                rule: SCANNER_HEADER,
                header: name,
                evidence: name.as_bytes(),
            }),
            _ => {}
        }
    }
    if transfer_encoding && content_length.is_some() {
        report(Problem {
            rule: TRANSFER_ENCODING,
            header: "transfer-encoding",
            evidence: b"with content-length",
        });
    }
    if safe_method {
        if let Some(value) = query_method(target) {
            if override_is_abuse(value, true) {
                report(Problem {
                    rule: METHOD_OVERRIDE,
                    header: "_method",
                    evidence: value,
                });
            }
        }
    }
}

fn is_standard_method(method: &str) -> bool {
    ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
        .iter()
        .any(|m| method.eq_ignore_ascii_case(m))
}

/// An override is abuse when it asks for a method that reflects or tunnels (TRACE, TRACK,
/// CONNECT, DEBUG) or turns a GET/HEAD, which links and image tags can trigger, into a write.
/// POST with `X-HTTP-Method-Override: PATCH` is how some clients work and passes.
fn override_is_abuse(value: &[u8], safe_method: bool) -> bool {
    let v = crate::targets::trim(value);
    if v.is_empty() {
        return false;
    }
    let reflects = ["TRACE", "TRACK", "CONNECT", "DEBUG"]
        .iter()
        .any(|m| v.eq_ignore_ascii_case(m.as_bytes()));
    let harmless = v.eq_ignore_ascii_case(b"GET") || v.eq_ignore_ascii_case(b"HEAD");
    reflects || (safe_method && !harmless)
}

/// The `_method` query parameter (Rails, Laravel, Express method-override), undecoded.
fn query_method(target: &[u8]) -> Option<&[u8]> {
    let q = memchr::memchr(b'?', target)?;
    target[q + 1..]
        .split(|&b| b == b'&')
        .find_map(|pair| pair.strip_prefix(b"_method="))
}

/// `chunked`, optionally after other known codings: anything else is how smuggling requests
/// make two parsers disagree (`xchunked`, `chunked, identity`, `chunk`).
fn plain_chunked(value: &[u8]) -> bool {
    let mut codings = value.split(|&b| b == b',').map(crate::targets::trim);
    let Some(last) = codings.next_back() else {
        return false;
    };
    last == b"chunked"
        && codings.all(|c| matches!(c, b"gzip" | b"deflate" | b"compress" | b"br" | b"x-gzip"))
}

/// Charsets that WAF evasion uses: UTF-7 (`+ADw-script`), EBCDIC code pages, UTF-32.
fn evasive_charset(content_type: &[u8]) -> bool {
    let Some(at) = find_ci(content_type, b"charset=") else {
        return false;
    };
    let rest = &content_type[at + 8..];
    let end = rest
        .iter()
        .position(|&b| b == b';' || b == b',' || b.is_ascii_whitespace())
        .unwrap_or(rest.len());
    let cs = rest[..end]
        .strip_prefix(b"\"")
        .unwrap_or(&rest[..end])
        .strip_suffix(b"\"")
        .unwrap_or(&rest[..end]);
    let starts = |p: &[u8]| cs.len() >= p.len() && cs[..p.len()].eq_ignore_ascii_case(p);
    starts(b"utf-7")
        || starts(b"utf7")
        || starts(b"x-utf-7")
        || starts(b"unicode-1-1-utf-7")
        || starts(b"utf-32")
        || starts(b"ucs-4")
        || starts(b"ebcdic")
        || starts(b"ibm0")
        || starts(b"ibm2")
        || starts(b"ibm4")
        || starts(b"ibm5")
        || starts(b"ibm8")
        || starts(b"ibm1")
        || starts(b"cp0")
        || starts(b"cp500")
        || starts(b"cp875")
        || starts(b"cp1026")
        || starts(b"cp114")
}

/// A comma-separated list of `host[:port]` (names, IPv4, bracketed IPv6).
fn host_list(value: &[u8]) -> bool {
    value.split(|&b| b == b',').all(|h| {
        let h = crate::targets::trim(h);
        !h.is_empty()
            && h.len() <= 255
            && h.iter().all(|&b| {
                b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':' | b'[' | b']')
            })
    })
}

fn scanner_header(name: &str) -> bool {
    name.starts_with("acunetix-")
        || matches!(
            name,
            "x-wipp" | "x-scanner" | "x-ratproxy-loop" | "x-scan-memo" | "x-request-memo"
        )
}

fn find_ci(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(method: &str, target: &str, headers: &[(&str, &str)]) -> Vec<&'static str> {
        let h: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (*n, v.as_bytes())).collect();
        let mut out = Vec::new();
        check(method, target.as_bytes(), &h, |p| {
            out.push(RULES[p.rule].id)
        });
        out
    }

    #[test]
    fn overrides() {
        assert_eq!(
            problems("GET", "/a", &[("x-http-method-override", "DELETE")]),
            ["protocol-method-override"]
        );
        assert_eq!(
            problems("POST", "/a", &[("x-http-method", "TRACE")]),
            ["protocol-method-override"]
        );
        assert_eq!(
            problems("GET", "/admin/users?_method=DELETE&id=3", &[]),
            ["protocol-method-override"]
        );
        assert_eq!(
            problems("GET", "/", &[("x-original-url", "/admin")]),
            ["protocol-path-override"]
        );
        // How Google-style clients tunnel PATCH: fine.
        assert!(problems("POST", "/a", &[("x-http-method-override", "PATCH")]).is_empty());
        assert!(problems("POST", "/a?_method=PUT", &[]).is_empty());
        assert!(problems("GET", "/a", &[("x-http-method-override", "GET")]).is_empty());
    }

    #[test]
    fn framing() {
        assert_eq!(
            problems("POST", "/", &[("content-length", "5, 5")]),
            ["protocol-content-length"]
        );
        assert_eq!(
            problems(
                "POST",
                "/",
                &[("content-length", "5"), ("content-length", "7")]
            ),
            ["protocol-content-length"]
        );
        assert_eq!(
            problems("POST", "/", &[("transfer-encoding", "chunked, identity")]),
            ["protocol-transfer-encoding"]
        );
        assert_eq!(
            problems("POST", "/", &[("transfer-encoding", "xchunked")]),
            ["protocol-transfer-encoding"]
        );
        assert_eq!(
            problems(
                "POST",
                "/",
                &[("content-length", "4"), ("transfer-encoding", "chunked")]
            ),
            ["protocol-transfer-encoding"]
        );
        assert!(problems("POST", "/", &[("content-length", "42")]).is_empty());
        assert!(problems("POST", "/", &[("transfer-encoding", "chunked")]).is_empty());
        assert!(problems("POST", "/", &[("transfer-encoding", "gzip, chunked")]).is_empty());
    }

    #[test]
    fn ranges_charsets_hosts_methods_scanners() {
        let many = format!("bytes={}", ["0-1"; 12].join(","));
        assert_eq!(
            problems("GET", "/v.mp4", &[("range", &many)]),
            ["protocol-range-abuse"]
        );
        assert!(problems("GET", "/v.mp4", &[("range", "bytes=0-1023,2048-4095")]).is_empty());
        for cs in [
            "utf-7",
            "UTF-7",
            "ibm037",
            "IBM500",
            "cp875",
            "utf-32le",
            "\"utf-7\"",
        ] {
            let ct = format!("application/x-www-form-urlencoded; charset={cs}");
            assert_eq!(
                problems("POST", "/", &[("content-type", &ct)]),
                ["protocol-charset-evasion"],
                "{cs}"
            );
        }
        for cs in [
            "utf-8",
            "iso-8859-1",
            "windows-1252",
            "Shift_JIS",
            "us-ascii",
        ] {
            let ct = format!("text/html; charset={cs}");
            assert!(
                problems("POST", "/", &[("content-type", &ct)]).is_empty(),
                "{cs}"
            );
        }
        assert_eq!(
            problems("GET", "/", &[("x-forwarded-host", "x.example/evil?")]),
            ["protocol-forwarded-host"]
        );
        assert_eq!(
            problems("GET", "/", &[("x-forwarded-host", "a\"><script>")]),
            ["protocol-forwarded-host"]
        );
        assert!(problems(
            "GET",
            "/",
            &[("x-forwarded-host", "shop.example.com:8443, edge-1.internal")]
        )
        .is_empty());
        assert_eq!(problems("TRACE", "/", &[]), ["protocol-method-unusual"]);
        assert_eq!(problems("PROPFIND", "/", &[]), ["protocol-method-unusual"]);
        assert!(problems("OPTIONS", "/", &[]).is_empty());
        assert!(problems("patch", "/", &[]).is_empty());
        assert_eq!(
            problems("GET", "/", &[("acunetix-aspect", "enabled")]),
            ["scanner-header"]
        );
    }
}
