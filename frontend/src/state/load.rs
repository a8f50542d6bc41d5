//! Where a request-backed piece of a page stands, as one enum per piece, so a page can never
//! show data and a spinner, or an error and data, at once.

use crate::api::ApiError;

/// A request-backed value: rendered by `match`, so each case has exactly one look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Load<T, E> {
    /// The request is in flight; nothing to show yet.
    Loading,
    /// The value arrived (and may have been updated live since).
    Ready(T),
    /// The request failed and there is nothing to show instead.
    Failed(E),
}

impl<T, E> Load<T, E> {
    /// The value, once it arrived.
    pub fn ready(&self) -> Option<&T> {
        match self {
            Load::Ready(value) => Some(value),
            Load::Loading | Load::Failed(_) => None,
        }
    }

    /// The value to update in place, once it arrived.
    pub fn ready_mut(&mut self) -> Option<&mut T> {
        match self {
            Load::Ready(value) => Some(value),
            Load::Loading | Load::Failed(_) => None,
        }
    }
}

/// Why something fetched by id could not be shown; the page offers "Try again" only when asking
/// again can help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadError {
    /// The server answered 404: there is no such thing, and asking again will not change that.
    NotFound,
    /// Any other failure (network, server error, unreadable answer), with a message for people.
    Other(String),
}

impl From<ApiError> for LoadError {
    fn from(error: ApiError) -> Self {
        if error.is_not_found() { LoadError::NotFound } else { LoadError::Other(error.to_string()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_404_means_not_found() {
        let missing = ApiError::Status { status: 404, message: "no such run".into() };
        assert_eq!(LoadError::from(missing), LoadError::NotFound);
        let broken = ApiError::Status { status: 500, message: "disk full".into() };
        assert_eq!(LoadError::from(broken), LoadError::Other("disk full".into()));
        let offline = ApiError::Network("refused".into());
        assert_eq!(LoadError::from(offline), LoadError::Other("Cannot reach the server: refused".into()));
    }

    #[test]
    fn only_a_ready_load_has_a_value() {
        let mut load: Load<u32, LoadError> = Load::Ready(1);
        if let Some(value) = load.ready_mut() {
            *value += 1;
        }
        assert_eq!(load.ready(), Some(&2));
        assert_eq!(Load::<u32, LoadError>::Loading.ready(), None);
        assert_eq!(Load::<u32, LoadError>::Failed(LoadError::NotFound).ready(), None);
    }
}
