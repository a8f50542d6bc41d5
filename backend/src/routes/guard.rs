//! Request guards: who may talk to the server at all, before any route runs.
//!
//! - **Host** must be one the server answers to (loopback names, the bound address, and
//!   `--allowed-host`s), so a DNS-rebinding page cannot reach a local server by a name it controls.
//! - **Writes and the event feed only from the page's own origin**: a state-changing request or a
//!   WebSocket upgrade is accepted when its `Origin` is the request's own (the same host *and*
//!   port as `Host`) or one the operator allowed (`--allowed-origin`); a request without `Origin`
//!   (curl, the CLI) is accepted unless `Sec-Fetch-Site` says a browser sent it from elsewhere.
//!   So another local port (`http://localhost:3000`), a sibling subdomain (which browsers call
//!   `same-site` and send `SameSite=Strict` cookies from) and `null` origins change nothing and
//!   cannot hijack the WebSocket.
//! - **Access token** (`--auth-token`, required off loopback): every route needs
//!   `Authorization: Bearer <token>` or the session cookie. As in Jupyter, opening any page with
//!   `?token=<token>` once sets that cookie (HttpOnly, SameSite=Strict, Secure) and redirects to
//!   the same page without the token in its URL.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// The cookie that carries the access token after `?token=` login.
pub const TOKEN_COOKIE: &str = "pp_token";

/// What the guard enforces.
#[derive(Debug, Clone)]
pub struct Guard {
    /// Host names (without port) requests may be addressed to; `None` for any.
    pub allowed_hosts: Option<Vec<String>>,
    /// Origins besides the page's own allowed to write, lower-case, without a trailing slash.
    pub allowed_origins: Vec<String>,
    /// The access token, when one is required.
    pub token: Option<Arc<str>>,
}

impl Guard {
    fn host_allowed(&self, host: &str) -> bool {
        let name = host_name(host);
        self.allowed_hosts.as_ref().is_none_or(|hosts| hosts.iter().any(|allowed| allowed.eq_ignore_ascii_case(name)))
    }

    /// Whether a request that changes something (or opens the feed) comes from the page itself,
    /// from an origin the operator allowed, or from a client that is not a browser.
    fn origin_allowed(&self, headers: &HeaderMap, host: &str) -> bool {
        let header = |name| headers.get(name).and_then(|v: &HeaderValue| v.to_str().ok());
        match header(header::ORIGIN.as_str()) {
            Some(origin) => {
                let origin = origin.trim_end_matches('/').to_ascii_lowercase();
                if self.allowed_origins.contains(&origin) {
                    return true;
                }
                let authority = origin.split_once("://").map(|(_, rest)| rest);
                origin != "null" && authority.is_some_and(|authority| authority.eq_ignore_ascii_case(host))
            }
            // No `Origin`: browsers send one with every cross-origin write and every WebSocket,
            // so this is a same-origin navigation or a non-browser client, unless the browser's
            // own fetch metadata says otherwise.
            None => header("sec-fetch-site").is_none_or(|site| site == "same-origin" || site == "none"),
        }
    }

    fn token_matches(&self, token: &str, candidate: &str) -> bool {
        // Compare in constant time, so the token cannot be guessed byte by byte from timings.
        token.len() == candidate.len()
            && token.bytes().zip(candidate.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }

    fn authorized(&self, token: &str, headers: &HeaderMap) -> bool {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|candidate| self.token_matches(token, candidate.trim()));
        bearer || cookie(headers, TOKEN_COOKIE).is_some_and(|candidate| self.token_matches(token, candidate))
    }
}

/// The host name of a `Host` header or origin authority, without port or brackets.
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    host.rsplit_once(':')
        .map_or(host, |(name, port)| if port.bytes().all(|b| b.is_ascii_digit()) { name } else { host })
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

fn forbidden(message: &str) -> Response {
    ApiError::Forbidden(message.to_owned()).into_response()
}

pub async fn check(State(guard): State<Arc<Guard>>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !guard.host_allowed(host) {
        return ApiError::MisdirectedRequest(format!(
            "this server does not answer to host `{}`",
            host.chars().take(100).collect::<String>()
        ))
        .into_response();
    }
    let is_upgrade = headers.get(header::UPGRADE).is_some();
    let writes = !matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if (writes || is_upgrade) && !guard.origin_allowed(headers, host) {
        return forbidden("requests from another origin may not change anything or open the event feed");
    }
    let Some(token) = guard.token.clone() else { return next.run(request).await };
    if let Some(candidate) = token_in_query(request.uri().query()) {
        if !guard.token_matches(&token, &candidate) {
            return ApiError::Unauthorized("the token in the URL is not this server's access token".into())
                .into_response();
        }
        return login_redirect(&token, request.uri());
    }
    if !guard.authorized(&token, request.headers()) {
        return ApiError::Unauthorized(
            "an access token is required: `Authorization: Bearer <token>`, or open the URL printed at start-up".into(),
        )
        .into_response();
    }
    next.run(request).await
}

/// The `token` query parameter, percent-decoded: a token with `+`, `/` or `=` arrives encoded
/// when the printed URL is pasted into a browser or built by a client library.
fn token_in_query(query: Option<&str>) -> Option<String> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == "token")
        .map(|(_, v)| percent_encoding::percent_decode_str(v).decode_utf8_lossy().into_owned())
}

/// Sets the session cookie and redirects to the same URL without `token=`.
fn login_redirect(token: &str, uri: &axum::http::Uri) -> Response {
    let rest: Vec<&str> =
        uri.query().unwrap_or_default().split('&').filter(|p| !p.starts_with("token=") && !p.is_empty()).collect();
    let location = if rest.is_empty() { uri.path().to_owned() } else { format!("{}?{}", uri.path(), rest.join("&")) };
    let cookie = format!("{TOKEN_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Secure");
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let (Ok(location), Ok(cookie)) = (HeaderValue::from_str(&location), HeaderValue::from_str(&cookie)) {
        response.headers_mut().insert(header::LOCATION, location);
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_lose_their_port() {
        assert_eq!(host_name("localhost:8080"), "localhost");
        assert_eq!(host_name("[::1]:8080"), "::1");
        assert_eq!(host_name("127.0.0.1"), "127.0.0.1");
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (axum::http::HeaderName::from_static(k), HeaderValue::from_static(v))).collect()
    }

    #[test]
    fn writes_are_accepted_only_from_the_page_s_own_origin_or_an_allowed_one() {
        let guard = Guard {
            allowed_hosts: None,
            allowed_origins: vec!["http://127.0.0.1:8081".into()],
            token: Some(Arc::from("secret")),
        };
        let host = "app.example.com:8443";
        let accepted = |pairs: &[(&'static str, &'static str)]| guard.origin_allowed(&headers(pairs), host);

        assert!(accepted(&[("origin", "https://app.example.com:8443")]), "the page itself");
        assert!(accepted(&[("origin", "http://127.0.0.1:8081"), ("sec-fetch-site", "cross-site")]), "allowed");
        assert!(accepted(&[]), "curl and the CLI send no Origin");
        assert!(accepted(&[("sec-fetch-site", "same-origin")]));

        assert!(!accepted(&[("origin", "https://evil.example.com"), ("sec-fetch-site", "same-site")]), "sibling");
        assert!(!accepted(&[("origin", "https://app.example.com:3000")]), "another port of the same host");
        assert!(!accepted(&[("origin", "null")]), "a sandboxed or file page");
        assert!(!accepted(&[("sec-fetch-site", "cross-site")]), "a browser request from elsewhere");
        assert!(!accepted(&[("sec-fetch-site", "same-site")]), "a sibling without Origin");
    }

    #[test]
    fn another_localhost_port_is_another_origin() {
        let guard = Guard { allowed_hosts: None, allowed_origins: vec![], token: None };
        let from = |origin: &'static str| guard.origin_allowed(&headers(&[("origin", origin)]), "localhost:8080");
        assert!(from("http://localhost:8080"));
        assert!(!from("http://localhost:3000"));
        assert!(!from("http://127.0.0.1:8080"), "a different host name is a different origin");
    }

    #[test]
    fn a_token_in_the_url_is_percent_decoded() {
        assert_eq!(token_in_query(Some("a=1&token=ab%2Bc%2F%3D")).as_deref(), Some("ab+c/="));
        assert_eq!(token_in_query(Some("token=plain")).as_deref(), Some("plain"));
        assert_eq!(token_in_query(Some("a=1")), None);
    }

    #[test]
    fn tokens_are_compared_whole() {
        let guard = Guard { allowed_hosts: Some(vec![]), allowed_origins: vec![], token: None };
        assert!(guard.token_matches("secret", "secret"));
        assert!(!guard.token_matches("secret", "secreT"));
        assert!(!guard.token_matches("secret", "secret2"));
    }
}
