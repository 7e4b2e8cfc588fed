//! The technique detectors through the whole engine (decoding, targets, prefilter, scoring):
//! each attack technique with its evasions is blocked by the rule written for it, and the
//! benign look-alikes real traffic carries pass.

use vigil_engine::{CompiledPolicy, Outcome};

mod common;

use common::{with_header as header, Case};

const JSON: &str = "application/json";
const FORM: &str = "application/x-www-form-urlencoded";

/// A browser's GET: these detectors must hold with the headers real clients send.
fn get(target: &str) -> Case<'_> {
    header(
        common::get(target),
        "user-agent",
        "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0",
    )
}

fn post<'a>(target: &'a str, content_type: &'a str, body: &'a str) -> Case<'a> {
    let mut case = get(target);
    case.method = "POST";
    case.headers.push(("content-type", content_type));
    case.body = Some(body);
    case
}

fn method<'a>(mut case: Case<'a>, m: &'a str) -> Case<'a> {
    case.method = m;
    case
}

/// (blocked, fired rule ids with where and what)
fn run(policy: &CompiledPolicy, case: &Case<'_>) -> (bool, Vec<String>) {
    let seen = common::inspect(policy, case);
    (seen.outcome == Outcome::Block, seen.fired)
}

/// The cases on which `wrong(blocked, fired)` holds, each with what fired.
fn failing(cases: &[Case<'_>], wrong: impl Fn(bool, &[String]) -> bool) -> Vec<String> {
    let policy = CompiledPolicy::builtin().unwrap();
    cases
        .iter()
        .filter_map(|c| {
            let (blocked, fired) = run(&policy, c);
            wrong(blocked, &fired).then(|| {
                format!(
                    "{} {} {:?} {:?} => {fired:?}",
                    c.method, c.target, c.headers, c.body
                )
            })
        })
        .collect()
}

/// Every case is blocked, and `rule` is among the findings.
fn blocked_by(rule: &str, cases: Vec<Case<'_>>) {
    let prefix = format!("{rule}@");
    let failures = failing(&cases, |blocked, fired| {
        !blocked || !fired.iter().any(|f| f.starts_with(&prefix))
    });
    assert!(
        failures.is_empty(),
        "{rule} did not block:\n{}",
        failures.join("\n")
    );
}

fn pass(cases: Vec<Case<'_>>) {
    let failures = failing(&cases, |blocked, _| blocked);
    assert!(
        failures.is_empty(),
        "false positives:\n{}",
        failures.join("\n")
    );
}

#[test]
fn sql_injection_shapes() {
    blocked_by(
        "sqli-injection-shape",
        vec![
            get("/items?id=1%27%20AND%204521%3D4521%20AND%20%27kJtq%27%3D%27kJtq"),
            get("/items?id=-3190%27+OR+6872%3D6872%23"),
            get("/items?id=1)%20AND%207788%3D7788%20AND%20(3315%3D3315"),
            get("/login?user=admin%27%2F*"),
            get("/items?id=%27%7C%7C(SELECT%20CHR(75)%20FROM%20DUAL)%7C%7C%27"),
            get("/items?id=1%27%3Dsleep(3)%3D%271"),
            get("/items?cat=%27%20HAVING%201%3D1%20--"),
            get("/items?id=1%20RLIKE%20(SELECT%20(CASE%20WHEN%20(1%3D1)%20THEN%201%20ELSE%200x28%20END))"),
            get("/items?sort=id%20desc,%20IF(1%3D1,SLEEP(5),0)"),
            get("/items?id=%22))%20or%20((%22a%22%3D%22a"),
            post("/login", FORM, "user=tom%27+and+char_length(password)%3E8+and+%271%27%3D%271&pass=x"),
            post("/api/users", JSON, r#"{"name": "x' /*!50000UnIoN*/ SeLeCt 1,2-- -"}"#),
            post("/api/users", JSON, r#"{"q": "1\u0027 or \u0027x\u0027=\u0027x"}"#),
            header(get("/a"), "cookie", "track=1%27%20or%20%271%27%3D%271"),
            get("/api/items/1%20or%201%3D1"),
        ],
    );
}

#[test]
fn sql_look_alikes_pass() {
    pass(vec![
        get("/search?q=Emma%20O%27Brien%27s%20order%20%2312"),
        get("/search?q=it%27s%205%20o%27clock%20somewhere"),
        get("/search?q=I%20tried%20%27or%27%20and%20%27and%27%20filters"),
        get("/search?q=select%20the%20best%20plan%20for%20a%20family"),
        get("/search?q=how%20to%20drop%20a%20table%20in%20excel"),
        get("/search?q=1%20or%202%20bedroom%20apartment"),
        get("/search?q=between%2010%20and%2020%20dollars"),
        get("/search?q=group%20by%20vs%20order%20by"),
        get("/search?q=having%20fun%20in%20madrid"),
        get("/search?q=Doesn%27t%20work%20(OS%2014.4)%20--%20returned%20it"),
        get("/search?q=she%20said%20%27no%27%20--%20then%20left"),
        get("/search?q=Qty%205,%20user(s)%20allowed"),
        get("/scim/v2/Users?filter=userName%20eq%20%22O%27Connor%22"),
        post(
            "/login",
            FORM,
            "username=o.brien&password=x--y--z&remember=on",
        ),
        post(
            "/api/docs/5",
            JSON,
            r#"{"content": "The SQL was `UPDATE orders SET status = 'shipped' WHERE id = 42;` and it ran fine"}"#,
        ),
        post(
            "/api/docs/6",
            JSON,
            r#"{"content": "Use `SELECT id, name FROM products WHERE price < 10` in the report builder."}"#,
        ),
    ]);
}

#[test]
fn shell_syntax() {
    blocked_by(
        "cmdi-shell-syntax",
        vec![
            get("/ping?host=127.0.0.1%3B%20cat%20%2Fetc%2Fpasswd"),
            get("/ping?host=x%20%26%26%20uname%20-a"),
            get("/ping?host=%3Bc%27a%27t%20/etc/hosts"),
            get("/ping?host=%3Bw%5Cho%5Cam%5Ci"),
            get("/ping?host=%7C%2F%3F%3F%3F%2F%3F%3Ft%20%2F%3F%3F%3F%2Fp%3F%3Fs%3F%3F"),
            get("/ping?host=a%3Bls%24%7BIFS%7D-la"),
            get("/ping?host=%7Bcat,%2Fetc%2Fshadow%7D"),
            get("/ping?host=%3Bwh%24()oami"),
            get("/ping?host=%26%20w%5Eh%5Eo%5Ea%5Em%5Ei"),
            get("/ping?host=%0aid"),
            get("/ping?host=x%60whoami%60y"),
            get("/ping?host=%24(sleep%206)"),
            post("/hook", JSON, r#"{"cmd": "; sleep 10 #"}"#),
            post("/hook", JSON, r#"{"cmd": "& type C:\\Windows\\win.ini"}"#),
            post("/hook", JSON, r#"{"x": "system('cat /etc/passwd');"}"#),
            header(get("/a"), "x-forwarded-for", "1.2.3.4; ping -c 4 10.0.0.1"),
        ],
    );
}

#[test]
fn shell_look_alikes_pass() {
    pass(vec![
        get("/search?q=cat%20food%3B%20grain%20free"),
        get("/search?q=how%20to%20kill%20a%20process%20in%20linux"),
        get("/search?q=sleep%208%20hours"),
        get("/search?q=find%20my%20phone"),
        get("/search?q=ls%20400%20sedan"),
        get("/search?q=50%25%20off%20%7C%20sale"),
        header(
            get("/a"),
            "cookie",
            "last_search=cat%20food%3B%20grain%20free; theme=dark",
        ),
        post(
            "/api/addresses",
            JSON,
            r#"{"line1": "Apt #4; Floor 2, 77 Main St", "note": "Calle 5; apt 3"}"#,
        ),
        post(
            "/api/orders",
            JSON,
            r#"{"note": "Tom & Jerry; sleep tight", "gift": "Fish & chips; echo chamber"}"#,
        ),
        post(
            "/api/posts/1/comments",
            JSON,
            r#"{"body": "To reset: `rm -rf ~/.cache/app` then restart. Ran `npm install` and it worked.", "format": "markdown"}"#,
        ),
        post(
            "/api/posts/1/comments",
            JSON,
            r#"{"body": "```bash\ncurl -s https://api.example.net/v1/status | jq .\n```", "format": "markdown"}"#,
        ),
        post(
            "/graphql",
            JSON,
            r#"{"query": "{ products(first: 20, filter: {category: \"toys\"}) { nodes { id title price } } }"}"#,
        ),
        get("/category/shell-jackets"),
    ]);
}

#[test]
fn markup_contexts() {
    blocked_by(
        "xss-markup-context",
        vec![
            get("/s?q=%3Cx%20onclick%3Dalert(1)%3Eclick"),
            get("/s?q=%3Ccustom-el%20onpointerrawupdate%3Dalert(1)%3E"),
            get("/s?q=%3Ca%20href%3D%22jav%26%23x09%3Bascript%3Aalert(1)%22%3Ex%3C%2Fa%3E"),
            get("/s?q=%3Csvg%3E%3Cset%20attributeName%3Dhref%20to%3Djavascript%3Aalert(1)%20%2F%3E"),
            get("/s?q=%3Cmath%3E%3Cmaction%20xlink%3Ahref%3D%22javascript%3Aalert(1)%22%3Ex%3C%2Fmaction%3E"),
            get("/s?q=%3Cdiv%20style%3D%22x%3A%5C65%5C78%5C70%5C72%5C65%5C73%5C73%5C69%5C6f%5C6e(alert(1))%22%3E"),
            get("/s?q=%3Cmeta%20http-equiv%3D%22refresh%22%20content%3D%220%3Burl%3Djavascript%3Aalert(1)%22%3E"),
            post("/api/profile", JSON, r#"{"bio": "\" onmouseover=\"alert(1)\" x=\""}"#),
            post("/api/profile", JSON, r#"{"bio": "<iframe srcdoc=\"&lt;script&gt;alert(1)&lt;/script&gt;\"></iframe>"}"#),
        ],
    );
    blocked_by(
        "xss-context-polyglot",
        vec![get(
            "/s?q=%3C%2Fstylesheet%3E%2F%2F%5B%22%27%60--%3E%5D%5D%3E%5D%3C%2Fdiv%3E",
        )],
    );
    blocked_by(
        "xss-utf7",
        vec![post(
            "/comments",
            FORM,
            "body=%2BADw-script%2BAD4-alert(1)%2BADw-/script%2BAD4-",
        )],
    );
}

#[test]
fn markup_look_alikes_pass() {
    pass(vec![
        post(
            "/api/email-templates",
            JSON,
            r#"{"html": "<html><head><meta charset=\"utf-8\"><title>Welcome</title><link rel=\"stylesheet\" href=\"https://fonts.example.net/a.css\"><style>body{font-family:Arial}</style></head><body><p>Hi {{first_name}},</p><img src=\"/images/logo.png\" alt=\"logo\"><a href=\"{{tracking_url}}\">Track</a></body></html>"}"#,
        ),
        post(
            "/api/posts",
            JSON,
            r#"{"body": "<p>Hola <strong>equipo</strong></p><img src=\"https://cdn.example.net/a.png\" alt=\"a\" width=\"64\"><video controls src=\"/media/intro.mp4\"></video>"}"#,
        ),
        post(
            "/api/posts",
            JSON,
            r#"{"body": "<svg viewBox=\"0 0 24 24\"><path d=\"M12 2L2 7l10 5 10-5-10-5z\"/></svg> icon"}"#,
        ),
        post(
            "/api/addresses",
            JSON,
            r#"{"instructions": "Fragile: glass <handle with care>", "note": "a<b and b>c"}"#,
        ),
        get("/search?q=onload%20event%20explained"),
        get("/search?q=document.cookie%20meaning"),
        get("/search?q=%3Cb%3E%20vs%20%3Cstrong%3E"),
        post(
            "/api/config",
            JSON,
            r#"{"onload": "init", "mode": "fast", "note": "he said \"online=true\" was set"}"#,
        ),
    ]);
}

#[test]
fn protocol_abuse() {
    blocked_by(
        "protocol-method-override",
        vec![
            header(
                get("/account/delete?id=5"),
                "x-http-method-override",
                "DELETE",
            ),
            header(post("/api/x", JSON, "{}"), "x-http-method", "TRACE"),
            get("/admin/users?_method=DELETE&id=3"),
        ],
    );
    blocked_by(
        "protocol-path-override",
        vec![header(get("/"), "x-original-url", "/admin/config")],
    );
    blocked_by(
        "protocol-range-abuse",
        vec![header(
            get("/v.mp4"),
            "range",
            "bytes=0-0,0-1,0-2,0-3,0-4,0-5,0-6,0-7,0-8,0-9,0-10,0-11",
        )],
    );
    blocked_by(
        "protocol-charset-evasion",
        vec![post(
            "/api/search",
            "application/json; charset=ibm037",
            r#"{"q":"x"}"#,
        )],
    );
    blocked_by(
        "protocol-transfer-encoding",
        vec![header(
            post("/api/x", JSON, "{}"),
            "transfer-encoding",
            "chunked, identity",
        )],
    );
    blocked_by(
        "protocol-content-length",
        vec![header(post("/api/x", JSON, "{}"), "content-length", "2, 2")],
    );
    blocked_by(
        "protocol-forwarded-host",
        vec![header(
            get("/reset-password"),
            "x-forwarded-host",
            "x.example/evil?",
        )],
    );
    blocked_by(
        "protocol-method-unusual",
        vec![
            method(get("/"), "TRACE"),
            method(get("/webdav/"), "PROPFIND"),
        ],
    );
    blocked_by(
        "protocol-smuggled-request",
        vec![post(
            "/api/orders",
            "text/plain",
            "0\r\n\r\nGET /admin HTTP/1.1\r\nHost: localhost\r\n\r\n",
        )],
    );
    blocked_by(
        "protocol-crlf-injection",
        vec![get("/search?q=x%0d%0aSet-Cookie:%20admin=1")],
    );
}

#[test]
fn protocol_look_alikes_pass() {
    pass(vec![
        header(
            post("/api/items/1", JSON, "{}"),
            "x-http-method-override",
            "PATCH",
        ),
        header(get("/videos/1.mp4"), "range", "bytes=500-999,2000-2499"),
        header(get("/"), "x-forwarded-host", "shop.example.com:8443"),
        post("/api/x", "application/json; charset=utf-8", "{}"),
        post(
            "/form",
            "application/x-www-form-urlencoded; charset=Shift_JIS",
            "a=1",
        ),
        method(get("/api/items"), "OPTIONS"),
        post(
            "/api/docs",
            JSON,
            r#"{"content": "An HTTP request starts with a request line such as GET /index.html HTTP/1.1 followed by headers."}"#,
        ),
    ]);
}

#[test]
fn code_injection_crs_style() {
    blocked_by(
        "code-php-object-injection",
        vec![
            post(
                "/api/prefs",
                FORM,
                "data=O%3A8%3A%22stdClass%22%3A1%3A%7Bs%3A4%3A%22exec%22%3Bs%3A2%3A%22id%22%3B%7D",
            ),
            header(
                get("/"),
                "cookie",
                "cart=a%3A2%3A%7Bi%3A0%3BO%3A10%3A%22Monolog%5CLog%22%3A0%3A%7B%7D%7D",
            ),
        ],
    );
    blocked_by(
        "code-deserialization",
        vec![
            header(
                get("/"),
                "cookie",
                "session=rO0ABXNyABFqYXZhLnV0aWwuSGFzaE1hcA==",
            ),
            post(
                "/api/import",
                JSON,
                r#"{"blob": "AAEAAAD/////AQAAAAAAAAAMAgAAAA=="}"#,
            ),
            post(
                "/api/yaml",
                "text/plain",
                "!!python/object/apply:os.system ['id']",
            ),
            post(
                "/api/import",
                JSON,
                r#"{"x": "_$$ND_FUNC$$_function(){require('child_process').exec('id')}()"}"#,
            ),
        ],
    );
    blocked_by(
        "code-prototype-pollution",
        vec![
            get("/api/settings?__proto__%5BisAdmin%5D=true"),
            get("/api/settings?constructor%5Bprototype%5D%5Badmin%5D=1"),
            post(
                "/api/settings",
                JSON,
                r#"{"__proto__": {"polluted": true}}"#,
            ),
        ],
    );
    blocked_by(
        "code-ssi-injection",
        vec![post(
            "/guestbook",
            FORM,
            "msg=%3C!--%23exec%20cmd%3D%22ls%22%20--%3E",
        )],
    );
    blocked_by(
        "jndi-interpolation-lookup",
        vec![
            get("/s?q=%24%7Bscript%3Ajavascript%3Ajava.lang.Runtime.getRuntime().exec('id')%7D"),
            header(get("/"), "x-api-version", "${dns:address|x.oast.example}"),
            post("/api/x", JSON, r#"{"t": "${url:UTF-8:http://x.example/}"}"#),
        ],
    );
}

#[test]
fn code_look_alikes_pass() {
    pass(vec![
        post(
            "/api/docs",
            JSON,
            r#"{"content": "Radio:1 and Video:2 are the inputs; O:K?"}"#,
        ),
        post(
            "/api/docs",
            JSON,
            r#"{"content": "```js\nconst total = items.reduce((a, b) => a + b.price, 0);\nconsole.log(`Total: ${total}`);\n```"}"#,
        ),
        post(
            "/api/docs",
            JSON,
            r#"{"content": "Set ${url} and ${file} in the template"}"#,
        ),
        post(
            "/api/docs",
            JSON,
            r#"{"content": "Object.prototype is shared by all objects"}"#,
        ),
        post("/api/posts", JSON, r#"{"body": "<!-- comment --> hello"}"#),
    ]);
}

#[test]
fn scanner_probes() {
    blocked_by(
        "scanner-secret-file",
        vec![
            get("/.env.production"),
            get("/app/.git/config"),
            get("/.aws/credentials"),
            get("/home/.bash_history"),
            get("/.well-known/../.env"),
        ],
    );
    blocked_by(
        "scanner-config-probe",
        vec![
            get("/composer.lock"),
            get("/settings.py"),
            get("/app/web.config"),
            get("/Dockerfile"),
        ],
    );
    blocked_by(
        "scanner-backup-file",
        vec![
            get("/config.php.bak"),
            get("/wp-config.php~"),
            get("/dump.sql.gz"),
            get("/www.zip"),
            get("/index.php.swp"),
            get("/admin/config.yml.old"),
        ],
    );
    blocked_by(
        "scanner-header",
        vec![header(get("/"), "acunetix-aspect", "enabled")],
    );
    blocked_by(
        "scanner-user-agent",
        vec![
            header(get("/"), "user-agent", "BlackWidow"),
            header(
                get("/"),
                "user-agent",
                "Mozilla/5.0 (compatible; Nmap Scripting Engine; https://nmap.org/book/nse.html)",
            ),
        ],
    );
}

#[test]
fn scanner_look_alikes_pass() {
    pass(vec![
        get("/v1/repos/acme/app/contents/src/Dockerfile"),
        get("/api/v1/packages/%40babel%2Fcore/package-lock.json/history"),
        get("/v1/releases/v2.16.0/assets/app-linux-x86_64.tar.gz"),
        get("/downloads/report-2023.pdf"),
        get("/.well-known/security.txt"),
        get("/.well-known/openid-configuration"),
        get("/assets/config.json"),
        get("/v1/domains/shop.example.com/dns-records"),
        header(
            get("/"),
            "user-agent",
            "aws-sdk-go/1.44 (go1.22; linux; amd64) exec-env/AWS_Lambda_go1.x",
        ),
        header(get("/"), "user-agent", "python-requests/2.32.3"),
    ]);
}

#[test]
fn traversal_unc_and_streams() {
    blocked_by(
        "traversal-unc-or-stream",
        vec![
            get("/files?path=%5C%5C10.0.0.5%5Cshare%5Cx"),
            get("/index.php::$DATA"),
        ],
    );
}
