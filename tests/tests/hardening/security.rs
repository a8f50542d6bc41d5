//! Access control and secrets: every route needs the token, the login cookie is locked down,
//! off-loopback needs a token, foreign hosts and cross-site writes are refused, no credential
//! ever reaches an output, and static files cannot be escaped.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use backend::startup::Application;
use common::{RunDetail, RunId};
use futures_util::StreamExt;
use reqwest::Method;
use tests::{BinaryServer, TestDirs, serve_flags, spawn_app_with, test_args, unique_prompt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::support::{raw_http, raw_status};

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;
type WsResponse = tokio_tungstenite::tungstenite::handshake::client::Response;

const TOKEN: &str = "s3cret-test-token-0123456789";

#[tokio::test]
async fn every_route_answers_401_without_the_token_and_not_401_with_it() {
    let app = spawn_app_with(|args| args.auth_token = Some(TOKEN.to_owned())).await;
    let id = "00000000-0000-0000-0000-000000000000";
    let paths = [
        "/api/runs".to_owned(),
        format!("/api/runs/{id}"),
        format!("/api/runs/{id}/logs"),
        format!("/api/runs/{id}/cancel"),
        "/api/health".to_owned(),
        "/api/ws".to_owned(),
        "/api/emulator/faults".to_owned(),
        "/metrics".to_owned(),
        "/".to_owned(),
        "/runs/x".to_owned(),
        "/index.html".to_owned(),
    ];
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let mut checked = 0;
    for path in &paths {
        for method in [Method::GET, Method::POST, Method::PUT, Method::DELETE] {
            let open = client.request(method.clone(), app.url(path)).send().await.unwrap();
            assert_eq!(open.status(), 401, "{method} {path} without the token");
            let wrong = client.request(method.clone(), app.url(path)).bearer_auth("wrong").send().await.unwrap();
            assert_eq!(wrong.status(), 401, "{method} {path} with a wrong token");
            let authorized = client.request(method.clone(), app.url(path)).bearer_auth(TOKEN).send().await.unwrap();
            assert_ne!(authorized.status(), 401, "{method} {path} with the token");
            checked += 1;
        }
    }
    // The WebSocket upgrade itself.
    let (status, _) = app.ws_refused("").await;
    assert_eq!(status, 401);
    assert!(no_runs(&app, &client).await, "nothing was created by the unauthorized requests");
    eprintln!("FIGURE auth: {checked} method×route pairs: 401 without / with a wrong token, not 401 with it; WS 401");
}

/// Whether the server holds no run (asked with the token).
async fn no_runs(app: &tests::TestApp, client: &reqwest::Client) -> bool {
    let runs: Vec<serde_json::Value> =
        client.get(app.url("/api/runs")).bearer_auth(TOKEN).send().await.unwrap().json().await.unwrap();
    runs.is_empty()
}

#[tokio::test]
async fn the_token_url_sets_a_locked_down_cookie_and_redirects() {
    let app = spawn_app_with(|args| args.auth_token = Some(TOKEN.to_owned())).await;
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let response = client.get(app.url(&format!("/runs/x?token={TOKEN}&tab=logs"))).send().await.unwrap();
    assert_eq!(response.status(), 303);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(location, "/runs/x?tab=logs", "the token leaves the URL");
    let cookie = response.headers()["set-cookie"].to_str().unwrap().to_owned();
    // Attribute by attribute, as a browser parses them (names case-insensitive), so `Secure`
    // is not found inside another attribute's value and a missing one is named.
    let mut parts = cookie.split(';').map(str::trim);
    let pair = parts.next().unwrap();
    assert_eq!(pair.split_once('=').map(|(_, value)| value), Some(TOKEN), "the cookie carries the token: {cookie}");
    let attributes: Vec<String> = parts.map(str::to_ascii_lowercase).collect();
    for attribute in ["httponly", "samesite=strict", "secure", "path=/"] {
        assert!(attributes.iter().any(|a| a == attribute), "the README promises `{attribute}`: {cookie}");
    }
    assert!(!attributes.iter().any(|a| a.starts_with("domain=")), "a host-only cookie: {cookie}");
    let with_cookie = client.get(app.url("/api/runs")).header("cookie", pair).send().await.unwrap();
    assert_eq!(with_cookie.status(), 200);
    let wrong = client.get(app.url("/?token=nope")).send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers().get("set-cookie").is_none());
    eprintln!("FIGURE login: 303 → {location}; cookie `{}`", cookie.replace(TOKEN, "<token>"));
}

#[tokio::test]
async fn the_server_refuses_to_listen_off_loopback_without_a_token() {
    let dirs = TestDirs::new();
    for token in [None, Some(String::new()), Some("   ".to_owned())] {
        let mut args = test_args(&dirs);
        args.addr = "0.0.0.0:0".parse().unwrap();
        args.auth_token.clone_from(&token);
        let error = Application::build(args).await.expect_err("refused").to_string();
        assert!(error.contains("token"), "{token:?}: {error}");
    }
    let mut args = test_args(&dirs);
    args.addr = "0.0.0.0:0".parse().unwrap();
    args.auth_token = Some(TOKEN.to_owned());
    let application = Application::build(args).await.expect("with a token it starts");
    drop(application);
    eprintln!("FIGURE off-loopback: 0.0.0.0 without / with an empty token refused, with a token accepted");
}

#[tokio::test]
async fn foreign_hosts_and_cross_site_writes_are_refused_and_create_nothing() {
    let app = spawn_app_with(|_| {}).await;
    let body = serde_json::json!({ "prompt": "cross-site" }).to_string();
    let evil_host = app.client.get(app.url("/api/health")).header("host", "evil.example").send().await.unwrap();
    assert_eq!(evil_host.status(), 421);
    let evil_host_post = app
        .client
        .post(app.url("/api/runs"))
        .header("host", "evil.example:8080")
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(evil_host_post.status(), 421);
    // The README: a cross-origin write gets `403`; a body that is not JSON gets `415`. Exact
    // statuses, so a refusal for the wrong reason (a 400 from the body parser, a 404) fails.
    let other_port = format!("http://127.0.0.1:{}", app.port.wrapping_add(1));
    let mut statuses = Vec::new();
    for (name, value, content_type, expected) in [
        ("origin", "http://evil.example", "application/json", 403),
        ("origin", "null", "application/json", 403),
        ("origin", "http://127.0.0.1.evil.example", "application/json", 403),
        ("origin", "http://localhost:3000", "application/json", 403),
        ("origin", other_port.as_str(), "application/json", 403),
        ("sec-fetch-site", "cross-site", "application/json", 403),
        ("sec-fetch-site", "same-site", "application/json", 403),
        ("origin", "http://evil.example", "text/plain", 403),
        ("x-none", "form", "text/plain", 415),
        ("x-none", "form", "application/x-www-form-urlencoded", 415),
        ("x-none", "form", "multipart/form-data; boundary=x", 415),
    ] {
        let response = app
            .client
            .post(app.url("/api/runs"))
            .header(name, value)
            .header("content-type", content_type)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let (status, message) = tests::error_of(response).await;
        assert_eq!(status.as_u16(), expected, "{name}: {value} ({content_type}): {message}");
        statuses.push(format!("{name}={value} {content_type} → {status}"));
    }
    // Cancelling and fault injection from another site are refused too, before the route runs
    // (a cancel of an unknown run would otherwise be a 404).
    let cancel = app
        .client
        .post(app.url("/api/runs/00000000-0000-0000-0000-000000000000/cancel"))
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(cancel.status(), 403);
    let fault = app
        .client
        .put(app.url("/api/emulator/faults"))
        .header("origin", "http://evil.example")
        .json(&serde_json::json!({ "kind": "throttle", "fail_first": 1 }))
        .send()
        .await
        .unwrap();
    assert_eq!(fault.status(), 403);
    assert!(app.runs().await.is_empty(), "a cross-site request created a run");
    assert!(app.app.emulator().expect("the test app runs on the emulator").status().plan.is_none());
    // The control: the page's own origin, same request, is accepted, so the refusals above are
    // about the origin and nothing else.
    let own = app
        .client
        .post(app.url("/api/runs"))
        .header("origin", app.address.as_str())
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 202, "the page's own origin");
    eprintln!(
        "FIGURE cross-site: Host evil → 421; {statuses:?}; cross-site cancel and PUT faults → 403; own origin → 202"
    );
}

#[tokio::test]
async fn in_token_mode_another_origin_gets_403_even_with_the_cookie_and_the_page_s_own_is_accepted() {
    let app = spawn_app_with(|args| {
        args.auth_token = Some(TOKEN.to_owned());
        args.allowed_hosts = vec!["app.example.com".to_owned()];
    })
    .await;
    let host = format!("app.example.com:{}", app.port);
    let own = format!("http://{host}");
    let cookie = login_cookie(&app).await;
    let body = serde_json::json!({ "prompt": "from somewhere" }).to_string();
    let post = |origin: Option<&str>, site: Option<&str>| {
        let mut request = app
            .client
            .post(app.url("/api/runs"))
            .header("host", host.as_str())
            .header("cookie", cookie.as_str())
            .header("content-type", "application/json")
            .body(body.clone());
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        if let Some(site) = site {
            request = request.header("sec-fetch-site", site);
        }
        request.send()
    };
    let refused = [
        (Some("https://sibling.example.com"), Some("same-site")),
        (Some("http://app.example.com:3000"), Some("same-site")),
        (Some("null"), Some("cross-site")),
        (None, Some("cross-site")),
        (None, Some("same-site")),
    ];
    for (origin, site) in refused {
        let (status, message) = tests::error_of(post(origin, site).await.unwrap()).await;
        assert_eq!(status, 403, "Origin {origin:?}, Sec-Fetch-Site {site:?}: {message}");
    }
    let bearer = app
        .client
        .post(app.url("/api/runs"))
        .header("host", host.as_str())
        .header("origin", "http://evil.example")
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({ "prompt": "with the bearer token" }))
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 403, "the token does not make another origin's write acceptable");

    let upgrade = |origin: &str| {
        let mut request = format!("ws://127.0.0.1:{}/api/ws", app.port).into_client_request().unwrap();
        let headers = request.headers_mut();
        headers.insert("host", host.parse().unwrap());
        headers.insert("cookie", cookie.parse().unwrap());
        headers.insert("origin", origin.parse().unwrap());
        tokio_tungstenite::connect_async(request)
    };
    match upgrade("https://sibling.example.com").await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 403),
        other => panic!("a sibling origin's upgrade was not refused: {:?}", other.map(|_| ())),
    }
    let (_socket, response) = upgrade(&own).await.expect("the page's own origin opens the feed");
    assert_eq!(response.status(), 101);
    let accepted = post(Some(&own), Some("same-origin")).await.unwrap();
    assert_eq!(accepted.status(), 202, "the page's own origin with the cookie");
    eprintln!(
        "FIGURE token mode: {} cross-origin writes with the cookie, one with the bearer token, and a sibling's \
               upgrade → 403; the page's own origin → 202 / 101",
        refused.len()
    );
}

/// The session cookie (`name=value`) the `?token=` login sets.
async fn login_cookie(app: &tests::TestApp) -> String {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let response = client.get(app.url(&format!("/?token={TOKEN}"))).send().await.unwrap();
    assert_eq!(response.status(), 303);
    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    cookie.split(';').next().unwrap().to_owned()
}

const SECRETS: [&str; 3] = [
    "AKIAFAKEFAKEFAKE1234",
    "fakeSecretKeyDoNotLog1234567890abcdefghij",
    "FAKESESSIONTOKENxyzzyDoNotLogThisSessionToken0123456789",
];

/// Everything a client or an operator can read of a server, gathered to be searched for secrets.
#[derive(Default)]
struct Exposed {
    texts: Vec<(String, Vec<u8>)>,
}

impl Exposed {
    fn add(&mut self, place: impl Into<String>, bytes: impl Into<Vec<u8>>) {
        self.texts.push((place.into(), bytes.into()));
    }

    /// Records a response's status line, every header and the body; returns the body.
    async fn response(&mut self, place: &str, response: reqwest::Response) -> String {
        self.add(format!("{place}: headers"), headers_text(response.status().as_u16(), response.headers()));
        let body = response.text().await.unwrap();
        self.add(format!("{place}: body"), body.clone());
        body
    }

    /// Records a WebSocket's upgrade answer, then reads it until each of `ids` has ended (its
    /// terminal event, with the generous deadline: no quiet window to guess), recording every
    /// message.
    async fn feed(&mut self, place: &str, (mut socket, upgrade): (Socket, WsResponse), ids: &[RunId]) {
        self.add(format!("{place}: upgrade headers"), headers_text(upgrade.status().as_u16(), upgrade.headers()));
        let mut ended = HashSet::new();
        let mut text = String::new();
        while ended.len() < ids.len() {
            let message = tokio::time::timeout(tests::DEADLINE, socket.next())
                .await
                .unwrap_or_else(|_| panic!("{place}: {} of {} runs ended before the deadline", ended.len(), ids.len()))
                .expect("the socket stays open")
                .unwrap()
                .into_text()
                .unwrap_or_default();
            if let Ok(event) = serde_json::from_str::<common::Event>(&message)
                && event.kind.ends_run()
                && ids.contains(&event.run_id)
            {
                ended.insert(event.run_id);
            }
            text.push_str(&message);
        }
        assert!(text.contains("run_state"), "{place}: events were received");
        self.add(place, text);
    }

    /// Fails if any secret occurs anywhere; the bytes searched.
    fn assert_clean(&self, secrets: &[&str]) -> usize {
        for (place, bytes) in &self.texts {
            for secret in secrets {
                if let Some(at) = find(bytes, secret) {
                    let around = String::from_utf8_lossy(&bytes[at.saturating_sub(200)..(at + 200).min(bytes.len())])
                        .into_owned();
                    panic!("{secret} leaked into {place}: …{around}…");
                }
            }
        }
        self.texts.iter().map(|(_, bytes)| bytes.len()).sum()
    }
}

/// Where `needle` first occurs in `bytes`, searched as bytes (the database is not text).
fn find(bytes: &[u8], needle: &str) -> Option<usize> {
    bytes.windows(needle.len()).position(|w| w == needle.as_bytes())
}

/// A response's status and headers as text (reqwest and tungstenite share the `http` types).
fn headers_text(status: u16, headers: &reqwest::header::HeaderMap) -> String {
    let mut text = format!("{status}\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {}\n", String::from_utf8_lossy(value.as_bytes())));
    }
    text
}

#[tokio::test]
async fn fake_aws_credentials_never_reach_logs_responses_headers_files_or_events() {
    // The Bedrock endpoint is the built-in emulator of an in-process server, so its fault plan
    // can be set through its API to make a signed call fail.
    let bedrock = spawn_app_with(|_| {}).await;
    let endpoint = bedrock.health().await["bedrock"]["endpoint"].as_str().unwrap().to_owned();
    let dirs = TestDirs::new();
    let mut flags = serve_flags(&dirs);
    flags.insert("--bedrock", "aws".to_owned());
    flags.insert("--bedrock-endpoint", endpoint);
    let env = [
        ("AWS_ACCESS_KEY_ID", SECRETS[0]),
        ("AWS_SECRET_ACCESS_KEY", SECRETS[1]),
        ("AWS_SESSION_TOKEN", SECRETS[2]),
        ("AWS_REGION", "us-east-1"),
        ("RUST_LOG", "trace"),
    ];
    let server = BinaryServer::start(&flags, &env).await;
    let client = reqwest::Client::new();
    let mut exposed = Exposed::default();

    // Three signed calls: one that succeeds, one Bedrock refuses (not retried), one throttled
    // and then retried; the live feed is open before any of them starts.
    let submit = async |exposed: &mut Exposed, what: &str| -> RunId {
        let response =
            client.post(server.url("/api/runs")).json(&serde_json::json!({ "prompt": what })).send().await.unwrap();
        assert_eq!(response.status(), 202);
        let body = exposed.response(&format!("POST /api/runs ({what})"), response).await;
        serde_json::from_str::<RunDetail>(&body).unwrap().id
    };
    let wait_finished = async |exposed: &mut Exposed, id: RunId| -> RunDetail {
        let url = server.url(&format!("/api/runs/{id}"));
        let deadline = Instant::now() + tests::DEADLINE;
        loop {
            let response = client.get(&url).send().await.unwrap();
            let body = exposed.response(&format!("GET /api/runs/{id}"), response).await;
            let detail: RunDetail = serde_json::from_str(&body).unwrap();
            if detail.state.is_terminal() {
                return detail;
            }
            assert!(Instant::now() < deadline, "run {id} did not finish: {detail:#?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let live = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{}/api/ws", server.port)).await.unwrap();

    let prompt = unique_prompt("sign me");
    let completed = submit(&mut exposed, &prompt).await;
    assert_eq!(wait_finished(&mut exposed, completed).await.state, common::RunState::Completed);
    bedrock.inject(common::FaultPlan { kind: common::FaultKind::Validation, fail_first: 1, every_nth: 0 }).await;
    let refused = submit(&mut exposed, &unique_prompt("sign me, then be refused")).await;
    let refused_detail = wait_finished(&mut exposed, refused).await;
    assert_eq!(refused_detail.state, common::RunState::Failed, "{refused_detail:#?}");
    let call = tests::attempts(&refused_detail, common::TaskName::CallBedrock);
    assert_eq!(call.len(), 1, "a validation error is not retried");
    assert_eq!(call[0].http_status, Some(400), "the signed call reached Bedrock and failed there");
    bedrock.inject(common::FaultPlan { kind: common::FaultKind::Throttle, fail_first: 1, every_nth: 0 }).await;
    let retried = submit(&mut exposed, &unique_prompt("sign me twice")).await;
    let retried_detail = wait_finished(&mut exposed, retried).await;
    assert_eq!(retried_detail.state, common::RunState::Completed);
    assert_eq!(tests::attempts(&retried_detail, common::TaskName::CallBedrock).len(), 2, "throttled, then retried");
    let ids = [completed, refused, retried];

    exposed.feed("live WS", live, &ids).await;
    for id in ids {
        let url = format!("ws://127.0.0.1:{}/api/ws?run_id={id}&after_seq=0", server.port);
        exposed
            .feed(&format!("replayed WS of {id}"), tokio_tungstenite::connect_async(url).await.unwrap(), &[id])
            .await;
    }
    let mut paths = vec![
        "/api/runs".to_owned(),
        "/api/health".to_owned(),
        "/metrics".to_owned(),
        "/api/emulator/faults".to_owned(),
        "/api/runs/not-a-run".to_owned(),
        "/no/such/route".to_owned(),
    ];
    paths.extend(ids.iter().map(|id| format!("/api/runs/{id}/logs")));
    for path in &paths {
        let response = client.get(server.url(path)).send().await.unwrap();
        exposed.response(&format!("GET {path}"), response).await;
    }
    let cancel = client.post(server.url(&format!("/api/runs/{completed}/cancel"))).send().await.unwrap();
    exposed.response("POST cancel of a finished run", cancel).await;

    // What the server keeps on disk: the database (main file and WAL) and the prompt journal.
    for name in ["runs.db", "runs.db-wal"] {
        let path = dirs.data_dir.join(name);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        exposed.add(name, bytes);
    }
    for entry in std::fs::read_dir(&dirs.data_dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            exposed.add(path.display().to_string(), std::fs::read(&path).unwrap());
        }
    }
    let journal = std::fs::read(&dirs.prompts_file).unwrap();
    assert!(!journal.is_empty(), "the journal holds the prompts");
    exposed.add("prompts.txt", journal);

    let log = server.output();
    assert!(log.contains("TRACE") || log.to_lowercase().contains("trace"), "trace logging is on");
    assert!(log.contains("ValidationException") || log.contains("validation"), "the refused call is logged");
    exposed.add("server stdout+stderr", log);

    // The search can see what the files hold: the first prompt is in the journal and the database.
    let holds = |place: &str| exposed.texts.iter().any(|(p, bytes)| p == place && find(bytes, &prompt).is_some());
    assert!(holds("prompts.txt"), "the journal is searched as written");
    assert!(holds("runs.db") || holds("runs.db-wal"), "the database is searched as written");
    let searched = exposed.assert_clean(&SECRETS);
    eprintln!(
        "FIGURE secrets: 3 signed calls (completed, refused with 400, throttled then retried) with fake credentials \
         at RUST_LOG=trace; searched {searched} bytes (server log, every response's headers and body, live and \
         replayed WS with upgrade headers, runs.db, runs.db-wal, prompts.txt): 0 occurrences"
    );
}

#[tokio::test]
async fn static_file_path_traversal_never_serves_files_outside_the_static_dir() {
    let dirs = TestDirs::new();
    std::fs::create_dir_all(&dirs.static_dir).unwrap();
    std::fs::write(dirs.static_dir.join("index.html"), "<html>the app</html>").unwrap();
    // The file an attacker is after, one level above the static dir.
    std::fs::write(dirs.static_dir.parent().unwrap().join("Cargo.toml"), "[workspace]\nsecret = true\n").unwrap();
    let app = tests::spawn_app_in(dirs, |_| {}).await;
    let mut figures = Vec::new();
    for path in [
        "/../Cargo.toml",
        "/%2e%2e/Cargo.toml",
        "/..%2fCargo.toml",
        "/%2e%2e%2fCargo.toml",
        "/%5c..%5cCargo.toml",
        "/..%5cCargo.toml",
        "/..\\Cargo.toml",
        "/assets/../../Cargo.toml",
        "/%252e%252e/Cargo.toml",
        "/....//Cargo.toml",
        "/..;/Cargo.toml",
        "//../Cargo.toml",
    ] {
        let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        let answer = raw_http(app.port, request.as_bytes()).await.unwrap_or_default();
        let status = raw_status(&answer);
        assert!(!answer.contains("[workspace]"), "{path} served the file outside the static dir:\n{answer}");
        assert!(
            status.is_none_or(|s| s == 404 || s == 400 || (s == 200 && answer.contains("the app"))),
            "{path}: {answer}"
        );
        figures.push(format!("{path} → {status:?}"));
    }
    eprintln!("FIGURE static traversal: {figures:?}");
}
