//! What the compare page shows: which runs (`/compare?runs=a,b,…`, two to four), and each
//! output's word-level difference from the first.

use common::RunId;

/// Most runs compared at once.
pub const MAX_RUNS: usize = 4;

/// The run ids of a `runs=` query, or why they cannot be compared.
pub fn parse_runs(search: &str) -> Result<Vec<RunId>, String> {
    let value = search
        .trim_start_matches('?')
        .split('&')
        .find_map(|pair| pair.strip_prefix("runs="))
        .map(|v| v.replace("%2C", ",").replace("%2c", ","))
        .unwrap_or_default();
    let mut ids: Vec<RunId> = Vec::new();
    for text in value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let id: RunId = text.parse().map_err(|_| format!("`{text}` is not a run id"))?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    if !(2..=MAX_RUNS).contains(&ids.len()) {
        return Err(format!("Choose two to {MAX_RUNS} runs to compare; this link names {}.", ids.len()));
    }
    Ok(ids)
}

/// A piece of an output compared with the first one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Same(String),
    /// Only in the first output.
    Removed(String),
    /// Only in this output.
    Added(String),
}

/// Largest word-count product diffed word by word; beyond, the outputs are shown whole (the
/// table the diff needs grows with it).
const MAX_CELLS: usize = 4_000_000;

/// `new` as a word-level difference from `old` (words with the whitespace after them), by the
/// longest common subsequence.
pub fn word_diff(old: &str, new: &str) -> Vec<Piece> {
    let (a, b) = (words(old), words(new));
    if a.len().saturating_mul(b.len()) > MAX_CELLS {
        return vec![Piece::Removed(old.to_owned()), Piece::Added(new.to_owned())];
    }
    // lcs[i][j]: the longest common subsequence of a[i..] and b[j..].
    let width = b.len() + 1;
    let mut lcs = vec![0u32; (a.len() + 1) * width];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i * width + j] = if a[i] == b[j] {
                lcs[(i + 1) * width + j + 1] + 1
            } else {
                lcs[(i + 1) * width + j].max(lcs[i * width + j + 1])
            };
        }
    }
    let mut pieces: Vec<Piece> = Vec::new();
    let mut push = |piece: Piece| match (pieces.last_mut(), piece) {
        (Some(Piece::Same(text)), Piece::Same(more))
        | (Some(Piece::Removed(text)), Piece::Removed(more))
        | (Some(Piece::Added(text)), Piece::Added(more)) => text.push_str(&more),
        (_, piece) => pieces.push(piece),
    };
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            push(Piece::Same(a[i].to_owned()));
            (i, j) = (i + 1, j + 1);
        } else if i < a.len() && (j == b.len() || lcs[(i + 1) * width + j] >= lcs[i * width + j + 1]) {
            // What went comes before what came in its place.
            push(Piece::Removed(a[i].to_owned()));
            i += 1;
        } else {
            push(Piece::Added(b[j].to_owned()));
            j += 1;
        }
    }
    pieces
}

/// The text cut after each run of whitespace: words with the spaces that follow them.
fn words(text: &str) -> Vec<&str> {
    let mut words = Vec::new();
    let mut start = 0;
    let mut in_space = false;
    for (at, c) in text.char_indices() {
        if in_space && !c.is_whitespace() {
            words.push(&text[start..at]);
            start = at;
        }
        in_space = c.is_whitespace();
    }
    if start < text.len() {
        words.push(&text[start..]);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_word_is_removed_and_added_and_the_rest_kept() {
        assert_eq!(
            word_diff("the quick brown fox", "the slow brown fox jumps"),
            [
                Piece::Same("the ".into()),
                Piece::Removed("quick ".into()),
                Piece::Added("slow ".into()),
                Piece::Same("brown ".into()),
                Piece::Removed("fox".into()),
                Piece::Added("fox jumps".into()),
            ]
        );
    }

    #[test]
    fn identical_outputs_are_one_same_piece_and_empty_ones_nothing() {
        assert_eq!(word_diff("a b\nc", "a b\nc"), [Piece::Same("a b\nc".into())]);
        assert_eq!(word_diff("", ""), []);
        assert_eq!(word_diff("", "new"), [Piece::Added("new".into())]);
    }

    #[test]
    fn the_runs_come_from_the_query_two_to_four_each_once() {
        let a = "01a237d2-736a-7165-bcfa-3dd9d72c1c98";
        let b = "01a237d2-736a-7165-bcfa-3dda4b9626d9";
        assert_eq!(parse_runs(&format!("?runs={a},{b},{a}")).map(|ids| ids.len()), Ok(2));
        assert_eq!(parse_runs(&format!("?runs={a}%2C{b}")).map(|ids| ids.len()), Ok(2));
        assert_eq!(
            parse_runs(&format!("?runs={a}")),
            Err("Choose two to 4 runs to compare; this link names 1.".into())
        );
        assert_eq!(parse_runs("?runs=x,y"), Err("`x` is not a run id".into()));
    }
}
