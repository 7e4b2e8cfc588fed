//! `vigil-demo-api`: a small JSON API used behind Envoy in the vigil demo and the
//! end-to-end tests. Standard library only; one thread per connection.
//!
//! ```text
//! vigil-demo-api [--listen 127.0.0.1:8080] [--allow-remote] [--quiet]
//! ```
//!
//! After binding it prints exactly one line, `listening on <addr>`, to stdout.

mod http;
mod json;
mod routes;
mod store;
mod url;

use std::io::{self, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::http::{ReadError, Response, Version};
use crate::json::Json;
use crate::store::Store;

/// How long a connection may sit idle (or stall mid-request) before it is closed. Long,
/// because Envoy keeps pooled upstream connections open and closing them races with reuse.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);

const USAGE: &str = "\
usage: vigil-demo-api [--listen ADDR] [--allow-remote] [--quiet]

  --listen ADDR     address to listen on (default 127.0.0.1:8080; port 0 picks a free port)
  --allow-remote    allow a non-loopback listen address
  --quiet           no access log on stderr

Prints `listening on <addr>` on stdout once bound.";

#[derive(Debug, PartialEq)]
struct Options {
    listen: String,
    allow_remote: bool,
    quiet: bool,
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Option<Options>, String> {
    let mut opts = Options {
        listen: "127.0.0.1:8080".to_string(),
        allow_remote: false,
        quiet: false,
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--listen" => opts.listen = args.next().ok_or("--listen needs an address")?,
            "--allow-remote" => opts.allow_remote = true,
            "--quiet" | "-q" => opts.quiet = true,
            other => match other.strip_prefix("--listen=") {
                Some(addr) => opts.listen = addr.to_string(),
                None => return Err(format!("unknown argument: {other}")),
            },
        }
    }
    Ok(Some(opts))
}

fn bind(opts: &Options) -> Result<TcpListener, String> {
    let addrs: Vec<SocketAddr> = opts
        .listen
        .to_socket_addrs()
        .map_err(|e| format!("invalid listen address {:?}: {e}", opts.listen))?
        .collect();
    if addrs.is_empty() {
        return Err(format!(
            "listen address {:?} resolved to nothing",
            opts.listen
        ));
    }
    if let Some(remote) = addrs.iter().find(|a| !a.ip().is_loopback()) {
        if !opts.allow_remote {
            return Err(format!(
                "refusing to listen on non-loopback address {remote} (pass --allow-remote to allow it)"
            ));
        }
    }
    TcpListener::bind(&addrs[..]).map_err(|e| format!("cannot listen on {}: {e}", opts.listen))
}

fn main() -> ExitCode {
    let opts = match parse_args(std::env::args().skip(1)) {
        Ok(Some(opts)) => opts,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("vigil-demo-api: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let listener = match bind(&opts) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("vigil-demo-api: {e}");
            return ExitCode::FAILURE;
        }
    };
    let local = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("vigil-demo-api: {e}");
            return ExitCode::FAILURE;
        }
    };
    {
        let mut out = io::stdout().lock();
        if writeln!(out, "listening on {local}")
            .and_then(|()| out.flush())
            .is_err()
        {
            return ExitCode::FAILURE;
        }
    }
    serve(listener, Arc::new(Store::seeded()), !opts.quiet);
    ExitCode::SUCCESS
}

/// Accepts connections forever, one thread each.
fn serve(listener: TcpListener, store: Arc<Store>, log: bool) {
    for conn in listener.incoming() {
        let stream = match conn {
            Ok(s) => s,
            Err(e) => {
                // E.g. EMFILE: back off briefly instead of spinning.
                eprintln!("vigil-demo-api: accept failed: {e}");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let store = Arc::clone(&store);
        let spawned = std::thread::Builder::new()
            .name("conn".into())
            .spawn(move || serve_connection(stream, &store, log));
        if let Err(e) = spawned {
            eprintln!("vigil-demo-api: cannot spawn connection thread: {e}");
        }
    }
}

/// Serves requests on one connection until it is closed or must be closed.
fn serve_connection(stream: TcpStream, store: &Store, log: bool) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(IDLE_TIMEOUT));
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::with_capacity(16 * 1024, read_half);
    let mut writer = stream;
    loop {
        let head = match http::read_head(&mut reader) {
            Ok(Some(head)) => head,
            Ok(None) => return,
            Err(e) => return fail(&mut writer, &e, b"", log),
        };
        // vigil's id: Envoy's `x-request-id`, which vigil repeats as `x-vigil-request-id` only
        // when it made the id up or a client sent its own.
        let request_id = head
            .header("x-vigil-request-id")
            .or_else(|| head.header("x-request-id"))
            .unwrap_or_default()
            .to_vec();
        if head.expect_continue
            && head.body != http::BodyKind::Empty
            && writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").is_err()
        {
            return;
        }
        let body = match http::read_body(&mut reader, &head) {
            Ok(b) => b,
            Err(e) => return fail(&mut writer, &e, &request_id, log),
        };
        let req = http::Request { head, body };
        let resp = routes::handle(&req, store);
        let keep_alive = req.head.keep_alive;
        if log {
            let (path, _) = req.head.path_and_query();
            eprintln!(
                "{} {} -> {} ({} bytes)",
                req.head.method,
                String::from_utf8_lossy(path),
                resp.status,
                resp.body.len()
            );
        }
        let head_only = req.head.method == "HEAD";
        if http::write_response(
            &mut writer,
            &resp,
            req.head.version,
            &request_id,
            keep_alive,
            head_only,
        )
        .is_err()
        {
            return;
        }
        if !keep_alive {
            return close_gracefully(&mut writer);
        }
    }
}

/// Answers an unreadable request (if it deserves an answer) and closes the connection.
fn fail(writer: &mut TcpStream, err: &ReadError, request_id: &[u8], log: bool) {
    let Some(status) = err.status() else {
        return;
    };
    if log {
        eprintln!("bad request -> {status} ({})", err.message());
    }
    let body = Json::obj([("error", Json::str(err.message()))]).to_string();
    let resp = Response::new(status, body.into_bytes());
    if http::write_response(writer, &resp, Version::Http11, request_id, false, false).is_ok() {
        close_gracefully(writer);
    }
}

/// Half-closes, then drains what the peer still sends for a moment, so that closing with
/// unread data (which makes the kernel send RST) does not destroy the response in flight.
fn close_gracefully(stream: &mut TcpStream) {
    let _ = stream.shutdown(Shutdown::Write);
    let deadline = Instant::now() + Duration::from_secs(2);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf = [0u8; 16 * 1024];
    let mut drained = 0usize;
    while Instant::now() < deadline && drained < 16 * 1024 * 1024 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn cli() {
        let o = parse_args(args(&[])).unwrap().unwrap();
        assert_eq!(o.listen, "127.0.0.1:8080");
        assert!(!o.allow_remote);
        let o = parse_args(args(&["--listen", "127.0.0.1:0", "--quiet"]))
            .unwrap()
            .unwrap();
        assert_eq!(o.listen, "127.0.0.1:0");
        assert!(o.quiet);
        let o = parse_args(args(&["--listen=[::1]:9", "--allow-remote"]))
            .unwrap()
            .unwrap();
        assert_eq!(o.listen, "[::1]:9");
        assert!(o.allow_remote);
        assert!(parse_args(args(&["--help"])).unwrap().is_none());
        assert!(parse_args(args(&["--listen"])).is_err());
        assert!(parse_args(args(&["--bogus"])).is_err());
    }

    #[test]
    fn refuses_remote_without_flag() {
        let mut o = parse_args(args(&["--listen", "0.0.0.0:0"]))
            .unwrap()
            .unwrap();
        let e = bind(&o).unwrap_err();
        assert!(e.contains("--allow-remote"), "{e}");
        o.listen = "127.0.0.1:0".into();
        assert!(bind(&o).is_ok());
        assert!(bind(&Options {
            listen: "nonsense".into(),
            allow_remote: false,
            quiet: true
        })
        .is_err());
    }

    fn start() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || serve(listener, Arc::new(Store::seeded()), false));
        addr
    }

    /// Reads one response (status, lower-cased head text, body) using content-length.
    fn read_response(r: &mut impl BufRead) -> (u16, String, Vec<u8>) {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            assert!(!line.is_empty(), "connection closed");
            if line == "\r\n" {
                break;
            }
            head.push_str(&line.to_ascii_lowercase());
        }
        let status = head[9..12].parse().unwrap();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let mut body = vec![0; len];
        r.read_exact(&mut body).unwrap();
        (status, head, body)
    }

    #[test]
    fn keep_alive_over_tcp() {
        let addr = start();
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut w = stream.try_clone().unwrap();
        let mut r = BufReader::new(stream);

        w.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Vigil-Request-Id: req-1\r\n\r\n")
            .unwrap();
        let (status, head, body) = read_response(&mut r);
        assert_eq!(status, 200);
        assert_eq!(body, br#"{"status":"ok"}"#);
        assert!(head.contains("x-upstream-request-id: req-1\r\n"));
        assert!(head.contains("content-type: application/json\r\n"));

        // Two pipelined requests, the second chunked, on the same connection.
        w.write_all(
            b"GET /users/1 HTTP/1.1\r\nHost: x\r\n\r\n\
              POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        )
        .unwrap();
        let (status, head, _) = read_response(&mut r);
        assert_eq!(status, 200);
        assert!(head.contains("x-upstream-request-id: \r\n"));
        let (status, _, body) = read_response(&mut r);
        assert_eq!(status, 200);
        assert!(String::from_utf8(body).unwrap().contains(r#""bytes":3"#));

        // Expect: 100-continue gets an interim response before the body is sent.
        w.write_all(
            b"POST /comments HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n",
        )
        .unwrap();
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        assert_eq!(line, "HTTP/1.1 100 Continue\r\n");
        r.read_line(&mut line).unwrap();
        w.write_all(b"hi").unwrap();
        assert_eq!(read_response(&mut r).0, 200);

        // Connection: close is honoured.
        w.write_all(b"GET /health HTTP/1.1\r\nConnection: close\r\n\r\n")
            .unwrap();
        let (status, head, _) = read_response(&mut r);
        assert_eq!(status, 200);
        assert!(head.contains("connection: close\r\n"));
        let mut rest = Vec::new();
        r.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
    }

    #[test]
    fn errors_close_the_connection() {
        let addr = start();
        let cases: [(&[u8], u16); 3] = [
            (b"GARBAGE\r\n\r\n", 400),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 9999999999\r\n\r\n",
                413,
            ),
            (
                b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n",
                400,
            ),
        ];
        for (raw, expected) in cases {
            let mut s = TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s.write_all(raw).unwrap();
            let mut out = Vec::new();
            s.read_to_end(&mut out).unwrap();
            let text = String::from_utf8_lossy(&out);
            assert!(text.starts_with(&format!("HTTP/1.1 {expected} ")), "{text}");
            assert!(text.contains("connection: close\r\n"));
            assert!(text.contains("x-upstream-request-id: "));
        }
        // Huge head: 431 even though the client is still sending.
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut raw = b"GET / HTTP/1.1\r\nX-Big: ".to_vec();
        raw.extend(std::iter::repeat_n(b'a', 100 * 1024));
        raw.extend_from_slice(b"\r\n\r\n");
        let _ = s.write_all(&raw);
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 431 "));
    }

    #[test]
    fn http10_and_head() {
        let addr = start();
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"HEAD /health HTTP/1.0\r\n\r\n").unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(text.contains("content-length: 15\r\n"));
        assert!(text.ends_with("\r\n\r\n"));
    }
}
