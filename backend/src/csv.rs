//! Writing CSV (RFC 4180): the one record writer of every export.

/// The fields as one record: quoted where a field holds a comma, a quote or a line break, CRLF
/// line end.
pub fn record<S: AsRef<str>>(fields: &[S]) -> String {
    let mut line = fields.iter().map(|field| quoted(field.as_ref())).collect::<Vec<_>>().join(",");
    line.push_str("\r\n");
    line
}

fn quoted(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_with_commas_quotes_or_line_breaks_are_quoted_and_quotes_doubled() {
        assert_eq!(
            record(&["plain", "a, b", "say \"hi\"", "two\nlines", ""]),
            "plain,\"a, b\",\"say \"\"hi\"\"\",\"two\nlines\",\r\n"
        );
    }
}
