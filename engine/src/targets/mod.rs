//! Targets: the parts of a request that signatures look at, each named for findings and exceptions.

mod json;
mod multipart;
mod xml;

pub use json::{walk_json, JsonError};
pub use multipart::walk_multipart;
pub use xml::walk_xml;

use crate::normalize::Encoding;

/// Where a value came from. Signature rules declare which kinds they apply to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    Path,
    QueryName,
    QueryValue,
    Header,
    UserAgent,
    Cookie,
    BodyKey,
    BodyValue,
    /// A whole XML document, for rules about DOCTYPE and entities.
    BodyXml,
    /// A body we could not (or were not told to) parse.
    BodyRaw,
}

impl TargetKind {
    pub fn bit(self) -> u16 {
        1 << (self as u16)
    }

    /// How the value is encoded on the wire, for normalisation.
    pub fn encoding(self) -> Encoding {
        match self {
            Self::QueryName | Self::QueryValue | Self::Cookie => Encoding::Form,
            _ => Encoding::Plain,
        }
    }

    /// Prefix used in finding targets: `query:q`, `header:referer`, `body.json:note`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Path => "path",
            Self::QueryName => "query-name",
            Self::QueryValue => "query",
            Self::Header => "header",
            Self::UserAgent => "header",
            Self::Cookie => "cookie",
            Self::BodyKey => "body-key",
            Self::BodyValue => "body",
            Self::BodyXml => "body",
            Self::BodyRaw => "body",
        }
    }
}

/// A set of [`TargetKind`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scope(pub u16);

impl Scope {
    pub const fn of(kinds: &[TargetKind]) -> Scope {
        let mut bits = 0u16;
        let mut i = 0;
        while i < kinds.len() {
            bits |= 1 << (kinds[i] as u16);
            i += 1;
        }
        Scope(bits)
    }

    /// Every value an attacker controls, except whole XML documents (markup would look like XSS).
    pub const VALUES: Scope = Scope::of(&[
        TargetKind::Path,
        TargetKind::QueryName,
        TargetKind::QueryValue,
        TargetKind::Header,
        TargetKind::UserAgent,
        TargetKind::Cookie,
        TargetKind::BodyKey,
        TargetKind::BodyValue,
        TargetKind::BodyRaw,
    ]);
    pub const ALL: Scope = Scope(Scope::VALUES.0 | (1 << TargetKind::BodyXml as u16));

    pub fn contains(self, kind: TargetKind) -> bool {
        self.0 & kind.bit() != 0
    }
}

/// Splits `a=1&b=2` pairs (query strings, form bodies). Names and values stay raw; they
/// are decoded during normalisation.
pub fn walk_pairs<'a>(input: &'a [u8], mut visit: impl FnMut(&'a [u8], &'a [u8])) {
    for pair in input.split(|&b| b == b'&') {
        if pair.is_empty() {
            continue;
        }
        match pair.iter().position(|&b| b == b'=') {
            Some(eq) => visit(&pair[..eq], &pair[eq + 1..]),
            None => visit(pair, b""),
        }
    }
}

/// Splits a `Cookie` header into name/value pairs.
pub fn walk_cookies<'a>(header: &'a [u8], mut visit: impl FnMut(&'a [u8], &'a [u8])) {
    for part in header.split(|&b| b == b';') {
        let part = trim(part);
        if part.is_empty() {
            continue;
        }
        match part.iter().position(|&b| b == b'=') {
            Some(eq) => visit(trim(&part[..eq]), trim(&part[eq + 1..])),
            None => visit(b"", part),
        }
    }
}

pub fn trim(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &s[start..end]
}

/// The body formats we parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    Json,
    Form,
    Multipart,
    Xml,
    Text,
    /// Images, archives and other binary content: not inspected.
    Binary,
}

/// Chooses the body parser from `content-type`, sniffing when it is absent or generic.
pub fn body_format(content_type: Option<&[u8]>, body: &[u8]) -> BodyFormat {
    let ct = content_type
        .map(|c| c.to_ascii_lowercase())
        .unwrap_or_default();
    let essence = ct.split(|&b| b == b';').next().map(trim).unwrap_or(b"");
    let contains = |needle: &[u8]| essence.windows(needle.len()).any(|w| w == needle);
    if contains(b"json") {
        return BodyFormat::Json;
    }
    if essence == b"application/x-www-form-urlencoded" {
        return BodyFormat::Form;
    }
    if essence.starts_with(b"multipart/") {
        return BodyFormat::Multipart;
    }
    if contains(b"xml") {
        return BodyFormat::Xml;
    }
    let declared_binary = essence.starts_with(b"image/")
        || essence.starts_with(b"audio/")
        || essence.starts_with(b"video/")
        || essence == b"application/octet-stream"
        || essence == b"application/zip"
        || essence == b"application/pdf";
    let first = body.iter().copied().find(|b| !b.is_ascii_whitespace());
    if declared_binary {
        // Trust a binary type only when the bytes agree; attackers mislabel text.
        let looks_binary = body.iter().take(512).any(|&b| b == 0 || (b < 0x09));
        if looks_binary {
            return BodyFormat::Binary;
        }
    }
    match first {
        Some(b'{' | b'[') => BodyFormat::Json,
        Some(b'<') => BodyFormat::Xml,
        _ => BodyFormat::Text,
    }
}

/// The `boundary` parameter of a multipart content type.
pub fn multipart_boundary(content_type: &[u8]) -> Option<&[u8]> {
    content_type
        .split(|&b| b == b';')
        .skip(1)
        .find_map(|param| {
            let param = trim(param);
            let eq = param.iter().position(|&b| b == b'=')?;
            if !param[..eq].eq_ignore_ascii_case(b"boundary") {
                return None;
            }
            let v = trim(&param[eq + 1..]);
            let v = v
                .strip_prefix(b"\"")
                .and_then(|v| v.strip_suffix(b"\""))
                .unwrap_or(v);
            (!v.is_empty()).then_some(v)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_and_cookies() {
        let mut seen = Vec::new();
        walk_pairs(b"a=1&&b&c=x=y", |n, v| seen.push((n.to_vec(), v.to_vec())));
        assert_eq!(
            seen,
            vec![
                (b"a".to_vec(), b"1".to_vec()),
                (b"b".to_vec(), b"".to_vec()),
                (b"c".to_vec(), b"x=y".to_vec())
            ]
        );
        let mut cookies = Vec::new();
        walk_cookies(b"session=abc; theme=dark;flag", |n, v| {
            cookies.push((n.to_vec(), v.to_vec()))
        });
        assert_eq!(cookies.len(), 3);
        assert_eq!(cookies[1], (b"theme".to_vec(), b"dark".to_vec()));
    }

    #[test]
    fn formats() {
        assert_eq!(
            body_format(Some(b"application/json; charset=utf-8"), b"{}"),
            BodyFormat::Json
        );
        assert_eq!(
            body_format(Some(b"application/vnd.api+json"), b"{}"),
            BodyFormat::Json
        );
        assert_eq!(
            body_format(Some(b"application/soap+xml"), b"<a/>"),
            BodyFormat::Xml
        );
        assert_eq!(
            body_format(None, b"  <?xml version='1.0'?>"),
            BodyFormat::Xml
        );
        assert_eq!(
            body_format(Some(b"text/plain"), b"{\"a\":1}"),
            BodyFormat::Json
        );
        assert_eq!(
            body_format(Some(b"image/png"), b"\x89PNG\r\n\x1a\n\0\0"),
            BodyFormat::Binary
        );
        assert_eq!(
            body_format(Some(b"image/png"), b"<script>alert(1)</script>"),
            BodyFormat::Xml,
            "a mislabelled text body is still inspected"
        );
    }

    #[test]
    fn boundary() {
        assert_eq!(
            multipart_boundary(b"multipart/form-data; boundary=\"abc\""),
            Some(&b"abc"[..])
        );
        assert_eq!(multipart_boundary(b"multipart/form-data"), None);
    }
}
