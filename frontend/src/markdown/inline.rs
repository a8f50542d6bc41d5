//! Spans inside a block: code, emphasis, strikethrough, links, autolinks, images, breaks.
//!
//! A simplified CommonMark: a delimiter run opens emphasis when a closing run of the same
//! character and length follows; anything unmatched stays literal text. Raw HTML is never
//! recognised, so it stays text too. Recursion is capped at [`MAX_DEPTH`].

use super::href::safe_href;
use super::tree::{Kind, Node};

/// Deepest nesting of emphasis and links; deeper markup is kept as text.
const MAX_DEPTH: usize = 16;
/// Longest link text, in bytes. Searches for closers are bounded so that an unclosed-bracket
/// or unclosed-asterisk bomb costs linear time instead of quadratic on every streamed delta.
const MAX_LINK_TEXT: usize = 1_000;
/// Longest emphasised span, in bytes.
const MAX_EMPHASIS: usize = 4_000;

/// Parses the inline content of one block.
pub(super) fn inline(text: &str) -> Vec<Node> {
    let mut parser = Inline { out: Vec::new(), text: String::new() };
    parser.run(text, 0);
    parser.finish()
}

struct Inline {
    out: Vec<Node>,
    /// Literal text not yet emitted.
    text: String,
}

fn el(kind: Kind, children: Vec<Node>) -> Node {
    Node::Element { kind, children }
}

/// Decodes the character references a model is likely to write; anything else stays as written.
fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let decoded = rest.find(';').filter(|&end| end <= 10).and_then(|end| {
            let name = &rest[1..end];
            let ch = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some('\u{a0}'),
                _ => {
                    let number = name.strip_prefix('#')?;
                    let code = match number.strip_prefix(['x', 'X']) {
                        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                        None => number.parse().ok()?,
                    };
                    // NUL and invalid code points become U+FFFD, as browsers do.
                    Some(char::from_u32(code).filter(|c| *c != '\0').unwrap_or('\u{fffd}'))
                }
            }?;
            Some((ch, end + 1))
        });
        match decoded {
            Some((ch, len)) => {
                out.push(ch);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Length of the run of `ch` starting at byte `at`.
fn run_len(text: &str, at: usize, ch: char) -> usize {
    text[at..].len() - text[at..].trim_start_matches(ch).len()
}

/// Byte index just after the code span that starts at `at` with `ticks` backticks, if it closes.
fn code_span_end(text: &str, at: usize, ticks: usize) -> Option<(usize, usize)> {
    let mut search = at + ticks;
    while let Some(found) = text[search..].find('`') {
        let start = search + found;
        let len = run_len(text, start, '`');
        if len == ticks {
            return Some((start, start + len));
        }
        search = start + len;
    }
    None
}

fn prev_char(text: &str, at: usize) -> Option<char> {
    text[..at].chars().next_back()
}

fn next_char(text: &str, at: usize) -> Option<char> {
    text[at..].chars().next()
}

/// Finds the run closing emphasis opened by `len` × `ch`, searching from `from`.
fn closing_run(text: &str, from: usize, ch: char, len: usize) -> Option<usize> {
    let mut i = from;
    while i < text.len().min(from + MAX_EMPHASIS) {
        let c = next_char(text, i)?;
        if c == '\\' {
            i += 1 + next_char(text, i + 1).map_or(0, char::len_utf8);
        } else if c == '`' {
            let ticks = run_len(text, i, '`');
            i = code_span_end(text, i, ticks).map_or(i + ticks, |(_, end)| end);
        } else if c == ch {
            let run = run_len(text, i, ch);
            let right_flanking = prev_char(text, i).is_some_and(|p| !p.is_whitespace());
            let word_inside = ch == '_' && next_char(text, i + run).is_some_and(char::is_alphanumeric);
            if run == len && right_flanking && !word_inside && i > from {
                return Some(i);
            }
            i += run;
        } else {
            i += c.len_utf8();
        }
    }
    None
}

/// Byte index of the `]` matching the `[` at `open`.
fn closing_bracket(text: &str, open: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut escaped = false;
    for (offset, c) in text[open..].char_indices() {
        if offset > MAX_LINK_TEXT {
            return None;
        }
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '[' => depth += 1,
            ']' => {
                depth -= 1;
                if depth == 0 {
                    return Some(open + offset);
                }
            }
            _ => {}
        }
    }
    None
}

/// Parses `(destination "title")` at `at`; returns the destination and the index after `)`.
fn link_target(text: &str, at: usize) -> Option<(String, usize)> {
    let rest = text[at..].strip_prefix('(')?;
    let body_start = at + 1 + (rest.len() - rest.trim_start().len());
    let body = &text[body_start..];
    let (dest, mut i) = if let Some(angled) = body.strip_prefix('<') {
        let end = angled.find(['>', '\n'])?;
        if !angled[end..].starts_with('>') {
            return None;
        }
        (angled[..end].to_owned(), body_start + end + 2)
    } else {
        let mut depth = 0usize;
        let mut end = body.len();
        for (offset, c) in body.char_indices() {
            match c {
                '(' => depth += 1,
                ')' if depth == 0 => {
                    end = offset;
                    break;
                }
                ')' => depth -= 1,
                c if c.is_whitespace() => {
                    end = offset;
                    break;
                }
                _ => {}
            }
        }
        (body[..end].to_owned(), body_start + end)
    };
    let after = &text[i..];
    i += after.len() - after.trim_start().len();
    // An optional title, which we do not show.
    if let Some(quote) = next_char(text, i).filter(|c| matches!(c, '"' | '\'')) {
        let close = text[i + 1..].find(quote)?;
        i += close + 2;
        let after = &text[i..];
        i += after.len() - after.trim_start().len();
    }
    text[i..].starts_with(')').then_some((dest, i + 1))
}

/// An autolink body (`https://…` or `a@b.c`) as a link target.
fn autolink(body: &str) -> Option<String> {
    if body.is_empty() || body.contains(|c: char| c.is_whitespace() || c == '<') {
        return None;
    }
    let scheme_end = body.find(':');
    if let Some(end) = scheme_end
        && (2..=32).contains(&end)
        && body[..end].chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    {
        return Some(body.to_owned());
    }
    let (user, domain) = body.split_once('@')?;
    (!user.is_empty() && domain.contains('.') && scheme_end.is_none()).then(|| format!("mailto:{body}"))
}

/// The plain text of nodes, for image alt text.
fn plain(nodes: &[Node]) -> String {
    nodes
        .iter()
        .map(|node| match node {
            Node::Text(text) => text.clone(),
            Node::Element { children, .. } => plain(children),
        })
        .collect()
}

impl Inline {
    fn flush(&mut self) {
        if !self.text.is_empty() {
            let text = decode_entities(&std::mem::take(&mut self.text));
            self.out.push(Node::Text(text));
        }
    }

    fn push(&mut self, node: Node) {
        self.flush();
        self.out.push(node);
    }

    fn finish(mut self) -> Vec<Node> {
        self.flush();
        self.out
    }

    fn nested(text: &str, depth: usize) -> Vec<Node> {
        let mut parser = Inline { out: Vec::new(), text: String::new() };
        parser.run(text, depth);
        parser.finish()
    }

    fn run(&mut self, text: &str, depth: usize) {
        if depth >= MAX_DEPTH {
            self.text.push_str(text);
            return;
        }
        let mut i = 0;
        while let Some(c) = next_char(text, i) {
            i = self.step(text, i, c, depth);
        }
    }

    /// Handles the construct at `i` (starting with `c`) and returns where to continue.
    fn step(&mut self, text: &str, i: usize, c: char, depth: usize) -> usize {
        let literal = i + c.len_utf8();
        match c {
            '\\' => match next_char(text, i + 1) {
                Some('\n') => {
                    self.push(el(Kind::LineBreak, Vec::new()));
                    i + 2
                }
                Some(p) if p.is_ascii_punctuation() => {
                    self.text.push(p);
                    i + 2
                }
                _ => {
                    self.text.push('\\');
                    literal
                }
            },
            '`' => {
                let ticks = run_len(text, i, '`');
                match code_span_end(text, i, ticks) {
                    Some((close, end)) => {
                        let code = text[i + ticks..close].replace('\n', " ");
                        let code = match code.strip_prefix(' ').and_then(|c| c.strip_suffix(' ')) {
                            Some(inner) if !inner.trim().is_empty() => inner.to_owned(),
                            _ => code,
                        };
                        self.push(el(Kind::Code, vec![Node::Text(code)]));
                        end
                    }
                    None => {
                        self.text.push_str(&text[i..i + ticks]);
                        i + ticks
                    }
                }
            }
            '*' | '_' | '~' => self.emphasis(text, i, c, depth),
            '!' if text[literal..].starts_with('[') => match self.link(text, literal, depth) {
                // Images are never loaded (a remote image is a tracking beacon); the alt text shows.
                Some((Node::Element { children, .. }, end)) => {
                    self.text.push_str(&plain(&children));
                    end
                }
                _ => {
                    self.text.push('!');
                    literal
                }
            },
            '[' => match self.link(text, i, depth) {
                Some((node, end)) => {
                    self.push(node);
                    end
                }
                None => {
                    self.text.push('[');
                    literal
                }
            },
            '<' => {
                let body_end = text[literal..].find('>').map(|end| literal + end);
                match body_end.and_then(|end| autolink(&text[literal..end]).map(|href| (href, end))) {
                    Some((href, end)) => {
                        let label = text[literal..end].to_owned();
                        self.push(el(Kind::Link(safe_href(&href)), vec![Node::Text(label)]));
                        end + 1
                    }
                    None => {
                        self.text.push('<');
                        literal
                    }
                }
            }
            '\n' => {
                self.text.push('\n');
                literal
            }
            _ => {
                self.text.push(c);
                literal
            }
        }
    }

    /// `[text](target)` at `open`: the link node and the index after it.
    fn link(&self, text: &str, open: usize, depth: usize) -> Option<(Node, usize)> {
        let close = closing_bracket(text, open)?;
        let (dest, end) = link_target(text, close + 1)?;
        let label = Inline::nested(&text[open + 1..close], depth + 1);
        // Entities are decoded first so `&#106;avascript:` is judged as the browser would read it.
        Some((el(Kind::Link(safe_href(&decode_entities(&dest))), label), end))
    }

    fn emphasis(&mut self, text: &str, i: usize, ch: char, depth: usize) -> usize {
        let run = run_len(text, i, ch);
        let after = i + run;
        let left_flanking = next_char(text, after).is_some_and(|n| !n.is_whitespace());
        let word_inside = ch == '_' && prev_char(text, i).is_some_and(char::is_alphanumeric);
        let usable = match ch {
            '~' => run == 2,
            _ => run <= 3,
        };
        let close = (left_flanking && !word_inside && usable).then(|| closing_run(text, after, ch, run)).flatten();
        let Some(close) = close else {
            self.text.push_str(&text[i..after]);
            return after;
        };
        let inner = Inline::nested(&text[after..close], depth + 1);
        let node = match (ch, run) {
            ('~', _) => el(Kind::Strikethrough, inner),
            (_, 1) => el(Kind::Emphasis, inner),
            (_, 2) => el(Kind::Strong, inner),
            _ => el(Kind::Strong, vec![el(Kind::Emphasis, inner)]),
        };
        self.push(node);
        close + run
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entities_decode_to_text_and_unknown_ones_stay() {
        assert_eq!(decode_entities("a &lt;b&gt; &amp; &#65;&#x42; &bogus; &"), "a <b> & AB &bogus; &");
        assert_eq!(decode_entities("&#0; &#x110000;"), "\u{fffd} \u{fffd}");
    }

    #[test]
    fn emphasis_needs_a_matching_closer() {
        assert_eq!(inline("a * b"), vec![Node::Text("a * b".into())]);
        assert_eq!(inline("snake_case_name"), vec![Node::Text("snake_case_name".into())]);
        assert_eq!(
            inline("~~gone~~ ***both***"),
            vec![
                el(Kind::Strikethrough, vec![Node::Text("gone".into())]),
                Node::Text(" ".into()),
                el(Kind::Strong, vec![el(Kind::Emphasis, vec![Node::Text("both".into())])]),
            ]
        );
    }

    #[test]
    fn code_spans_keep_markup_literal() {
        assert_eq!(
            inline("`<b>*x*</b>` and ``a ` b``"),
            vec![
                el(Kind::Code, vec![Node::Text("<b>*x*</b>".into())]),
                Node::Text(" and ".into()),
                el(Kind::Code, vec![Node::Text("a ` b".into())]),
            ]
        );
    }

    #[test]
    fn links_with_parentheses_and_titles() {
        assert_eq!(
            inline("[w](https://e.org/a_(b) \"t\")"),
            vec![el(Kind::Link(Some("https://e.org/a_(b)".into())), vec![Node::Text("w".into())])]
        );
        assert_eq!(
            inline("<me@example.org>"),
            vec![el(Kind::Link(Some("mailto:me@example.org".into())), vec![Node::Text("me@example.org".into())])]
        );
    }
}
