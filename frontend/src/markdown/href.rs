//! Which link targets a rendered answer may keep.

/// Link schemes a rendered link may point to.
const ALLOWED_SCHEMES: [&str; 3] = ["http", "https", "mailto"];

/// Returns the link target if it is an absolute `http:`, `https:` or `mailto:` URL.
///
/// Browsers ignore ASCII tabs and newlines anywhere in a URL and trim control characters and
/// spaces at its ends, so `java\tscript:` runs as `javascript:`. The check therefore looks at the
/// URL as the browser will see it, and returns that cleaned form. Relative and scheme-less
/// targets are refused too: model output has no business linking into this app.
pub fn safe_href(raw: &str) -> Option<String> {
    let cleaned: String =
        raw.trim_matches(|c: char| c <= ' ').chars().filter(|c| !matches!(c, '\t' | '\n' | '\r')).collect();
    let (scheme, rest) = cleaned.split_once(':')?;
    let scheme_ok = !scheme.is_empty()
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && ALLOWED_SCHEMES.iter().any(|allowed| scheme.eq_ignore_ascii_case(allowed));
    let has_target = !rest.trim_start_matches('/').is_empty();
    (scheme_ok && has_target).then_some(cleaned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_href_sees_the_url_as_a_browser_does() {
        assert_eq!(safe_href(" https://a.b "), Some("https://a.b".into()));
        assert_eq!(safe_href("ht\ntps://a.b"), Some("https://a.b".into()));
        assert_eq!(safe_href("\u{1}javascript:alert(1)"), None);
        assert_eq!(safe_href("java\u{0}script:alert(1)"), None);
        assert_eq!(safe_href("https"), None);
        assert_eq!(safe_href(""), None);
    }
}
