//! Block structure: fenced code, headings, rules, block quotes, lists, tables, paragraphs.
//!
//! Line based and forgiving, as a streaming answer is always "unfinished": an unclosed fence runs
//! to the end, a table needs only its header and delimiter rows. Nesting (quotes, lists) is
//! capped at [`MAX_DEPTH`] so hostile input cannot exhaust the stack.

use super::inline::inline;
use super::tree::{Align, Kind, Node};

/// Deepest nesting of quotes and lists; deeper content is shown as plain paragraphs.
const MAX_DEPTH: usize = 16;

/// Parses a whole document.
pub(super) fn parse(markdown: &str) -> Vec<Node> {
    let normalized = markdown.replace("\r\n", "\n").replace('\t', "    ");
    let lines: Vec<&str> = normalized.lines().collect();
    blocks(&lines, 0)
}

fn el(kind: Kind, children: Vec<Node>) -> Node {
    Node::Element { kind, children }
}

/// Leading spaces of a line.
fn indent(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

fn is_blank(line: &str) -> bool {
    line.trim().is_empty()
}

/// An opening code fence: its character, length, indent and info string.
fn fence(line: &str) -> Option<(char, usize, usize, &str)> {
    let pad = indent(line);
    if pad > 3 {
        return None;
    }
    let rest = &line[pad..];
    let ch = rest.chars().next().filter(|c| *c == '`' || *c == '~')?;
    let len = rest.len() - rest.trim_start_matches(ch).len();
    let info = rest[len..].trim();
    // A backtick fence's info string may not contain backticks (that is an inline code span).
    (len >= 3 && !(ch == '`' && info.contains('`'))).then_some((ch, len, pad, info))
}

fn closes_fence(line: &str, ch: char, len: usize) -> bool {
    let trimmed = line.trim();
    indent(line) <= 3 && trimmed.len() >= len && trimmed.chars().all(|c| c == ch)
}

fn heading(line: &str) -> Option<(u8, &str)> {
    if indent(line) > 3 {
        return None;
    }
    let rest = line.trim_start();
    let level = rest.len() - rest.trim_start_matches('#').len();
    let text = &rest[level..];
    if !(1..=6).contains(&level) || !(text.is_empty() || text.starts_with(' ')) {
        return None;
    }
    // Closing hashes are decoration: `## Title ##`.
    let text = text.trim();
    let stripped = text.trim_end_matches('#');
    let text = if stripped.is_empty() || stripped.ends_with(' ') { stripped.trim_end() } else { text };
    Some((level as u8, text))
}

fn is_rule(line: &str) -> bool {
    if indent(line) > 3 {
        return false;
    }
    let compact: String = line.chars().filter(|c| !c.is_whitespace()).collect();
    compact.len() >= 3 && ['-', '*', '_'].iter().any(|&mark| compact.chars().all(|c| c == mark))
}

/// A list item marker: (ordered start, marker char, column where the content starts).
fn list_marker(line: &str) -> Option<(Option<u64>, char, usize)> {
    let pad = indent(line);
    let rest = &line[pad..];
    let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let (start, marker, after) = if digits == 0 {
        let mark = rest.chars().next().filter(|c| matches!(c, '-' | '*' | '+'))?;
        (None, mark, &rest[1..])
    } else if digits <= 9 {
        let mark = rest[digits..].chars().next().filter(|c| matches!(c, '.' | ')'))?;
        (rest[..digits].parse().ok(), mark, &rest[digits + 1..])
    } else {
        return None;
    };
    let marker_width = rest.len() - after.len();
    if after.is_empty() {
        return Some((start, marker, pad + marker_width + 1));
    }
    let gap = indent(after);
    if gap == 0 {
        return None;
    }
    // More than four spaces after the marker means the content is indented code; keep one.
    let gap = if gap > 4 { 1 } else { gap };
    Some((start, marker, pad + marker_width + gap))
}

/// Splits a table row into cells, honouring `\|` escapes.
fn cells(line: &str) -> Vec<String> {
    let trimmed = line.trim();
    let trimmed = trimmed.strip_prefix('|').unwrap_or(trimmed);
    let trimmed =
        if trimmed.ends_with('|') && !trimmed.ends_with("\\|") { &trimmed[..trimmed.len() - 1] } else { trimmed };
    let mut out = vec![String::new()];
    let mut chars = trimmed.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '|' => out.push(String::new()),
            _ => {
                let c = if c == '\\' && chars.peek() == Some(&'|') { chars.next().unwrap_or(c) } else { c };
                if let Some(cell) = out.last_mut() {
                    cell.push(c);
                }
            }
        }
    }
    out.into_iter().map(|cell| cell.trim().to_owned()).collect()
}

/// The alignments of a delimiter row (`| :-- | --: |`), if the line is one.
fn delimiter_row(line: &str) -> Option<Vec<Align>> {
    if !line.contains('-') {
        return None;
    }
    cells(line)
        .iter()
        .map(|cell| {
            let left = cell.starts_with(':');
            let right = cell.ends_with(':');
            let dashes = cell.trim_matches(':');
            (!dashes.is_empty() && dashes.chars().all(|c| c == '-')).then_some(match (left, right) {
                (true, true) => Align::Center,
                (true, false) => Align::Left,
                (false, true) => Align::Right,
                (false, false) => Align::None,
            })
        })
        .collect()
}

fn table_start(lines: &[&str], at: usize) -> Option<Vec<Align>> {
    let head = lines.get(at)?;
    let aligns = delimiter_row(lines.get(at + 1)?)?;
    (head.contains('|') && cells(head).len() == aligns.len()).then_some(aligns)
}

/// Whether a line starts a block that ends a paragraph.
fn interrupts(lines: &[&str], at: usize) -> bool {
    let line = lines[at];
    fence(line).is_some()
        || heading(line).is_some()
        || is_rule(line)
        || line.trim_start().starts_with('>')
        || list_marker(line).is_some_and(|(start, _, _)| start.is_none_or(|n| n == 1))
        || table_start(lines, at).is_some()
}

fn blocks(lines: &[&str], depth: usize) -> Vec<Node> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if is_blank(line) {
            i += 1;
        } else if let Some((ch, len, pad, info)) = fence(line) {
            let mut code = String::new();
            i += 1;
            while i < lines.len() && !closes_fence(lines[i], ch, len) {
                let content = lines[i];
                code.push_str(&content[indent(content).min(pad)..]);
                code.push('\n');
                i += 1;
            }
            i += 1;
            let lang = info.split_whitespace().next().map(str::to_owned);
            out.push(el(Kind::CodeBlock(lang), vec![Node::Text(code)]));
        } else if let Some((level, text)) = heading(line) {
            out.push(el(Kind::Heading(level), inline(text)));
            i += 1;
        } else if is_rule(line) {
            out.push(el(Kind::Rule, Vec::new()));
            i += 1;
        } else if line.trim_start().starts_with('>') && depth < MAX_DEPTH {
            let mut quoted = Vec::new();
            while i < lines.len() && lines[i].trim_start().starts_with('>') {
                let rest = &lines[i].trim_start()[1..];
                quoted.push(rest.strip_prefix(' ').unwrap_or(rest));
                i += 1;
            }
            out.push(el(Kind::BlockQuote, blocks(&quoted, depth + 1)));
        } else if let Some(aligns) = table_start(lines, i) {
            out.push(table(lines, &mut i, &aligns));
        } else if list_marker(line).is_some() && depth < MAX_DEPTH {
            out.push(list(lines, &mut i, depth));
        } else {
            out.push(paragraph(lines, &mut i));
        }
    }
    out
}

fn table(lines: &[&str], i: &mut usize, aligns: &[Align]) -> Node {
    let row = |line: &str, header: bool| {
        let mut values = cells(line);
        values.resize(aligns.len(), String::new());
        values
            .iter()
            .zip(aligns)
            .map(|(value, &align)| el(Kind::TableCell { header, align }, inline(value)))
            .collect::<Vec<_>>()
    };
    let mut children = vec![el(Kind::TableHead, row(lines[*i], true))];
    *i += 2;
    while *i < lines.len() && !is_blank(lines[*i]) && lines[*i].contains('|') {
        children.push(el(Kind::TableRow, row(lines[*i], false)));
        *i += 1;
    }
    el(Kind::Table, children)
}

fn list(lines: &[&str], i: &mut usize, depth: usize) -> Node {
    let Some((start, marker, _)) = list_marker(lines[*i]) else {
        return paragraph(lines, i);
    };
    let base = indent(lines[*i]);
    let mut items = Vec::new();
    while *i < lines.len() {
        let Some((_, this_marker, content_at)) = list_marker(lines[*i])
            .filter(|(s, m, _)| *m == marker && s.is_some() == start.is_some() && indent(lines[*i]) == base)
        else {
            break;
        };
        debug_assert_eq!(this_marker, marker);
        let first = lines[*i];
        let mut item: Vec<&str> = vec![first.get(content_at..).unwrap_or("")];
        *i += 1;
        while *i < lines.len() {
            let line = lines[*i];
            if is_blank(line) {
                // A blank line continues the item only if indented content follows it.
                let next = lines[*i + 1..].iter().find(|l| !is_blank(l));
                if next.is_some_and(|l| indent(l) >= content_at) {
                    item.push("");
                    *i += 1;
                    continue;
                }
                break;
            }
            if indent(line) >= content_at {
                item.push(&line[content_at..]);
            } else if list_marker(line).is_none() && !interrupts(lines, *i) && !is_blank(item[item.len() - 1]) {
                // A lazy continuation line of the item's paragraph.
                item.push(line.trim_start());
            } else {
                break;
            }
            *i += 1;
        }
        let mut children = blocks(&item, depth + 1);
        // A one-paragraph item renders its text directly, as a tight list does.
        if matches!(children.first(), Some(Node::Element { kind: Kind::Paragraph, .. }))
            && children.iter().filter(|c| matches!(c, Node::Element { kind: Kind::Paragraph, .. })).count() == 1
            && let Node::Element { children: inner, .. } = children.remove(0)
        {
            children.splice(0..0, inner);
        }
        items.push(el(Kind::Item, children));
        // Blank lines between items keep the list going.
        while *i < lines.len() && is_blank(lines[*i]) {
            let next = lines[*i + 1..].iter().find(|l| !is_blank(l));
            if next.is_some_and(|l| list_marker(l).is_some_and(|(_, m, _)| m == marker) && indent(l) == base) {
                *i += 1;
            } else {
                break;
            }
        }
    }
    match start {
        Some(n) => el(Kind::OrderedList(n), items),
        None => el(Kind::BulletList, items),
    }
}

fn paragraph(lines: &[&str], i: &mut usize) -> Node {
    let mut text = String::new();
    let mut first = true;
    while *i < lines.len() && !is_blank(lines[*i]) && (first || !interrupts(lines, *i)) {
        let line = lines[*i];
        let trimmed = line.trim();
        // A setext underline turns the paragraph so far into a heading.
        if !first && !trimmed.is_empty() && (trimmed.chars().all(|c| c == '=') || trimmed.chars().all(|c| c == '-')) {
            *i += 1;
            let level = if trimmed.starts_with('=') { 1 } else { 2 };
            return el(Kind::Heading(level), inline(&text));
        }
        if !first {
            text.push('\n');
        }
        // Two trailing spaces are a hard line break; the inline parser sees it as `\` + newline.
        let content = line.trim_start();
        if content.ends_with("  ") {
            text.push_str(content.trim_end());
            text.push('\\');
        } else {
            text.push_str(content.trim_end());
        }
        first = false;
        *i += 1;
    }
    if text.ends_with('\\') {
        text.pop();
    }
    el(Kind::Paragraph, inline(&text))
}
