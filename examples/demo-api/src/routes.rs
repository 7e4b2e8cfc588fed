//! The demo API's routes. [`handle`] maps a parsed request to a response; it never panics
//! on request data.

use std::fmt::Write as _;

use crate::http::{Request, Response};
use crate::json::{self, Json};
use crate::store::{Store, User};
use crate::url::{form_value, parse_form, percent_decode};

/// `GET /export` without `limit`.
pub const EXPORT_DEFAULT: u64 = 1000;
/// Larger `limit`s are clamped to this.
pub const EXPORT_MAX: u64 = 100_000;

const ENDPOINTS: &[&str] = &[
    "GET /health",
    "POST /login",
    "GET /users",
    "GET|PUT|PATCH /users/{id}",
    "GET|POST /orders",
    "GET /orders/{id}",
    "GET /search?q=",
    "GET /export?limit=",
    "POST /comments",
    "POST /upload",
];

pub fn json_response(status: u16, body: &Json) -> Response {
    Response::new(status, body.to_string().into_bytes())
}

pub fn error_response(status: u16, message: &str) -> Response {
    json_response(status, &Json::obj([("error", Json::str(message))]))
}

enum Route<'a> {
    Index,
    Health,
    Login,
    Users,
    User(&'a str),
    Orders,
    Order(&'a str),
    Search,
    Export,
    Comments,
    Upload,
}

impl Route<'_> {
    fn allowed(&self) -> &'static [&'static str] {
        match self {
            Route::Index
            | Route::Health
            | Route::Users
            | Route::Order(_)
            | Route::Search
            | Route::Export => &["GET", "HEAD"],
            Route::Login | Route::Comments | Route::Upload => &["POST"],
            Route::User(_) => &["GET", "HEAD", "PUT", "PATCH"],
            Route::Orders => &["GET", "HEAD", "POST"],
        }
    }
}

/// Answers one request.
pub fn handle(req: &Request, store: &Store) -> Response {
    let (raw_path, query) = req.head.path_and_query();
    let query = query.unwrap_or_default();
    let segments: Vec<String> = raw_path
        .split(|&b| b == b'/')
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(&percent_decode(s, false)).into_owned())
        .collect();
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let method = req.head.method.as_str();
    let path = String::from_utf8_lossy(raw_path);

    let route = match *segs.as_slice() {
        [] => Route::Index,
        ["health"] => Route::Health,
        ["login"] => Route::Login,
        ["users"] => Route::Users,
        ["users", id] => Route::User(id),
        ["orders"] => Route::Orders,
        ["orders", id] => Route::Order(id),
        ["search"] => Route::Search,
        ["export"] => Route::Export,
        ["comments"] => Route::Comments,
        ["upload"] => Route::Upload,
        _ => {
            return json_response(
                404,
                &Json::obj([
                    ("error", Json::str("not found")),
                    ("method", Json::str(method)),
                    ("path", Json::str(path)),
                ]),
            )
        }
    };
    let allowed = route.allowed();
    if !allowed.contains(&method) {
        let body = Json::obj([
            ("error", Json::str("method not allowed")),
            ("method", Json::str(method)),
            ("path", Json::str(path)),
            (
                "allowed",
                Json::Arr(allowed.iter().map(|&m| Json::str(m)).collect()),
            ),
        ]);
        return json_response(405, &body).with_header("allow", allowed.join(", "));
    }

    match route {
        Route::Index => json_response(
            200,
            &Json::obj([
                ("service", Json::str("vigil-demo-api")),
                (
                    "endpoints",
                    Json::Arr(ENDPOINTS.iter().map(|&e| Json::str(e)).collect()),
                ),
            ]),
        ),
        Route::Health => json_response(200, &Json::obj([("status", Json::str("ok"))])),
        Route::Login => login(req, store),
        Route::Users => list_users(store),
        Route::User(id) if method == "PUT" || method == "PATCH" => update_user(req, store, id),
        Route::User(id) => get_user(store, id),
        Route::Orders if method == "POST" => create_order(req, store),
        Route::Orders => list_orders(store, query),
        Route::Order(id) => get_order(store, id),
        Route::Search => search(store, query),
        Route::Export => export(query),
        Route::Comments => {
            let id = {
                let mut data = store.lock();
                data.comments += 1;
                data.comments
            };
            json_response(
                200,
                &Json::obj([
                    ("id", Json::from(id)),
                    ("status", Json::str("received")),
                    ("length", Json::from(req.body.len())),
                ]),
            )
        }
        Route::Upload => {
            let content_type = req
                .head
                .header_str("content-type")
                .map_or(Json::Null, Json::Str);
            json_response(
                200,
                &Json::obj([
                    ("status", Json::str("uploaded")),
                    ("bytes", Json::from(req.body.len())),
                    ("content_type", content_type),
                ]),
            )
        }
    }
}

/// The request body as a JSON object: from `application/x-www-form-urlencoded` (all values
/// strings) or JSON. Errors are ready-made 400 responses.
fn body_object(req: &Request) -> Result<Json, Response> {
    let content_type = req
        .head
        .header_str("content-type")
        .unwrap_or_default()
        .to_ascii_lowercase();
    if content_type.starts_with("application/x-www-form-urlencoded") {
        let pairs = parse_form(&req.body);
        return Ok(Json::Obj(
            pairs.into_iter().map(|(k, v)| (k, Json::Str(v))).collect(),
        ));
    }
    if req.body.iter().all(u8::is_ascii_whitespace) {
        return Err(error_response(400, "request body required"));
    }
    let text = std::str::from_utf8(&req.body)
        .map_err(|_| error_response(400, "request body is not valid UTF-8"))?;
    match json::parse(text) {
        Ok(v @ Json::Obj(_)) => Ok(v),
        Ok(_) => Err(error_response(400, "expected a JSON object")),
        Err(e) => Err(json_response(
            400,
            &Json::obj([
                ("error", Json::str("invalid JSON body")),
                ("detail", Json::str(e.to_string())),
            ]),
        )),
    }
}

fn login(req: &Request, store: &Store) -> Response {
    let fields = match body_object(req) {
        Ok(f) => f,
        Err(resp) => return resp,
    };
    let username = fields.get("username").and_then(Json::as_str);
    let password = fields.get("password").and_then(Json::as_str);
    let user = match (username, password) {
        (Some(u), Some(p)) => store.authenticate(u, p),
        _ => None,
    };
    match user {
        Some(user) => json_response(
            200,
            &Json::obj([
                ("token", Json::Str(store.new_token(&user.username))),
                ("token_type", Json::str("Bearer")),
                ("expires_in", Json::Int(3600)),
                ("user", user.to_json()),
            ]),
        ),
        None => error_response(401, "invalid credentials"),
    }
}

fn parse_id(id: &str) -> Option<i64> {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    id.parse().ok()
}

fn list_users(store: &Store) -> Response {
    let data = store.lock();
    let users: Vec<Json> = data.users.iter().map(User::to_json).collect();
    json_response(
        200,
        &Json::obj([
            ("count", Json::from(users.len())),
            ("users", Json::Arr(users)),
        ]),
    )
}

fn get_user(store: &Store, id: &str) -> Response {
    let data = store.lock();
    match parse_id(id).and_then(|id| data.users.iter().find(|u| u.id == id)) {
        Some(user) => json_response(200, &user.to_json()),
        None => error_response(404, "user not found"),
    }
}

fn update_user(req: &Request, store: &Store, id: &str) -> Response {
    let fields = match body_object(req) {
        Ok(f) => f,
        Err(resp) => return resp,
    };
    let mut name = None;
    let mut email = None;
    for (key, slot) in [("name", &mut name), ("email", &mut email)] {
        match fields.get(key) {
            None => {}
            Some(Json::Str(s)) => *slot = Some(s.clone()),
            Some(_) => return error_response(400, &format!("{key} must be a string")),
        }
    }
    let mut data = store.lock();
    let Some(user) = parse_id(id).and_then(|id| data.users.iter_mut().find(|u| u.id == id)) else {
        return error_response(404, "user not found");
    };
    // Other fields (role, id, password, ...) are deliberately not assignable.
    if let Some(name) = name {
        user.name = name;
    }
    if let Some(email) = email {
        user.email = email;
    }
    json_response(200, &user.to_json())
}

fn list_orders(store: &Store, query: &[u8]) -> Response {
    let params = parse_form(query);
    let user_filter = match form_value(&params, "user_id") {
        None => None,
        Some(v) => match parse_id(&v) {
            Some(id) => Some(id),
            None => return error_response(400, "user_id must be a number"),
        },
    };
    let data = store.lock();
    let orders: Vec<Json> = data
        .orders
        .iter()
        .filter(|(_, o)| {
            user_filter.is_none() || o.get("user_id").and_then(Json::as_i64) == user_filter
        })
        .map(|(_, o)| o.clone())
        .collect();
    json_response(
        200,
        &Json::obj([
            ("count", Json::from(orders.len())),
            ("orders", Json::Arr(orders)),
        ]),
    )
}

fn get_order(store: &Store, id: &str) -> Response {
    let data = store.lock();
    match parse_id(id).and_then(|id| data.orders.iter().find(|(oid, _)| *oid == id)) {
        Some((_, order)) => json_response(200, order),
        None => error_response(404, "order not found"),
    }
}

fn create_order(req: &Request, store: &Store) -> Response {
    let Json::Obj(fields) = (match body_object(req) {
        Ok(f) => f,
        Err(resp) => return resp,
    }) else {
        return error_response(400, "expected a JSON object");
    };
    let mut data = store.lock();
    let id = data.next_order_id;
    data.next_order_id += 1;
    let mut members = vec![("id".to_string(), Json::Int(id))];
    members.extend(
        fields
            .into_iter()
            .filter(|(k, _)| k != "id" && k != "status"),
    );
    members.push(("status".to_string(), Json::str("created")));
    let order = Json::Obj(members);
    data.orders.push((id, order.clone()));
    json_response(201, &order).with_header("location", format!("/orders/{id}"))
}

fn search(store: &Store, query: &[u8]) -> Response {
    let q = form_value(&parse_form(query), "q").unwrap_or_default();
    let needle = q.to_lowercase();
    let data = store.lock();
    let results: Vec<Json> = data
        .users
        .iter()
        .filter(|u| u.name.to_lowercase().contains(&needle) || u.username.contains(&needle))
        .map(User::to_json)
        .collect();
    json_response(
        200,
        &Json::obj([
            ("query", Json::Str(q)),
            ("count", Json::from(results.len())),
            ("results", Json::Arr(results)),
        ]),
    )
}

fn export(query: &[u8]) -> Response {
    let limit = match form_value(&parse_form(query), "limit") {
        None => EXPORT_DEFAULT,
        Some(v) => match v.trim().parse::<u64>() {
            Ok(n) => n.min(EXPORT_MAX),
            // Absurdly large numbers are still "more than the maximum".
            Err(_) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => EXPORT_MAX,
            Err(_) => return error_response(400, "limit must be a non-negative integer"),
        },
    };
    const PLANS: [&str; 3] = ["free", "pro", "enterprise"];
    let mut out = String::with_capacity(limit as usize * 110 + 2);
    out.push('[');
    for i in 1..=limit {
        if i > 1 {
            out.push(',');
        }
        let cents = (i * 7919) % 1_000_000;
        // Infallible: writing to a String.
        let _ = write!(
            out,
            r#"{{"id":{i},"username":"user{i}","email":"user{i}@example.com","plan":"{}","balance":{}.{:02},"active":{}}}"#,
            PLANS[(i % 3) as usize],
            cents / 100,
            cents % 100,
            i % 7 != 0
        );
    }
    out.push(']');
    Response::new(200, out.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::read_request;
    use std::io::{BufReader, Cursor};

    fn call(store: &Store, raw: &[u8]) -> (u16, Json, Response) {
        let req = read_request(&mut BufReader::new(Cursor::new(raw.to_vec())))
            .unwrap()
            .unwrap();
        let resp = handle(&req, store);
        let body = json::parse(std::str::from_utf8(&resp.body).unwrap()).unwrap();
        (resp.status, body, resp)
    }

    fn post(path: &str, content_type: &str, body: &str) -> Vec<u8> {
        with_body("POST", path, content_type, body)
    }

    fn with_body(method: &str, path: &str, content_type: &str, body: &str) -> Vec<u8> {
        format!(
            "{method} {path} HTTP/1.1\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    #[test]
    fn health_and_index() {
        let s = Store::seeded();
        let (status, body, _) = call(&s, b"GET /health HTTP/1.1\r\n\r\n");
        assert_eq!(status, 200);
        assert_eq!(body.to_string(), r#"{"status":"ok"}"#);
        let (status, body, _) = call(&s, b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(status, 200);
        assert!(body.get("endpoints").is_some());
    }

    #[test]
    fn login_json_and_form() {
        let s = Store::seeded();
        let (status, body, _) = call(
            &s,
            &post(
                "/login",
                "application/json",
                r#"{"username":"alice","password":"wonderland"}"#,
            ),
        );
        assert_eq!(status, 200);
        let token = body
            .get("token")
            .and_then(Json::as_str)
            .unwrap()
            .to_string();
        assert!(token.starts_with("vgl_") && token.len() == 36);
        assert_eq!(
            body.get("user").and_then(|u| u.get("username")),
            Some(&Json::str("alice"))
        );
        assert!(body.get("user").and_then(|u| u.get("password")).is_none());

        let (status, body, _) = call(
            &s,
            &post(
                "/login",
                "application/x-www-form-urlencoded",
                "username=bob&password=builder",
            ),
        );
        assert_eq!(status, 200);
        assert_ne!(
            body.get("token").and_then(Json::as_str),
            Some(token.as_str())
        );

        for bad in [
            r#"{"username":"alice","password":"nope"}"#,
            r#"{"username":"dave","password":""}"#,
            r#"{"username":"alice"}"#,
            r#"{"username":1,"password":2}"#,
        ] {
            let (status, body, _) = call(&s, &post("/login", "application/json", bad));
            assert_eq!(status, 401, "{bad}");
            assert_eq!(body.to_string(), r#"{"error":"invalid credentials"}"#);
        }
        let (status, _, _) = call(&s, &post("/login", "application/json", "{not json"));
        assert_eq!(status, 400);
        let (status, _, _) = call(&s, b"GET /login HTTP/1.1\r\n\r\n");
        assert_eq!(status, 405);
    }

    #[test]
    fn users() {
        let s = Store::seeded();
        let (status, body, _) = call(&s, b"GET /users HTTP/1.1\r\n\r\n");
        assert_eq!(status, 200);
        assert_eq!(body.get("count"), Some(&Json::Int(20)));
        let (status, body, _) = call(&s, b"GET /users/1 HTTP/1.1\r\n\r\n");
        assert_eq!(status, 200);
        assert_eq!(body.get("username"), Some(&Json::str("alice")));
        for path in [
            "/users/99",
            "/users/abc",
            "/users/-1",
            "/users/99999999999999999999",
        ] {
            let (status, _, _) = call(&s, format!("GET {path} HTTP/1.1\r\n\r\n").as_bytes());
            assert_eq!(status, 404, "{path}");
        }
        let raw = with_body(
            "PATCH",
            "/users/2",
            "application/json",
            r#"{"name":"Robert","role":"admin"}"#,
        );
        let (status, body, _) = call(&s, &raw);
        assert_eq!(status, 200);
        assert_eq!(body.get("name"), Some(&Json::str("Robert")));
        assert_eq!(body.get("role"), Some(&Json::str("user")));
        let raw = with_body(
            "PUT",
            "/users/2",
            "application/json",
            r#"{"email":"r@example.com"}"#,
        );
        let (status, body, _) = call(&s, &raw);
        assert_eq!(status, 200);
        assert_eq!(body.get("email"), Some(&Json::str("r@example.com")));
        let raw = with_body("PUT", "/users/77", "application/json", "{}");
        assert_eq!(call(&s, &raw).0, 404);
        let (status, _, resp) = call(&s, b"DELETE /users/1 HTTP/1.1\r\n\r\n");
        assert_eq!(status, 405);
        assert_eq!(
            resp.headers,
            vec![("allow".to_string(), "GET, HEAD, PUT, PATCH".to_string())]
        );
    }

    #[test]
    fn orders() {
        let s = Store::seeded();
        let (status, body, _) = call(&s, b"GET /orders HTTP/1.1\r\n\r\n");
        assert_eq!(status, 200);
        let count = body.get("count").and_then(Json::as_i64).unwrap();
        assert!(count >= 5);
        let (_, body, _) = call(&s, b"GET /orders?user_id=1 HTTP/1.1\r\n\r\n");
        assert_eq!(body.get("count"), Some(&Json::Int(2)));
        let (status, body, _) = call(&s, b"GET /orders/1001 HTTP/1.1\r\n\r\n");
        assert_eq!(status, 200);
        assert_eq!(body.get("id"), Some(&Json::Int(1001)));
        assert_eq!(call(&s, b"GET /orders/1 HTTP/1.1\r\n\r\n").0, 404);

        let (status, body, resp) = call(
            &s,
            &post(
                "/orders",
                "application/json",
                r#"{"id":5,"item":"Lamp","quantity":2,"note":"fragile"}"#,
            ),
        );
        assert_eq!(status, 201);
        let id = body.get("id").and_then(Json::as_i64).unwrap();
        assert!(id > 1001);
        assert_eq!(body.get("item"), Some(&Json::str("Lamp")));
        assert_eq!(body.get("status"), Some(&Json::str("created")));
        assert!(resp
            .headers
            .contains(&("location".to_string(), format!("/orders/{id}"))));
        let (status, again, _) = call(&s, format!("GET /orders/{id} HTTP/1.1\r\n\r\n").as_bytes());
        assert_eq!(status, 200);
        assert_eq!(again, body);
        assert_eq!(call(&s, &post("/orders", "application/json", "[1]")).0, 400);
        assert_eq!(call(&s, &post("/orders", "text/plain", "")).0, 400);
        assert_eq!(
            call(
                &s,
                &post("/orders", "application/x-www-form-urlencoded", "item=Cup")
            )
            .0,
            201
        );
    }

    #[test]
    fn search_decodes_query() {
        let s = Store::seeded();
        let (status, body, _) = call(&s, b"GET /search?q=alice+lid HTTP/1.1\r\n\r\n");
        assert_eq!(status, 200);
        assert_eq!(body.get("query"), Some(&Json::str("alice lid")));
        assert_eq!(body.get("count"), Some(&Json::Int(1)));
        let (_, body, _) = call(&s, b"GET /search?x=1&q=%48opper HTTP/1.1\r\n\r\n");
        assert_eq!(body.get("count"), Some(&Json::Int(1)));
        let (_, body, _) = call(&s, b"GET /search?q=%27%20OR%201%3D1-- HTTP/1.1\r\n\r\n");
        assert_eq!(body.get("query"), Some(&Json::str("' OR 1=1--")));
        assert_eq!(body.get("count"), Some(&Json::Int(0)));
        let (_, body, _) = call(&s, b"GET /search HTTP/1.1\r\n\r\n");
        assert_eq!(body.get("count"), Some(&Json::Int(20)));
        let (_, body, _) = call(&s, b"GET /search?q=%FF%00 HTTP/1.1\r\n\r\n");
        assert_eq!(body.get("count"), Some(&Json::Int(0)));
    }

    #[test]
    fn export_limits() {
        let s = Store::seeded();
        let len = |q: &str| {
            let (status, body, _) = call(&s, format!("GET /export{q} HTTP/1.1\r\n\r\n").as_bytes());
            assert_eq!(status, 200);
            match body {
                Json::Arr(items) => items.len(),
                other => panic!("not an array: {other}"),
            }
        };
        assert_eq!(len(""), 1000);
        assert_eq!(len("?limit=0"), 0);
        assert_eq!(len("?limit=3"), 3);
        assert_eq!(len("?limit=100001"), 100_000);
        assert_eq!(len("?limit=999999999999999999999999"), 100_000);
        assert_eq!(call(&s, b"GET /export?limit=-5 HTTP/1.1\r\n\r\n").0, 400);
        assert_eq!(call(&s, b"GET /export?limit=abc HTTP/1.1\r\n\r\n").0, 400);
    }

    #[test]
    fn comments_upload_and_unknown() {
        let s = Store::seeded();
        let (status, body, _) = call(&s, &post("/comments", "text/plain", "<script>x</script>"));
        assert_eq!(status, 200);
        assert_eq!(body.get("length"), Some(&Json::Int(18)));
        let (status, body, _) = call(&s, &post("/upload", "application/octet-stream", "abc"));
        assert_eq!(status, 200);
        assert_eq!(body.get("bytes"), Some(&Json::Int(3)));
        assert_eq!(
            body.get("content_type"),
            Some(&Json::str("application/octet-stream"))
        );
        let (status, body, _) = call(&s, b"GET /nope/x%2Fy HTTP/1.1\r\n\r\n");
        assert_eq!(status, 404);
        assert_eq!(body.get("error"), Some(&Json::str("not found")));
        assert_eq!(body.get("path"), Some(&Json::str("/nope/x%2Fy")));
        assert_eq!(call(&s, b"GET /users/1/extra HTTP/1.1\r\n\r\n").0, 404);
        assert_eq!(call(&s, b"GET /health/ HTTP/1.1\r\n\r\n").0, 200);
        assert_eq!(call(&s, b"GET /\xff\xfe HTTP/1.1\r\n\r\n").0, 404);
    }
}
