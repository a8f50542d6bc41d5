//! Fuzzing the request parsers we own through the real server: arbitrary bytes and arbitrary
//! JSON objects as `POST /api/runs` and `PUT /api/emulator/faults` bodies, and arbitrary query
//! strings for `GET /api/runs` and `/api/ws`. Whatever arrives, the answer is a 202/200 (101
//! for an upgrade) or a 4xx with a JSON `error`, never a 5xx, and the server keeps serving.
//! `/api/ws` queries are sent as real WebSocket upgrades: without the handshake headers the
//! handler refuses before it looks at `run_id` or `after_seq`, so their checks would never run;
//! a second property says exactly which of them must be refused, and how.
//! (The journal reader and the event-stream codec have their own property tests next to their code.)

use common::{RunId, RunState};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Map, Value};
use tests::{TestApp, spawn_app_with};
use tokio_tungstenite::tungstenite;

/// A JSON value of any type that a field might be given by mistake or malice.
fn any_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("JSON has no NaN", |f| f.is_finite()).prop_map(Value::from),
        ".{0,40}".prop_map(Value::String),
        Just(Value::String("   ".into())),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// An object built mostly from the real field names, with values of any type.
fn any_object(fields: &'static [&'static str]) -> impl Strategy<Value = Value> {
    let key = prop_oneof![4 => prop::sample::select(fields).prop_map(String::from), 1 => ".{0,12}"];
    prop::collection::vec((key, any_value()), 0..6)
        .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>()))
}

#[derive(Debug, Clone)]
enum Request {
    SubmitBytes(Vec<u8>),
    SubmitObject(Value),
    FaultsObject(Value),
    ListQuery(String),
    FeedQuery(String),
}

fn requests() -> impl Strategy<Value = Request> {
    let query = "[a-z_=&%0-9.-]{0,40}";
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256).prop_map(Request::SubmitBytes),
        any_object(&["prompt", "model_id", "system", "max_tokens", "temperature"]).prop_map(Request::SubmitObject),
        any_object(&["kind", "fail_first", "every_nth"]).prop_map(Request::FaultsObject),
        query.prop_map(Request::ListQuery),
        query.prop_map(Request::FeedQuery),
    ]
}

/// Sends one request; fails unless the answer is a success or a JSON 4xx.
async fn answer_is_sane(app: &TestApp, request: &Request) -> Result<u16, String> {
    let client = &app.client;
    let response = match request {
        Request::SubmitBytes(bytes) => app.post_raw("/api/runs", Some("application/json"), bytes.clone()).await,
        Request::SubmitObject(body) => {
            client.post(format!("{}/api/runs", app.address)).json(body).send().await.map_err(|e| e.to_string())?
        }
        Request::FaultsObject(body) => client
            .put(format!("{}/api/emulator/faults", app.address))
            .json(body)
            .send()
            .await
            .map_err(|e| e.to_string())?,
        Request::ListQuery(query) => {
            client.get(format!("{}/api/runs?{query}", app.address)).send().await.map_err(|e| e.to_string())?
        }
        Request::FeedQuery(query) => {
            let (status, content_type, body) = upgrade(app, query).await?;
            if (400..500).contains(&status) {
                json_error(status, content_type.as_deref(), &body).map_err(|e| format!("{e} for {request:?}"))?;
            }
            if status >= 500 {
                return Err(format!("{status} for {request:?}: {body}"));
            }
            return Ok(status);
        }
    };
    let status = response.status();
    let body = response.text().await.map_err(|e| e.to_string())?;
    if status.is_server_error() {
        return Err(format!("{status} for {request:?}: {body}"));
    }
    if status.is_client_error() {
        let parsed: Value =
            serde_json::from_str(&body).map_err(|_| format!("{status} without a JSON body for {request:?}: {body}"))?;
        if !parsed["error"].is_string() {
            return Err(format!("{status} without an `error` for {request:?}: {body}"));
        }
    }
    Ok(status.as_u16())
}

/// Opens `/api/ws?{query}` with a real WebSocket handshake: the status (101 when upgraded, the
/// socket then closed), the content type and body of a refusal.
async fn upgrade(app: &TestApp, query: &str) -> Result<(u16, Option<String>, String), String> {
    let url = format!("ws://127.0.0.1:{}/api/ws?{query}", app.port);
    match tokio_tungstenite::connect_async(url.as_str()).await {
        Ok((mut socket, response)) => {
            let _ = socket.close(None).await;
            Ok((response.status().as_u16(), None, String::new()))
        }
        Err(tungstenite::Error::Http(response)) => {
            let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
            let body = response.body().as_deref().map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
            Ok((response.status().as_u16(), content_type, body))
        }
        Err(other) => Err(format!("{url}: {other}")),
    }
}

/// Fails unless a refusal is a JSON `{"error": "<non-empty>"}`.
fn json_error(status: u16, content_type: Option<&str>, body: &str) -> Result<(), String> {
    if !content_type.is_some_and(|t| t.starts_with("application/json")) {
        return Err(format!("{status} with content type {content_type:?}: {body}"));
    }
    let parsed: Value = serde_json::from_str(body).map_err(|_| format!("{status} without a JSON body: {body}"))?;
    match parsed["error"].as_str() {
        Some(message) if !message.trim().is_empty() => Ok(()),
        _ => Err(format!("{status} without an `error` message: {body}")),
    }
}

/// A value for `run_id`: the finished run the test made (in each form `Uuid::parse_str`
/// accepts), a well-formed id of no run, or text.
#[derive(Debug, Clone)]
enum RunIdValue {
    Existing,
    ExistingSimple,
    ExistingUpper,
    Unknown,
    Text(String),
}

/// A value for `after_seq`: a number, the run's last seq or one beyond it, or text.
#[derive(Debug, Clone)]
enum SeqValue {
    Number(u64),
    Last,
    BeyondLast,
    Text(String),
}

/// One `name=value` pair of a `/api/ws` query (names may repeat; values are URL-safe as sent).
#[derive(Debug, Clone)]
enum Param {
    RunId(RunIdValue),
    AfterSeq(SeqValue),
    Token(String),
    Other(String, String),
}

/// The finished run the feed queries may name.
#[derive(Debug, Clone, Copy)]
struct Known {
    id: RunId,
    last_seq: u64,
}

fn feed_params() -> impl Strategy<Value = Vec<Param>> {
    let safe = "[A-Za-z0-9._~-]{0,12}";
    let run_id = prop_oneof![
        3 => Just(RunIdValue::Existing),
        1 => Just(RunIdValue::ExistingSimple),
        1 => Just(RunIdValue::ExistingUpper),
        2 => Just(RunIdValue::Unknown),
        1 => Just(RunIdValue::Text(String::new())),
        2 => "[0-9a-fx-]{0,40}".prop_map(RunIdValue::Text),
        1 => safe.prop_map(RunIdValue::Text),
    ];
    let after_seq = prop_oneof![
        2 => (0u64..40).prop_map(SeqValue::Number),
        1 => any::<u64>().prop_map(SeqValue::Number),
        2 => Just(SeqValue::Last),
        2 => Just(SeqValue::BeyondLast),
        2 => prop::sample::select(vec!["", "-1", "1.5", "18446744073709551616", "0x10", "1e3", " 1"])
            .prop_map(|t| SeqValue::Text(t.to_owned())),
        1 => safe.prop_map(SeqValue::Text),
    ];
    let param = prop_oneof![
        4 => run_id.prop_map(Param::RunId),
        4 => after_seq.prop_map(Param::AfterSeq),
        1 => safe.prop_map(Param::Token),
        1 => ("[a-z_]{1,9}", safe).prop_map(|(name, value)| Param::Other(name, value)),
    ];
    prop::collection::vec(param, 0..4)
}

impl Param {
    fn pair(&self, known: Known) -> (String, String) {
        match self {
            Param::RunId(value) => (
                "run_id".into(),
                match value {
                    RunIdValue::Existing => known.id.to_string(),
                    RunIdValue::ExistingSimple => known.id.0.simple().to_string(),
                    RunIdValue::ExistingUpper => known.id.to_string().to_uppercase(),
                    RunIdValue::Unknown => uuid::Uuid::now_v7().to_string(),
                    RunIdValue::Text(text) => text.clone(),
                },
            ),
            Param::AfterSeq(value) => (
                "after_seq".into(),
                match value {
                    SeqValue::Number(n) => n.to_string(),
                    SeqValue::Last => known.last_seq.to_string(),
                    SeqValue::BeyondLast => (known.last_seq + 1).to_string(),
                    // A space must be encoded to be sent at all.
                    SeqValue::Text(text) => text.replace(' ', "%20"),
                },
            ),
            Param::Token(value) => ("token".into(), value.clone()),
            Param::Other(name, value) => (name.clone(), value.clone()),
        }
    }
}

/// What the README and the handler's contract say `/api/ws?{pairs}` must answer, worked out
/// here: 101 for the all-runs feed or an existing run with `after_seq` up to its last event;
/// 404 for a well-formed id of no run; 400 for anything else (an unknown or repeated
/// parameter, `token` included, which only a server with `--auth-token` takes, and then in its
/// guard; `after_seq` that is not a `u64` or has no `run_id`; a `run_id` that is not a UUID;
/// `after_seq` beyond the run's last event).
fn expected_feed_status(pairs: &[(String, String)], known: Known) -> u16 {
    let mut names: Vec<&str> = pairs.iter().map(|(name, _)| name.as_str()).collect();
    names.sort_unstable();
    let repeated = names.windows(2).any(|w| w[0] == w[1]);
    if repeated || names.iter().any(|name| *name != "run_id" && *name != "after_seq") {
        return 400;
    }
    let value = |name: &str| pairs.iter().find(|(n, _)| n == name).map(|(_, v)| v.replace("%20", " "));
    let after_seq = match value("after_seq") {
        None => None,
        Some(text) => match text.parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => return 400,
        },
    };
    match value("run_id") {
        None if after_seq.is_some() => 400,
        None => 101,
        Some(text) => match uuid::Uuid::parse_str(&text) {
            Err(_) => 400,
            Ok(id) if id != known.id.0 => 404,
            Ok(_) if after_seq.unwrap_or(0) > known.last_seq => 400,
            Ok(_) => 101,
        },
    }
}

#[test]
fn every_ws_query_is_validated_after_a_real_handshake_and_refused_with_the_documented_json_4xx() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (app, known) = runtime.block_on(async {
        let app = spawn_app_with(|_| {}).await;
        let run = app.submit("a run for the feed queries to name").await;
        let done = app.wait_for_state(run.id, RunState::Completed).await;
        (app, Known { id: run.id, last_seq: done.last_seq })
    });
    let counts = std::sync::Mutex::new(std::collections::BTreeMap::<u16, u32>::new());
    let check = |params: &[Param]| -> Result<(), String> {
        let pairs: Vec<(String, String)> = params.iter().map(|p| p.pair(known)).collect();
        let query = pairs.iter().map(|(name, value)| format!("{name}={value}")).collect::<Vec<_>>().join("&");
        let expected = expected_feed_status(&pairs, known);
        let (status, content_type, body) = runtime.block_on(upgrade(&app, &query))?;
        if status != expected {
            return Err(format!("/api/ws?{query} answered {status}, expected {expected}: {body}"));
        }
        if status != 101 {
            json_error(status, content_type.as_deref(), &body).map_err(|e| format!("/api/ws?{query}: {e}"))?;
        }
        *counts.lock().unwrap().entry(status).or_default() += 1;
        Ok(())
    };
    // One of each answer by hand first, so every check is reached whatever the random cases draw.
    let by_hand = [
        vec![],
        vec![Param::RunId(RunIdValue::Existing), Param::AfterSeq(SeqValue::Last)],
        vec![Param::RunId(RunIdValue::ExistingSimple)],
        vec![Param::RunId(RunIdValue::Unknown)],
        vec![Param::RunId(RunIdValue::Unknown), Param::AfterSeq(SeqValue::Number(0))],
        vec![Param::AfterSeq(SeqValue::Number(1))],
        vec![Param::RunId(RunIdValue::Existing), Param::AfterSeq(SeqValue::BeyondLast)],
        vec![Param::RunId(RunIdValue::Text("not-a-run".into()))],
        vec![Param::RunId(RunIdValue::Existing), Param::AfterSeq(SeqValue::Text("-1".into()))],
        vec![Param::Token("abc".into())],
        vec![Param::RunId(RunIdValue::Existing), Param::RunId(RunIdValue::Existing)],
    ];
    for params in &by_hand {
        check(params).unwrap_or_else(|e| panic!("{e}"));
    }
    let mut runner = TestRunner::new(Config { cases: 256, failure_persistence: None, ..Config::default() });
    let result = runner.run(&feed_params(), |params| check(&params).map_err(TestCaseError::fail));
    if let Err(error) = result {
        panic!("{error}");
    }
    // Still serving, the feed included.
    runtime.block_on(async {
        app.health().await;
        let mut feed = app.ws_follow(known.id, 0).await;
        assert_eq!(feed.until_finished(known.id).await.len() as u64, known.last_seq);
    });
    let counts = counts.into_inner().unwrap();
    println!("fuzzed /api/ws upgrades by status: {counts:?}");
    for status in [101, 400, 404] {
        assert!(counts.get(&status).is_some_and(|n| *n > 0), "the strategy should reach {status}: {counts:?}");
    }
}

#[test]
fn arbitrary_requests_get_an_answer_or_a_json_4xx_never_a_5xx() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let app = runtime.block_on(spawn_app_with(|_| {}));
    let mut runner = TestRunner::new(Config { cases: 256, failure_persistence: None, ..Config::default() });
    let accepted = std::sync::atomic::AtomicU32::new(0);
    let refused = std::sync::atomic::AtomicU32::new(0);
    let result = runner.run(&requests(), |request| {
        let status = runtime.block_on(answer_is_sane(&app, &request)).map_err(TestCaseError::fail)?;
        let counter = if status < 300 { &accepted } else { &refused };
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    });
    if let Err(error) = result {
        panic!("{error}");
    }
    runtime.block_on(async {
        app.health().await;
        app.clear_faults().await;
    });
    let (accepted, refused) = (accepted.into_inner(), refused.into_inner());
    println!("fuzzed requests: {accepted} accepted, {refused} refused with a JSON 4xx, 0 server errors");
    assert!(refused > 0, "the strategy should produce invalid requests");
}
