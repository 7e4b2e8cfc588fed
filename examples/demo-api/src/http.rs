//! A small, strict HTTP/1.1 server-side codec.
//!
//! Requests are read from a [`BufRead`] in two steps ([`read_head`], then [`read_body`]) so
//! the connection loop can answer `Expect: 100-continue` in between. Everything here works
//! on untrusted bytes and reports problems as [`ReadError`] values instead of panicking.

use std::fmt::Write as _;
use std::io::{self, BufRead, Read, Write};

/// Limit on the request line plus header lines (and, separately, chunked trailers).
pub const MAX_HEAD: usize = 64 * 1024;
/// Limit on a decoded request body.
pub const MAX_BODY: usize = 8 * 1024 * 1024;
/// Limit on one chunk-size line.
const MAX_CHUNK_LINE: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

/// How the body of a request is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    Empty,
    Length(usize),
    Chunked,
}

/// Request line and headers.
#[derive(Debug, Clone)]
pub struct Head {
    pub method: String,
    /// The request target exactly as received.
    pub target: Vec<u8>,
    pub version: Version,
    /// Header names lower-cased; values with surrounding whitespace trimmed.
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: BodyKind,
    /// Whether the connection may be reused after this request.
    pub keep_alive: bool,
    /// `Expect: 100-continue` was sent (HTTP/1.1 only).
    pub expect_continue: bool,
}

impl Head {
    /// The first value of header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// The first value of header `name` as text (invalid UTF-8 replaced).
    pub fn header_str(&self, name: &str) -> Option<String> {
        self.header(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// Path and query of the target (an absolute-form target has its scheme and
    /// authority removed), split at the first `?`.
    pub fn path_and_query(&self) -> (&[u8], Option<&[u8]>) {
        let mut t = self.target.as_slice();
        for scheme in [&b"http://"[..], &b"https://"[..]] {
            if t.len() >= scheme.len() && t[..scheme.len()].eq_ignore_ascii_case(scheme) {
                let rest = &t[scheme.len()..];
                t = match rest.iter().position(|&b| b == b'/' || b == b'?') {
                    Some(i) => &rest[i..],
                    None => b"/",
                };
                break;
            }
        }
        match t.iter().position(|&b| b == b'?') {
            Some(i) => (&t[..i], Some(&t[i + 1..])),
            None => (t, None),
        }
    }
}

/// A complete request.
#[derive(Debug, Clone)]
pub struct Request {
    pub head: Head,
    pub body: Vec<u8>,
}

/// Why a request could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// Socket error (including read timeouts): close without answering.
    Io,
    /// The peer closed the connection in the middle of a request: close.
    Incomplete,
    /// Malformed request: answer 400 and close.
    Bad(&'static str),
    /// Request line + headers (or trailers) over [`MAX_HEAD`]: 431 and close.
    HeadTooLarge,
    /// Body over [`MAX_BODY`]: 413 and close.
    BodyTooLarge,
    /// An HTTP version other than 1.0/1.1: 505 and close.
    Version,
    /// A transfer coding other than `chunked`: 501 and close.
    UnsupportedCoding,
}

impl ReadError {
    /// The status to answer with, if the peer should get an answer at all.
    pub fn status(&self) -> Option<u16> {
        match self {
            ReadError::Io | ReadError::Incomplete => None,
            ReadError::Bad(_) => Some(400),
            ReadError::HeadTooLarge => Some(431),
            ReadError::BodyTooLarge => Some(413),
            ReadError::Version => Some(505),
            ReadError::UnsupportedCoding => Some(501),
        }
    }

    pub fn message(&self) -> &'static str {
        match self {
            ReadError::Io | ReadError::Incomplete => "connection error",
            ReadError::Bad(m) => m,
            ReadError::HeadTooLarge => "request header fields too large",
            ReadError::BodyTooLarge => "request body too large",
            ReadError::Version => "http version not supported",
            ReadError::UnsupportedCoding => "unsupported transfer-encoding",
        }
    }
}

/// Reads one line terminated by LF (a preceding CR is removed), charging its length to
/// `budget`. `Ok(None)` means EOF before any byte of the line.
fn read_line<R: BufRead>(
    r: &mut R,
    budget: &mut usize,
    too_long: fn() -> ReadError,
) -> Result<Option<Vec<u8>>, ReadError> {
    let mut line = Vec::new();
    loop {
        let buf = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return Err(ReadError::Io),
        };
        if buf.is_empty() {
            return if line.is_empty() {
                Ok(None)
            } else {
                Err(ReadError::Incomplete)
            };
        }
        let (take, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        if take > *budget {
            return Err(too_long());
        }
        *budget -= take;
        line.extend_from_slice(&buf[..take]);
        r.consume(take);
        if done {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(Some(line));
        }
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn trim_ows(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// Comma-separated list elements of all header lines called `name`, lower-cased.
fn header_tokens(headers: &[(String, Vec<u8>)], name: &str) -> Vec<String> {
    headers
        .iter()
        .filter(|(n, _)| n == name)
        .flat_map(|(_, v)| v.split(|&b| b == b','))
        .map(|t| String::from_utf8_lossy(trim_ows(t)).to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

fn parse_request_line(line: &[u8]) -> Result<(String, Vec<u8>, Version), ReadError> {
    let mut parts = line.splitn(3, |&b| b == b' ');
    let method = parts.next().unwrap_or_default();
    let target = parts
        .next()
        .ok_or(ReadError::Bad("malformed request line"))?;
    let version = parts
        .next()
        .ok_or(ReadError::Bad("malformed request line"))?;
    if method.is_empty() || !method.iter().all(|&b| is_tchar(b)) {
        return Err(ReadError::Bad("invalid method"));
    }
    // Bytes >= 0x80 are tolerated in the target (they are not valid HTTP, but a demo
    // upstream should be lenient about what a proxy lets through); controls and spaces are not.
    if target.is_empty() || target.iter().any(|&b| b <= b' ' || b == 0x7f) {
        return Err(ReadError::Bad("invalid request target"));
    }
    let version = match version {
        b"HTTP/1.1" => Version::Http11,
        b"HTTP/1.0" => Version::Http10,
        [b'H', b'T', b'T', b'P', b'/', a, b'.', b] if a.is_ascii_digit() && b.is_ascii_digit() => {
            return Err(ReadError::Version)
        }
        _ => return Err(ReadError::Bad("invalid http version")),
    };
    // The method is made of tchars, so it is ASCII.
    let method = String::from_utf8_lossy(method).into_owned();
    Ok((method, target.to_vec(), version))
}

/// Reads a request line and headers. `Ok(None)` means the peer closed the connection
/// cleanly between requests.
pub fn read_head<R: BufRead>(r: &mut R) -> Result<Option<Head>, ReadError> {
    let mut budget = MAX_HEAD;
    let too_large = || ReadError::HeadTooLarge;
    // RFC 9112 §2.2: ignore empty lines before the request line.
    let line = loop {
        match read_line(r, &mut budget, too_large)? {
            None => return Ok(None),
            Some(l) if l.is_empty() => continue,
            Some(l) => break l,
        }
    };
    if line.contains(&b'\r') {
        return Err(ReadError::Bad("bare CR in request line"));
    }
    let (method, target, version) = parse_request_line(&line)?;

    let mut headers = Vec::new();
    loop {
        let line = read_line(r, &mut budget, too_large)?.ok_or(ReadError::Incomplete)?;
        if line.is_empty() {
            break;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            return Err(ReadError::Bad("obsolete header line folding"));
        }
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or(ReadError::Bad("header line without colon"))?;
        let name = &line[..colon];
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            return Err(ReadError::Bad("invalid header name"));
        }
        let value = trim_ows(&line[colon + 1..]);
        if value.iter().any(|&b| (b < b' ' && b != b'\t') || b == 0x7f) {
            return Err(ReadError::Bad("invalid character in header value"));
        }
        headers.push((
            String::from_utf8_lossy(name).to_ascii_lowercase(),
            value.to_vec(),
        ));
    }

    let codings = header_tokens(&headers, "transfer-encoding");
    let has_te = headers.iter().any(|(n, _)| n == "transfer-encoding");
    let lengths: Vec<&[u8]> = headers
        .iter()
        .filter(|(n, _)| n == "content-length")
        .flat_map(|(_, v)| v.split(|&b| b == b','))
        .map(trim_ows)
        .collect();
    let body = if has_te {
        if !lengths.is_empty() {
            return Err(ReadError::Bad("both transfer-encoding and content-length"));
        }
        match codings.as_slice() {
            [only] if only == "chunked" => BodyKind::Chunked,
            [.., last] if last == "chunked" => return Err(ReadError::UnsupportedCoding),
            [] => return Err(ReadError::Bad("empty transfer-encoding")),
            // Not chunked last: the length of a request body would be undeterminable.
            _ => return Err(ReadError::Bad("transfer-encoding must end with chunked")),
        }
    } else if let Some(first) = lengths.first() {
        if lengths.iter().any(|l| l != first) {
            return Err(ReadError::Bad("conflicting content-length"));
        }
        if first.is_empty() || !first.iter().all(u8::is_ascii_digit) {
            return Err(ReadError::Bad("invalid content-length"));
        }
        let mut n: usize = 0;
        for &d in first.iter() {
            n = n
                .checked_mul(10)
                .and_then(|n| n.checked_add(usize::from(d - b'0')))
                .ok_or(ReadError::BodyTooLarge)?;
        }
        if n > MAX_BODY {
            return Err(ReadError::BodyTooLarge);
        }
        if n == 0 {
            BodyKind::Empty
        } else {
            BodyKind::Length(n)
        }
    } else {
        BodyKind::Empty
    };

    let connection = header_tokens(&headers, "connection");
    let keep_alive = if connection.iter().any(|t| t == "close") {
        false
    } else {
        version == Version::Http11 || connection.iter().any(|t| t == "keep-alive")
    };
    let expect_continue = version == Version::Http11
        && header_tokens(&headers, "expect")
            .iter()
            .any(|t| t == "100-continue");

    Ok(Some(Head {
        method,
        target,
        version,
        headers,
        body,
        keep_alive,
        expect_continue,
    }))
}

fn read_exact_into<R: BufRead>(r: &mut R, n: usize, out: &mut Vec<u8>) -> Result<(), ReadError> {
    let got = r
        .take(n as u64)
        .read_to_end(out)
        .map_err(|_| ReadError::Io)?;
    if got < n {
        return Err(ReadError::Incomplete);
    }
    Ok(())
}

fn parse_chunk_size(line: &[u8]) -> Result<usize, ReadError> {
    let size = match line.iter().position(|&b| b == b';') {
        Some(i) => &line[..i],
        None => line,
    };
    let size = trim_ows(size);
    if size.is_empty() || size.len() > 16 || !size.iter().all(u8::is_ascii_hexdigit) {
        return Err(ReadError::Bad("invalid chunk size"));
    }
    let text = std::str::from_utf8(size).map_err(|_| ReadError::Bad("invalid chunk size"))?;
    usize::from_str_radix(text, 16).map_err(|_| ReadError::BodyTooLarge)
}

/// Reads the body announced by `head`.
pub fn read_body<R: BufRead>(r: &mut R, head: &Head) -> Result<Vec<u8>, ReadError> {
    match head.body {
        BodyKind::Empty => Ok(Vec::new()),
        BodyKind::Length(n) => {
            let mut body = Vec::with_capacity(n.min(256 * 1024));
            read_exact_into(r, n, &mut body)?;
            Ok(body)
        }
        BodyKind::Chunked => {
            let mut body = Vec::new();
            loop {
                let mut budget = MAX_CHUNK_LINE;
                let line = read_line(r, &mut budget, || {
                    ReadError::Bad("chunk size line too long")
                })?
                .ok_or(ReadError::Incomplete)?;
                let size = parse_chunk_size(&line)?;
                if size == 0 {
                    break;
                }
                if size > MAX_BODY - body.len() {
                    return Err(ReadError::BodyTooLarge);
                }
                read_exact_into(r, size, &mut body)?;
                let mut budget = 2;
                let crlf = read_line(r, &mut budget, || {
                    ReadError::Bad("missing CRLF after chunk data")
                })?
                .ok_or(ReadError::Incomplete)?;
                if !crlf.is_empty() {
                    return Err(ReadError::Bad("missing CRLF after chunk data"));
                }
            }
            // Trailer section: ignored, but bounded and syntactically checked.
            let mut budget = MAX_HEAD;
            loop {
                let line = read_line(r, &mut budget, || ReadError::HeadTooLarge)?
                    .ok_or(ReadError::Incomplete)?;
                if line.is_empty() {
                    break;
                }
                if !line.contains(&b':') {
                    return Err(ReadError::Bad("malformed trailer"));
                }
            }
            Ok(body)
        }
    }
}

/// Reads a whole request (without `100-continue` handling).
#[cfg(test)]
pub fn read_request<R: BufRead>(r: &mut R) -> Result<Option<Request>, ReadError> {
    let Some(head) = read_head(r)? else {
        return Ok(None);
    };
    let body = read_body(r, &head)?;
    Ok(Some(Request { head, body }))
}

/// A response to serialise. `content-type`, `content-length`, `connection` and
/// `x-upstream-request-id` are added by [`write_response`].
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Response {
        self.headers.push((name.to_string(), value.into()));
        self
    }
}

pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Content",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// Removes bytes that must not appear in a header value (the echoed request id comes
/// from the client).
fn sanitize_header_value(v: &[u8]) -> Vec<u8> {
    v.iter()
        .copied()
        .filter(|&b| b == b'\t' || (b >= b' ' && b != 0x7f))
        .collect()
}

/// Serialises `resp` to `w` as one write.
///
/// * `request_id` is echoed as `x-upstream-request-id` (empty if the request had none);
/// * `keep_alive` selects the `connection` header appropriate for `version`;
/// * `head_only` (a HEAD request) omits the body but keeps its length.
pub fn write_response<W: Write>(
    w: &mut W,
    resp: &Response,
    version: Version,
    request_id: &[u8],
    keep_alive: bool,
    head_only: bool,
) -> io::Result<()> {
    let mut head = String::with_capacity(256);
    // Infallible: writing to a String.
    let _ = write!(
        head,
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
        resp.status,
        reason(resp.status),
        resp.body.len()
    );
    for (name, value) in &resp.headers {
        let _ = write!(head, "{name}: {value}\r\n");
    }
    match (keep_alive, version) {
        (false, _) => head.push_str("connection: close\r\n"),
        (true, Version::Http10) => head.push_str("connection: keep-alive\r\n"),
        (true, Version::Http11) => {}
    }
    let mut out = Vec::with_capacity(head.len() + resp.body.len() + 64);
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(b"x-upstream-request-id: ");
    out.extend_from_slice(&sanitize_header_value(request_id));
    out.extend_from_slice(b"\r\n\r\n");
    if !head_only {
        out.extend_from_slice(&resp.body);
    }
    w.write_all(&out)?;
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufReader, Cursor};

    fn reader(bytes: &[u8]) -> BufReader<Cursor<Vec<u8>>> {
        // A tiny buffer exercises lines split across reads.
        BufReader::with_capacity(7, Cursor::new(bytes.to_vec()))
    }

    fn one(bytes: &[u8]) -> Result<Request, ReadError> {
        read_request(&mut reader(bytes)).and_then(|r| r.ok_or(ReadError::Incomplete))
    }

    #[test]
    fn simple_get() {
        let req = one(b"GET /users/1?x=1 HTTP/1.1\r\nHost: a\r\nX-Vigil-Request-Id:  abc \r\n\r\n")
            .unwrap();
        assert_eq!(req.head.method, "GET");
        assert_eq!(req.head.target, b"/users/1?x=1");
        assert_eq!(req.head.version, Version::Http11);
        assert_eq!(req.head.header("x-vigil-request-id"), Some(&b"abc"[..]));
        assert!(req.head.keep_alive);
        assert!(req.body.is_empty());
        assert_eq!(
            req.head.path_and_query(),
            (&b"/users/1"[..], Some(&b"x=1"[..]))
        );
    }

    #[test]
    fn absolute_form_target() {
        let req = one(b"GET http://example.com:80/a?b HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!(req.head.path_and_query(), (&b"/a"[..], Some(&b"b"[..])));
        let req = one(b"GET http://example.com HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!(req.head.path_and_query(), (&b"/"[..], None));
    }

    #[test]
    fn content_length_body_and_pipelining() {
        let mut r = reader(
            b"POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET /b HTTP/1.1\r\nConnection: close\r\n\r\n",
        );
        let a = read_request(&mut r).unwrap().unwrap();
        assert_eq!(a.body, b"hello");
        assert!(a.head.keep_alive);
        let b = read_request(&mut r).unwrap().unwrap();
        assert_eq!(b.head.target, b"/b");
        assert!(!b.head.keep_alive);
        assert!(read_request(&mut r).unwrap().is_none());
    }

    #[test]
    fn chunked_body() {
        let req = one(
            b"POST /upload HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\
              5\r\nhello\r\n1;ext=1\r\n \r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n",
        )
        .unwrap();
        assert_eq!(req.body, b"hello 0123456789");
        assert_eq!(req.head.body, BodyKind::Chunked);
    }

    #[test]
    fn chunked_errors() {
        let bad = [
            &b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"[..],
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX\r\n0\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
        ];
        for b in bad {
            let e = one(b).unwrap_err();
            assert_eq!(
                e.status(),
                Some(400),
                "{e:?} for {:?}",
                String::from_utf8_lossy(b)
            );
        }
        let e = one(b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n").unwrap_err();
        assert_eq!(e.status(), Some(501));
        let e = one(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel").unwrap_err();
        assert!(matches!(e, ReadError::Incomplete));
    }

    #[test]
    fn chunked_body_limit() {
        let mut req = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        let chunk = vec![b'a'; 1024 * 1024];
        for _ in 0..9 {
            req.extend_from_slice(b"100000\r\n");
            req.extend_from_slice(&chunk);
            req.extend_from_slice(b"\r\n");
        }
        req.extend_from_slice(b"0\r\n\r\n");
        assert!(matches!(one(&req).unwrap_err(), ReadError::BodyTooLarge));
        // Exactly at the limit is fine.
        let mut req = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..8 {
            req.extend_from_slice(b"100000\r\n");
            req.extend_from_slice(&chunk);
            req.extend_from_slice(b"\r\n");
        }
        req.extend_from_slice(b"0\r\n\r\n");
        assert_eq!(one(&req).unwrap().body.len(), MAX_BODY);
    }

    #[test]
    fn content_length_limits_and_errors() {
        let e = one(b"POST / HTTP/1.1\r\nContent-Length: 8388609\r\n\r\n").unwrap_err();
        assert_eq!(e.status(), Some(413));
        let e =
            one(b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n").unwrap_err();
        assert_eq!(e.status(), Some(413));
        for b in [
            &b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n",
        ] {
            assert_eq!(one(b).unwrap_err().status(), Some(400));
        }
        // Identical duplicates are allowed.
        let req = one(b"POST / HTTP/1.1\r\nContent-Length: 2, 2\r\n\r\nok").unwrap();
        assert_eq!(req.body, b"ok");
        let e = one(b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nshort").unwrap_err();
        assert!(matches!(e, ReadError::Incomplete));
    }

    #[test]
    fn header_limit() {
        let mut req = b"GET / HTTP/1.1\r\nX-Big: ".to_vec();
        req.extend(std::iter::repeat_n(b'a', MAX_HEAD));
        req.extend_from_slice(b"\r\n\r\n");
        assert_eq!(one(&req).unwrap_err().status(), Some(431));
        // Many small headers add up too.
        let mut req = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..5000 {
            req.extend_from_slice(format!("X-H{i}: vvvvvvvv\r\n").as_bytes());
        }
        req.extend_from_slice(b"\r\n");
        assert_eq!(one(&req).unwrap_err().status(), Some(431));
        // A large but acceptable head.
        let mut req = b"GET / HTTP/1.1\r\nX-Big: ".to_vec();
        req.extend(std::iter::repeat_n(b'a', 60 * 1024));
        req.extend_from_slice(b"\r\n\r\n");
        assert!(one(&req).is_ok());
    }

    #[test]
    fn malformed_heads() {
        for b in [
            &b"GET\r\n\r\n"[..],
            b"GET /\r\n\r\n",
            b"GET / HTTP/1.1 extra\r\n\r\n",
            b"G(T / HTTP/1.1\r\n\r\n",
            b"GET / FTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nNo colon here\r\n\r\n",
            b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nName : x\r\n\r\n",
            b"GET / HTTP/1.1\r\n: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n",
            b"GET / HTTP/1.1\r\nA: b\x00c\r\n\r\n",
            b"GET / HTTP/1.1\r\nA: b\rc\r\n\r\n",
            b"GET /a\x01 HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\r\n\r\n",
        ] {
            let e = one(b).unwrap_err();
            assert_eq!(
                e.status(),
                Some(400),
                "{e:?} for {:?}",
                String::from_utf8_lossy(b)
            );
        }
        assert_eq!(
            one(b"GET / HTTP/2.0\r\n\r\n").unwrap_err().status(),
            Some(505)
        );
        assert!(matches!(
            one(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap_err(),
            ReadError::Incomplete
        ));
    }

    #[test]
    fn lenient_bits() {
        // Bare LF line endings, leading empty lines, non-UTF-8 target and header bytes.
        let req = one(b"\r\n\nGET /caf\xe9 HTTP/1.1\nA: \xff\xfe\n\n").unwrap();
        assert_eq!(req.head.target, b"/caf\xe9");
        assert_eq!(req.head.header("a"), Some(&b"\xff\xfe"[..]));
        assert!(read_request(&mut reader(b"")).unwrap().is_none());
        assert!(read_request(&mut reader(b"\r\n")).unwrap().is_none());
    }

    #[test]
    fn keep_alive_rules() {
        let h = |b: &[u8]| read_head(&mut reader(b)).unwrap().unwrap();
        assert!(h(b"GET / HTTP/1.1\r\n\r\n").keep_alive);
        assert!(!h(b"GET / HTTP/1.1\r\nConnection: Close\r\n\r\n").keep_alive);
        assert!(!h(b"GET / HTTP/1.1\r\nConnection: keep-alive, close\r\n\r\n").keep_alive);
        assert!(!h(b"GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(h(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
        assert!(
            h(b"POST / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n")
                .expect_continue
        );
        assert!(!h(b"POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n").expect_continue);
    }

    #[test]
    fn response_serialisation() {
        let resp = Response::new(201, b"{}".to_vec()).with_header("location", "/orders/7");
        let mut out = Vec::new();
        write_response(&mut out, &resp, Version::Http11, b"id\r\n-1", true, false).unwrap();
        assert_eq!(
            out,
            b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\
              location: /orders/7\r\nx-upstream-request-id: id-1\r\n\r\n{}"
        );
        let mut out = Vec::new();
        write_response(&mut out, &resp, Version::Http10, b"", false, true).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("connection: close\r\n"));
        assert!(text.contains("x-upstream-request-id: \r\n"));
        assert!(text.ends_with("\r\n\r\n"));
    }
}
