//! A tiny raw HTTP/1.1 client for tests.
//!
//! Unlike a real client it sends exactly the bytes it is given: the request target is not
//! validated or re-encoded (invalid UTF-8, spaces, control bytes all go out as-is) and header
//! values are arbitrary bytes. Each request uses a fresh connection with `Connection: close`.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Read (and write) timeout used by [`send`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// A request to send verbatim.
#[derive(Clone, PartialEq, Eq)]
pub struct RawRequest {
    pub method: String,
    /// Sent as-is in the request line.
    pub target: Vec<u8>,
    /// Sent in order, as `name: value`. `Host`, `Content-Length` and `Connection` are added
    /// by [`RawRequest::to_bytes`] unless present here (case-insensitively).
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Option<Vec<u8>>,
}

impl RawRequest {
    pub fn new(method: &str, target: impl AsRef<[u8]>) -> RawRequest {
        RawRequest {
            method: method.to_string(),
            target: target.as_ref().to_vec(),
            headers: Vec::new(),
            body: None,
        }
    }

    pub fn get(target: impl AsRef<[u8]>) -> RawRequest {
        RawRequest::new("GET", target)
    }

    pub fn head(target: impl AsRef<[u8]>) -> RawRequest {
        RawRequest::new("HEAD", target)
    }

    pub fn post(target: impl AsRef<[u8]>) -> RawRequest {
        RawRequest::new("POST", target)
    }

    pub fn put(target: impl AsRef<[u8]>) -> RawRequest {
        RawRequest::new("PUT", target)
    }

    pub fn patch(target: impl AsRef<[u8]>) -> RawRequest {
        RawRequest::new("PATCH", target)
    }

    pub fn delete(target: impl AsRef<[u8]>) -> RawRequest {
        RawRequest::new("DELETE", target)
    }

    /// Appends a header (repeating a name sends it twice).
    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> RawRequest {
        self.headers
            .push((name.to_string(), value.as_ref().to_vec()));
        self
    }

    /// Sets the body; `Content-Length` is added automatically unless a `Content-Length`
    /// or `Transfer-Encoding` header is given.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> RawRequest {
        self.body = Some(body.into());
        self
    }

    /// A JSON body with `Content-Type: application/json`.
    pub fn json(self, json: &str) -> RawRequest {
        self.header("Content-Type", "application/json").body(json)
    }

    /// A form body with `Content-Type: application/x-www-form-urlencoded`.
    pub fn form(self, form: &str) -> RawRequest {
        self.header("Content-Type", "application/x-www-form-urlencoded")
            .body(form)
    }

    /// A body sent with `Transfer-Encoding: chunked`, one chunk per element (empty elements
    /// are skipped, since a zero-size chunk ends the body).
    pub fn chunked<C: AsRef<[u8]>>(self, chunks: impl IntoIterator<Item = C>) -> RawRequest {
        let mut body = Vec::new();
        for chunk in chunks {
            let chunk = chunk.as_ref();
            if chunk.is_empty() {
                continue;
            }
            body.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            body.extend_from_slice(chunk);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(b"0\r\n\r\n");
        self.header("Transfer-Encoding", "chunked").body(body)
    }

    fn has_header(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    }

    /// The exact bytes [`send`] writes; `host` is used for the automatic `Host` header.
    pub fn to_bytes(&self, host: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + self.body.as_ref().map_or(0, Vec::len));
        out.extend_from_slice(self.method.as_bytes());
        out.push(b' ');
        out.extend_from_slice(&self.target);
        out.extend_from_slice(b" HTTP/1.1\r\n");
        if !self.has_header("host") {
            out.extend_from_slice(format!("Host: {host}\r\n").as_bytes());
        }
        for (name, value) in &self.headers {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        if let Some(body) = &self.body {
            if !self.has_header("content-length") && !self.has_header("transfer-encoding") {
                out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
            }
        }
        if !self.has_header("connection") {
            out.extend_from_slice(b"Connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
        if let Some(body) = &self.body {
            out.extend_from_slice(body);
        }
        out
    }
}

impl fmt::Debug for RawRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawRequest")
            .field("method", &self.method)
            .field("target", &String::from_utf8_lossy(&self.target))
            .field(
                "headers",
                &self
                    .headers
                    .iter()
                    .map(|(n, v)| (n.as_str(), String::from_utf8_lossy(v)))
                    .collect::<Vec<_>>(),
            )
            .field("body_len", &self.body.as_ref().map(Vec::len))
            .finish()
    }
}

/// A parsed response.
#[derive(Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Names lower-cased, values trimmed (invalid UTF-8 replaced), in received order.
    pub headers: Vec<(String, String)>,
    /// Decoded body (chunked transfer coding removed).
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All values of header `name` (case-insensitive).
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn try_json(&self) -> serde_json::Result<serde_json::Value> {
        serde_json::from_slice(&self.body)
    }

    /// The body parsed as JSON; panics (showing the response) if it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        match self.try_json() {
            Ok(v) => v,
            Err(e) => panic!("response body is not JSON ({e}): {self:?}"),
        }
    }
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const MAX: usize = 2048;
        let body = String::from_utf8_lossy(&self.body[..self.body.len().min(MAX)]).into_owned();
        let more = if self.body.len() > MAX {
            format!(" ... ({} bytes)", self.body.len())
        } else {
            String::new()
        };
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body", &format_args!("{body:?}{more}"))
            .finish()
    }
}

/// Sends `req` to `addr` on a new connection and reads the response
/// (timeout [`DEFAULT_TIMEOUT`]).
pub fn send(addr: SocketAddr, req: &RawRequest) -> io::Result<Response> {
    send_with_timeout(addr, req, DEFAULT_TIMEOUT)
}

/// [`send`] with a custom connect/read/write timeout.
pub fn send_with_timeout(
    addr: SocketAddr,
    req: &RawRequest,
    timeout: Duration,
) -> io::Result<Response> {
    let bytes = req.to_bytes(&addr.to_string());
    exchange(
        addr,
        &bytes,
        req.method.eq_ignore_ascii_case("HEAD"),
        timeout,
    )
}

/// Writes `bytes` verbatim on a new connection and reads one response (timeout
/// [`DEFAULT_TIMEOUT`]). Nothing is added: the bytes must form the whole request.
pub fn send_bytes(addr: SocketAddr, bytes: &[u8]) -> io::Result<Response> {
    let head = bytes.len() >= 5 && bytes[..5].eq_ignore_ascii_case(b"HEAD ");
    exchange(addr, bytes, head, DEFAULT_TIMEOUT)
}

fn exchange(
    addr: SocketAddr,
    bytes: &[u8],
    head_request: bool,
    timeout: Duration,
) -> io::Result<Response> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let _ = stream.set_nodelay(true);
    // A server may answer and close before it has read everything (e.g. 431 for a huge
    // header), which makes the write fail: still try to read what it said.
    let write_result = stream.write_all(bytes).and_then(|()| stream.flush());
    match read_response(&mut stream, head_request) {
        Ok(resp) => Ok(resp),
        Err(read_err) => Err(write_result.err().unwrap_or(read_err)),
    }
}

/// Reads one response from `stream`: until it is complete (by `Content-Length` or chunked
/// framing) or, for a response delimited by closing, until EOF.
pub fn read_response(stream: &mut impl Read, head_request: bool) -> io::Result<Response> {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => {
                if buf.is_empty() {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "connection closed without a response",
                    ));
                }
                return match parse_response(&buf, true, head_request)? {
                    Some(resp) => Ok(resp),
                    None => Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "connection closed in the middle of a response: {:?}",
                            String::from_utf8_lossy(&buf[..buf.len().min(512)])
                        ),
                    )),
                };
            }
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if let Some(resp) = parse_response(&buf, false, head_request)? {
                    return Ok(resp);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                // E.g. a reset right after the server's answer: keep what arrived.
                if let Ok(Some(resp)) = parse_response(&buf, true, head_request) {
                    return Ok(resp);
                }
                return Err(e);
            }
        }
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Splits off one line ending in LF (CR removed) starting at `pos`.
fn line_at(buf: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    let rel = buf.get(pos..)?.iter().position(|&b| b == b'\n')?;
    let mut line = &buf[pos..pos + rel];
    if let [rest @ .., b'\r'] = line {
        line = rest;
    }
    Some((line, pos + rel + 1))
}

/// Parses a complete response from `buf`, skipping interim 1xx responses. `Ok(None)`: more
/// bytes are needed (with `eof`, a close-delimited body ends at the end of `buf`).
pub fn parse_response(buf: &[u8], eof: bool, head_request: bool) -> io::Result<Option<Response>> {
    let mut pos = 0;
    loop {
        let Some((status_line, mut next)) = line_at(buf, pos) else {
            return Ok(None);
        };
        let text = String::from_utf8_lossy(status_line);
        let mut parts = text.splitn(3, ' ');
        let version = parts.next().unwrap_or_default();
        let code = parts.next().unwrap_or_default();
        if !version.starts_with("HTTP/1.") {
            return Err(invalid(format!("bad status line: {text:?}")));
        }
        let status: u16 = code
            .parse()
            .map_err(|_| invalid(format!("bad status line: {text:?}")))?;
        let mut headers = Vec::new();
        loop {
            let Some((line, after)) = line_at(buf, next) else {
                return Ok(None);
            };
            next = after;
            if line.is_empty() {
                break;
            }
            let line = String::from_utf8_lossy(line);
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| invalid(format!("bad header line: {line:?}")))?;
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
        if (100..200).contains(&status) && status != 101 {
            pos = next;
            continue;
        }
        let mut resp = Response {
            status,
            headers,
            body: Vec::new(),
        };
        let rest = &buf[next..];
        if head_request || status == 204 || status == 304 || status == 101 {
            return Ok(Some(resp));
        }
        let chunked = resp
            .header_all("transfer-encoding")
            .iter()
            .any(|v| v.to_ascii_lowercase().contains("chunked"));
        if chunked {
            return match decode_chunked(rest)? {
                Some(body) => {
                    resp.body = body;
                    Ok(Some(resp))
                }
                None => Ok(None),
            };
        }
        if let Some(len) = resp.header("content-length") {
            let len: usize = len
                .parse()
                .map_err(|_| invalid(format!("bad content-length: {len:?}")))?;
            if rest.len() < len {
                return Ok(None);
            }
            resp.body = rest[..len].to_vec();
            return Ok(Some(resp));
        }
        if !eof {
            return Ok(None);
        }
        resp.body = rest.to_vec();
        return Ok(Some(resp));
    }
}

/// Decodes a chunked body; `Ok(None)` if incomplete.
fn decode_chunked(buf: &[u8]) -> io::Result<Option<Vec<u8>>> {
    Ok(decode_chunked_prefix(buf)?.map(|(body, _)| body))
}

/// Decodes a chunked body at the start of `buf`: the body and how many bytes it took;
/// `Ok(None)` if incomplete.
pub(crate) fn decode_chunked_prefix(buf: &[u8]) -> io::Result<Option<(Vec<u8>, usize)>> {
    let mut body = Vec::new();
    let mut pos = 0;
    loop {
        let Some((line, next)) = line_at(buf, pos) else {
            return Ok(None);
        };
        let text = String::from_utf8_lossy(line);
        let size_text = text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| invalid(format!("bad chunk size line: {text:?}")))?;
        pos = next;
        if size == 0 {
            // Trailers up to an empty line.
            loop {
                let Some((line, next)) = line_at(buf, pos) else {
                    return Ok(None);
                };
                pos = next;
                if line.is_empty() {
                    return Ok(Some((body, pos)));
                }
            }
        }
        if buf.len() < pos + size {
            return Ok(None);
        }
        body.extend_from_slice(&buf[pos..pos + size]);
        pos += size;
        let Some((line, next)) = line_at(buf, pos) else {
            return Ok(None);
        };
        if !line.is_empty() {
            return Err(invalid("missing CRLF after chunk".to_string()));
        }
        pos = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_bytes() {
        let req = RawRequest::post(b"/a b\xff?q=1".as_slice())
            .header("X-Id", "7")
            .json("{}");
        assert_eq!(
            req.to_bytes("h:1"),
            b"POST /a b\xff?q=1 HTTP/1.1\r\nHost: h:1\r\nX-Id: 7\r\nContent-Type: application/json\r\n\
              Content-Length: 2\r\nConnection: close\r\n\r\n{}"
        );
        let req = RawRequest::get("/")
            .header("host", "x")
            .header("Connection", "keep-alive");
        assert_eq!(
            req.to_bytes("h"),
            b"GET / HTTP/1.1\r\nhost: x\r\nConnection: keep-alive\r\n\r\n"
        );
        let req = RawRequest::post("/u").chunked(["ab", "", "cde"]);
        assert_eq!(
            req.to_bytes("h"),
            b"POST /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
              2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n"
        );
    }

    #[test]
    fn parses_responses() {
        let raw = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A:  b \r\n\r\nhiEXTRA";
        let r = parse_response(raw, false, false).unwrap().unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"hi");
        assert_eq!(r.header("x-a"), Some("b"));
        assert_eq!(r.header("X-A"), Some("b"));

        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n1\r\nd\r\n0\r\nT: 1\r\n\r\n";
        let r = parse_response(raw, false, false).unwrap().unwrap();
        assert_eq!(r.body, b"abcd");
        for cut in 0..raw.len() {
            assert!(
                parse_response(&raw[..cut], false, false).unwrap().is_none(),
                "cut {cut}"
            );
        }

        let raw = b"HTTP/1.0 200 OK\r\n\r\nuntil eof";
        assert!(parse_response(raw, false, false).unwrap().is_none());
        assert_eq!(
            parse_response(raw, true, false).unwrap().unwrap().body,
            b"until eof"
        );

        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n";
        assert!(parse_response(raw, false, true)
            .unwrap()
            .unwrap()
            .body
            .is_empty());
        assert!(parse_response(b"garbage\r\n\r\n", true, false).is_err());
    }

    #[test]
    fn reads_from_a_stream() {
        let raw = b"HTTP/1.1 404 Not Found\r\ncontent-length: 3\r\n\r\nabc".to_vec();
        let r = read_response(&mut io::Cursor::new(raw), false).unwrap();
        assert_eq!((r.status, r.body_str().as_str()), (404, "abc"));
        let e = read_response(&mut io::Cursor::new(Vec::new()), false).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        let e = read_response(
            &mut io::Cursor::new(b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nab".to_vec()),
            false,
        )
        .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }
}
