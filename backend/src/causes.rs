//! An error with every cause behind it, on one line, for the log.
//!
//! Errors here keep their causes as `#[source]`s rather than in their messages, so a client can
//! be shown the outer message alone while the log gets the whole chain, once.

/// `outer: cause: root cause`.
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
