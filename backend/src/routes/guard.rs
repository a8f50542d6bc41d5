//! Request guards: who may talk to the server at all, before any route runs.
//!
//! - **Host** must be one the server answers to (loopback names, the bound address, and
//!   `--allowed-host`s), so a DNS-rebinding page cannot reach a local server by a name it controls.
//! - **Cross-site writes** are refused: a state-changing request whose `Origin` is another host or
//!   whose `Sec-Fetch-Site` is `cross-site` creates nothing; WebSocket upgrades from a foreign
//!   `Origin` are refused (cross-site WebSocket hijacking).
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
    /// The access token, when one is required.
    pub token: Option<Arc<str>>,
}

impl Guard {
    fn host_allowed(&self, host: &str) -> bool {
        let name = host_name(host);
        self.allowed_hosts.as_ref().is_none_or(|hosts| hosts.iter().any(|allowed| allowed.eq_ignore_ascii_case(name)))
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
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let foreign_origin = origin.is_some_and(|origin| {
        let authority = origin.split_once("://").map_or(origin, |(_, rest)| rest);
        origin == "null" || !guard.host_allowed(authority)
    });
    let is_upgrade = headers.get(header::UPGRADE).is_some();
    let writes = !matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let cross_site = headers.get("sec-fetch-site").is_some_and(|v| v.as_bytes() == b"cross-site");
    if (writes || is_upgrade) && (foreign_origin || cross_site) {
        return forbidden("cross-site requests may not change anything or open the event feed");
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

fn token_in_query(query: Option<&str>) -> Option<String> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == "token")
        .map(|(_, v)| v.to_owned())
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

    #[test]
    fn tokens_are_compared_whole() {
        let guard = Guard { allowed_hosts: Some(vec![]), token: None };
        assert!(guard.token_matches("secret", "secret"));
        assert!(!guard.token_matches("secret", "secreT"));
        assert!(!guard.token_matches("secret", "secret2"));
    }
}
