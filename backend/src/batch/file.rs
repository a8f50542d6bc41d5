//! A batch's items read from an uploaded file: plain text (one prompt per line), JSON Lines
//! (a prompt, or a template's values, per line) or CSV (a header, then a record per item).
//! Every refusal names the line, counted from 1 as an editor does.

use std::collections::BTreeMap;

use serde_json::Value;

/// The formats a batch file may have, by its media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    JsonLines,
    Csv,
}

impl Format {
    /// The format of a `Content-Type` (parameters such as `charset` ignored); `None` for JSON
    /// itself and anything else.
    pub fn from_media_type(content_type: &str) -> Option<Format> {
        let media = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        match media.as_str() {
            "text/plain" => Some(Format::Text),
            "application/x-ndjson" | "application/jsonl" | "application/x-jsonlines" | "application/jsonlines" => {
                Some(Format::JsonLines)
            }
            "text/csv" => Some(Format::Csv),
            _ => None,
        }
    }

    /// The format a file name's extension suggests: `.jsonl`/`.ndjson`, `.csv`, else text.
    pub fn from_file_name(name: &str) -> Format {
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(".jsonl") || lower.ends_with(".ndjson") {
            Format::JsonLines
        } else if lower.ends_with(".csv") {
            Format::Csv
        } else {
            Format::Text
        }
    }

    pub fn media_type(self) -> &'static str {
        match self {
            Format::Text => "text/plain; charset=utf-8",
            Format::JsonLines => "application/x-ndjson",
            Format::Csv => "text/csv; charset=utf-8",
        }
    }
}

/// What a file holds: prompts, or (for a template) rows of values; each with its line.
#[derive(Debug, Clone, PartialEq)]
pub enum Items {
    Prompts(Vec<String>),
    Rows(Vec<BTreeMap<String, String>>),
}

/// The items of a file and the line each starts on.
#[derive(Debug, Clone, PartialEq)]
pub struct Read {
    pub items: Items,
    pub lines: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error("the file is not UTF-8 text (line {line})")]
    NotUtf8 { line: usize },
    #[error("line {line}: {message}")]
    Line { line: usize, message: String },
    #[error("the file has no items")]
    Empty,
}

fn at(line: usize, message: impl Into<String>) -> FileError {
    FileError::Line { line, message: message.into() }
}

/// Reads a file's items: prompts, or with `template` the rows of values to fill it with.
pub fn read(format: Format, bytes: &[u8], template: bool) -> Result<Read, FileError> {
    let text = std::str::from_utf8(bytes).map_err(|error| FileError::NotUtf8 {
        line: 1 + bytes[..error.valid_up_to()].iter().filter(|b| **b == b'\n').count(),
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let read = match format {
        Format::Text if template => {
            return Err(at(1, "a plain text file holds prompts; give a template's values as JSON Lines or CSV"));
        }
        Format::Text => text_lines(text),
        Format::JsonLines => json_lines(text, template)?,
        Format::Csv => csv(text, template)?,
    };
    if read.lines.is_empty() {
        return Err(FileError::Empty);
    }
    Ok(read)
}

/// Non-blank lines, numbered from 1; a trailing `\r` is dropped.
fn numbered(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.split('\n')
        .enumerate()
        .map(|(n, line)| (n + 1, line.strip_suffix('\r').unwrap_or(line)))
        .filter(|(_, line)| !line.trim().is_empty())
}

fn text_lines(text: &str) -> Read {
    let (lines, prompts) = numbered(text).map(|(n, line)| (n, line.to_owned())).unzip();
    Read { items: Items::Prompts(prompts), lines }
}

fn json_lines(text: &str, template: bool) -> Result<Read, FileError> {
    let mut lines = Vec::new();
    let mut prompts = Vec::new();
    let mut rows = Vec::new();
    for (n, line) in numbered(text) {
        let value: Value = serde_json::from_str(line).map_err(|error| at(n, format!("not JSON: {error}")))?;
        lines.push(n);
        match (value, template) {
            (Value::String(prompt), false) => prompts.push(prompt),
            (Value::Object(mut fields), false) => match (fields.remove("prompt"), fields.keys().next()) {
                (Some(Value::String(prompt)), None) => prompts.push(prompt),
                (Some(Value::String(_)), Some(extra)) => {
                    return Err(at(
                        n,
                        format!("unknown field `{extra}`; without a template a line is {{\"prompt\": …}}"),
                    ));
                }
                _ => return Err(at(n, "expected a string `prompt`")),
            },
            (Value::Object(fields), true) => {
                let mut row = BTreeMap::new();
                for (name, value) in fields {
                    let text = match value {
                        Value::String(text) => text,
                        Value::Number(number) => number.to_string(),
                        Value::Bool(flag) => flag.to_string(),
                        _ => return Err(at(n, format!("`{name}` must be a string, a number or a boolean"))),
                    };
                    row.insert(name, text);
                }
                rows.push(row);
            }
            (_, false) => return Err(at(n, "expected a prompt: a JSON string or {\"prompt\": …}")),
            (_, true) => return Err(at(n, "expected an object of the template's values")),
        }
    }
    let items = if template { Items::Rows(rows) } else { Items::Prompts(prompts) };
    Ok(Read { items, lines })
}

fn csv(text: &str, template: bool) -> Result<Read, FileError> {
    let mut records = Records { rest: text, line: 1 };
    let (header_line, header) = loop {
        match records.next().transpose()? {
            None => return Err(FileError::Empty),
            Some((_, fields)) if fields.iter().all(|f| f.trim().is_empty()) => continue,
            Some(record) => break record,
        }
    };
    let header: Vec<String> = header.into_iter().map(|name| name.trim().to_owned()).collect();
    if let Some(blank) = header.iter().position(String::is_empty) {
        return Err(at(header_line, format!("column {} has no name", blank + 1)));
    }
    let prompt_column = if template {
        None
    } else {
        match header.as_slice() {
            [only] if only == "prompt" => Some(0),
            _ => {
                return Err(at(
                    header_line,
                    "without a template the header is the one column `prompt`; give a template to use the columns as its {{placeholders}}",
                ));
            }
        }
    };
    let mut lines = Vec::new();
    let mut prompts = Vec::new();
    let mut rows = Vec::new();
    while let Some((line, fields)) = records.next().transpose()? {
        if fields.iter().all(|f| f.is_empty()) {
            continue;
        }
        if fields.len() != header.len() {
            return Err(at(line, format!("{} fields; the header has {}", fields.len(), header.len())));
        }
        lines.push(line);
        match prompt_column {
            Some(column) => prompts.push(fields.into_iter().nth(column).unwrap_or_default()),
            None => rows.push(header.iter().cloned().zip(fields).collect()),
        }
    }
    let items = if template { Items::Rows(rows) } else { Items::Prompts(prompts) };
    Ok(Read { items, lines })
}

/// RFC 4180 records: fields separated by commas, quoted with `"` (doubled inside) when they
/// hold a comma, a quote or a line break; each with the line it starts on.
struct Records<'a> {
    rest: &'a str,
    line: usize,
}

impl Iterator for Records<'_> {
    type Item = Result<(usize, Vec<String>), FileError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let start = self.line;
        let mut fields = Vec::new();
        let mut field = String::new();
        let mut chars = self.rest.char_indices().peekable();
        let mut quoted = false;
        let mut was_quoted = false;
        while let Some((i, c)) = chars.next() {
            match c {
                '"' if quoted => {
                    if chars.peek().is_some_and(|(_, next)| *next == '"') {
                        chars.next();
                        field.push('"');
                    } else {
                        quoted = false;
                    }
                }
                '"' if field.is_empty() && !was_quoted => {
                    quoted = true;
                    was_quoted = true;
                }
                '"' => {
                    return Some(Err(at(
                        self.line,
                        "a quote inside an unquoted field; quote the field and double the quote",
                    )));
                }
                ',' if !quoted => {
                    fields.push(std::mem::take(&mut field));
                    was_quoted = false;
                }
                '\n' if !quoted => {
                    if !was_quoted && field.ends_with('\r') {
                        field.pop();
                    }
                    fields.push(field);
                    self.rest = &self.rest[i + 1..];
                    self.line += 1;
                    return Some(Ok((start, fields)));
                }
                '\r' if !quoted && was_quoted => {}
                '\n' => {
                    self.line += 1;
                    field.push(c);
                }
                _ if was_quoted && !quoted => {
                    return Some(Err(at(
                        self.line,
                        "text after a closing quote; double a quote inside a quoted field",
                    )));
                }
                _ => field.push(c),
            }
        }
        if quoted {
            return Some(Err(at(start, "a quoted field is never closed")));
        }
        fields.push(field);
        self.rest = "";
        Some(Ok((start, fields)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompts(read: &Read) -> Vec<&str> {
        match &read.items {
            Items::Prompts(prompts) => prompts.iter().map(String::as_str).collect(),
            Items::Rows(_) => panic!("rows, not prompts"),
        }
    }

    fn refused(format: Format, text: &str, template: bool) -> String {
        read(format, text.as_bytes(), template).expect_err("refused").to_string()
    }

    #[test]
    fn plain_text_is_one_prompt_per_line_skipping_blank_lines() {
        let read = read(Format::Text, b"\xef\xbb\xbfFirst\r\n\n  \nSecond, with a comma\n", false).expect("read");
        assert_eq!(prompts(&read), ["First", "Second, with a comma"]);
        assert_eq!(read.lines, [1, 4]);
    }

    #[test]
    fn json_lines_take_strings_or_prompt_objects_and_name_the_bad_line() {
        let read = read(Format::JsonLines, b"\"a\"\n\n{\"prompt\": \"b\"}\n", false).expect("read");
        assert_eq!(prompts(&read), ["a", "b"]);
        assert_eq!(read.lines, [1, 3]);
        assert!(refused(Format::JsonLines, "\"a\"\n{\"prompt\": \"b\"\n", false).starts_with("line 2: not JSON"));
        assert_eq!(
            refused(Format::JsonLines, "{\"prompt\": \"b\", \"id\": 3}", false),
            "line 1: unknown field `id`; without a template a line is {\"prompt\": …}"
        );
        assert_eq!(
            refused(Format::JsonLines, "\"a\"\n7\n", false),
            "line 2: expected a prompt: a JSON string or {\"prompt\": …}"
        );
    }

    #[test]
    fn json_lines_for_a_template_are_objects_of_plain_values() {
        let read = read(Format::JsonLines, br#"{"doc": "A", "n": 5, "short": true}"#, true).expect("read");
        let Items::Rows(rows) = read.items else { panic!("rows") };
        let row: Vec<(&str, &str)> = rows[0].iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(row, [("doc", "A"), ("n", "5"), ("short", "true")]);
        assert_eq!(
            refused(Format::JsonLines, "{\"doc\": [1]}", true),
            "line 1: `doc` must be a string, a number or a boolean"
        );
    }

    #[test]
    fn csv_records_follow_rfc_4180_and_keep_the_line_they_start_on() {
        let text = "doc,n\r\n\"Hello, \"\"world\"\"\",1\r\n\"two\nlines\",2\r\nplain,3";
        let read = read(Format::Csv, text.as_bytes(), true).expect("read");
        let Items::Rows(rows) = &read.items else { panic!("rows") };
        let docs: Vec<&str> = rows.iter().map(|row| row["doc"].as_str()).collect();
        assert_eq!(docs, ["Hello, \"world\"", "two\nlines", "plain"]);
        assert_eq!(rows[2]["n"], "3");
        assert_eq!(read.lines, [2, 3, 5]);
    }

    #[test]
    fn a_csv_without_a_template_is_a_prompt_column() {
        let read = read(Format::Csv, b"prompt\nfirst\n\"second, quoted\"\n", false).expect("read");
        assert_eq!(prompts(&read), ["first", "second, quoted"]);
        assert!(
            refused(Format::Csv, "id,prompt\n1,a\n", false).starts_with("line 1: without a template the header is")
        );
    }

    #[test]
    fn malformed_csv_is_refused_with_its_line() {
        assert_eq!(refused(Format::Csv, "a,b\n1,2\n3\n", true), "line 3: 1 fields; the header has 2");
        assert_eq!(refused(Format::Csv, "a,b\n1,\"open\n", true), "line 2: a quoted field is never closed");
        assert_eq!(
            refused(Format::Csv, "a\nsay \"hi\"\n", true),
            "line 2: a quote inside an unquoted field; quote the field and double the quote"
        );
        assert_eq!(refused(Format::Csv, "a,\n1,2\n", true), "line 1: column 2 has no name");
    }

    #[test]
    fn empty_files_and_bad_encodings_are_refused() {
        assert_eq!(refused(Format::Text, "\n \r\n", false), "the file has no items");
        assert_eq!(refused(Format::Csv, "", true), "the file has no items");
        assert_eq!(refused(Format::Csv, "a,b\n", true), "the file has no items");
        assert_eq!(
            read(Format::Text, b"ok\n\xff\n", false).expect_err("refused").to_string(),
            "the file is not UTF-8 text (line 2)"
        );
        assert_eq!(
            refused(Format::Text, "a", true),
            "line 1: a plain text file holds prompts; give a template's values as JSON Lines or CSV"
        );
    }

    #[test]
    fn media_types_and_file_names_pick_the_format() {
        assert_eq!(Format::from_media_type("text/csv; charset=utf-8"), Some(Format::Csv));
        assert_eq!(Format::from_media_type("application/x-ndjson"), Some(Format::JsonLines));
        assert_eq!(Format::from_media_type("application/json"), None);
        assert_eq!(Format::from_file_name("Tickets.JSONL"), Format::JsonLines);
        assert_eq!(Format::from_file_name("notes.md"), Format::Text);
    }
}
