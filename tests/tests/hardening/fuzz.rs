//! Fuzzing the request parsers we own through the real server: arbitrary bytes and arbitrary
//! JSON objects as `POST /api/runs` and `PUT /api/emulator/faults` bodies, and arbitrary query
//! strings for `GET /api/runs` and `/api/ws`. Whatever arrives, the answer is a 202/200 or a
//! 4xx with a JSON `error`, never a 5xx, and the server keeps serving. (The journal reader and
//! the event-stream codec have their own property tests next to their code.)

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Map, Value};
use tests::{TestApp, spawn_app_with};

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
        // Without the upgrade headers even a valid query gets a 4xx, for the missing handshake.
        Request::FeedQuery(query) => {
            client.get(format!("{}/api/ws?{query}", app.address)).send().await.map_err(|e| e.to_string())?
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
