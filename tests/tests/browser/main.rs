//! stub
#[test]
fn stub() { let _ = fantoccini::Locator::Css("x"); let _ = hyper_util::client::legacy::connect::HttpConnector::new(); }
