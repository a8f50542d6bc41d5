//! The safe tree a parsed answer becomes: text, and elements from a closed list of kinds.

/// An element of the rendered answer; every kind maps to one harmless HTML element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// Literal text (including any HTML the model wrote).
    Text(String),
    /// A container element with children.
    Element { kind: Kind, children: Vec<Node> },
}

/// The closed set of elements the renderer may create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// `<p>`.
    Paragraph,
    /// `<h1>`–`<h6>`, by level.
    Heading(u8),
    /// `<blockquote>`.
    BlockQuote,
    /// `<pre><code>` with the fence's language, shown as a label only.
    CodeBlock(Option<String>),
    /// `<ul>`.
    BulletList,
    /// `<ol start=N>`.
    OrderedList(u64),
    /// `<li>`.
    Item,
    /// `<table>`.
    Table,
    /// `<thead>`.
    TableHead,
    /// `<tr>`.
    TableRow,
    /// `<th>` or `<td>` with its column's alignment.
    TableCell {
        /// Whether the cell is in the header row.
        header: bool,
        align: Align,
    },
    /// `<em>`.
    Emphasis,
    /// `<strong>`.
    Strong,
    /// `<del>`.
    Strikethrough,
    /// Inline `<code>`.
    Code,
    /// `<a href>` with a vetted target; `None` renders the text without a link.
    Link(Option<String>),
    /// `<hr>`.
    Rule,
    /// `<br>`.
    LineBreak,
    /// A `<span>` for constructs shown by their content only (footnotes, images' alt text…).
    Span,
}

/// A table column's alignment, from its delimiter row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// `---`: left to the stylesheet.
    None,
    /// `:--`.
    Left,
    /// `:-:`.
    Center,
    /// `--:`.
    Right,
}

impl Align {
    /// The cell's inline CSS, if its column has an alignment.
    pub(super) fn style(self) -> Option<&'static str> {
        match self {
            Align::None => None,
            Align::Left => Some("text-align:left"),
            Align::Center => Some("text-align:center"),
            Align::Right => Some("text-align:right"),
        }
    }
}
