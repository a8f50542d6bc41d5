//! Model output as Markdown, made safe: text → a small tree of known elements → Yew nodes.
//!
//! Model output is untrusted. [`parse`] builds a [`Node`] tree whose element kinds are a closed
//! list with no attribute that can run code: raw HTML becomes literal text, images become their
//! alt text, and a link keeps its target only when [`safe_href`] accepts it (`http:`, `https:`,
//! `mailto:`). [`render`] turns the tree into Yew nodes without `inner_html`, so nothing in the
//! text can reach the DOM as markup.
//!
//! The parser is our own (blocks in `blocks`, spans in `inline`, both building the `tree`):
//! pulldown-cmark, tried first, added about 125 KB (50 KB gzipped) to the Wasm.

mod blocks;
mod href;
mod inline;
mod tree;

use yew::{Html, html};

pub use href::safe_href;
pub use tree::{Align, Kind, Node};

/// The `rel` every rendered link gets: no opener access, no referrer, no endorsement.
pub const LINK_REL: &str = "noopener noreferrer nofollow";

/// Parses Markdown (the CommonMark core plus GitHub tables and strikethrough) into a safe tree.
pub fn parse(markdown: &str) -> Vec<Node> {
    blocks::parse(markdown)
}

/// Renders a parsed tree as Yew nodes.
pub fn render(nodes: &[Node]) -> Html {
    nodes.iter().map(render_node).collect::<Html>()
}

/// The label of a code block's copy button, which the page sets back after showing "Copied".
pub const COPY_CODE: &str = "Copy";

/// Parses and renders Markdown in one step.
pub fn to_html(markdown: &str) -> Html {
    render(&parse(markdown))
}

fn render_node(node: &Node) -> Html {
    let (kind, children) = match node {
        // A text node is always inserted as text, whatever it contains.
        Node::Text(text) => return html! { text.clone() },
        Node::Element { kind, children } => (kind, children),
    };
    let inner = render(children);
    match kind {
        Kind::Paragraph => html! { <p>{ inner }</p> },
        Kind::Heading(1) => html! { <h1>{ inner }</h1> },
        Kind::Heading(2) => html! { <h2>{ inner }</h2> },
        Kind::Heading(3) => html! { <h3>{ inner }</h3> },
        Kind::Heading(4) => html! { <h4>{ inner }</h4> },
        Kind::Heading(5) => html! { <h5>{ inner }</h5> },
        Kind::Heading(_) => html! { <h6>{ inner }</h6> },
        Kind::BlockQuote => html! { <blockquote>{ inner }</blockquote> },
        // The button has no handler here: the page that shows the answer handles its clicks, so
        // rendering stays free of callbacks.
        Kind::CodeBlock(lang) => html! {
            <div class="code-block">
                <pre data-lang={ lang.clone() }><code>{ inner }</code></pre>
                <button type="button" class="small copy-code" data-testid="copy-code">{ COPY_CODE }</button>
            </div>
        },
        Kind::BulletList => html! { <ul>{ inner }</ul> },
        Kind::OrderedList(start) => html! { <ol start={ start.to_string() }>{ inner }</ol> },
        Kind::Item => html! { <li>{ inner }</li> },
        Kind::Table => html! { <div class="table-scroll"><table>{ inner }</table></div> },
        Kind::TableHead => html! { <thead><tr>{ inner }</tr></thead> },
        Kind::TableRow => html! { <tr>{ inner }</tr> },
        Kind::TableCell { header: true, align } => html! { <th style={ align.style() }>{ inner }</th> },
        Kind::TableCell { header: false, align } => html! { <td style={ align.style() }>{ inner }</td> },
        Kind::Emphasis => html! { <em>{ inner }</em> },
        Kind::Strong => html! { <strong>{ inner }</strong> },
        Kind::Strikethrough => html! { <del>{ inner }</del> },
        Kind::Code => html! { <code>{ inner }</code> },
        Kind::Link(Some(href)) => html! {
            <a href={ href.clone() } rel={ LINK_REL } target="_blank">{ inner }</a>
        },
        Kind::Link(None) => html! { <span class="unsafe-link" title="link removed">{ inner }</span> },
        Kind::Rule => html! { <hr /> },
        Kind::LineBreak => html! { <br /> },
        Kind::Span => html! { <span>{ inner }</span> },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_of(nodes: &[Node]) -> String {
        nodes
            .iter()
            .map(|node| match node {
                Node::Text(text) => text.clone(),
                Node::Element { children, .. } => text_of(children),
            })
            .collect()
    }

    fn links(nodes: &[Node], out: &mut Vec<Option<String>>) {
        for node in nodes {
            if let Node::Element { kind, children } = node {
                if let Kind::Link(href) = kind {
                    out.push(href.clone());
                }
                links(children, out);
            }
        }
    }

    fn all_links(markdown: &str) -> Vec<Option<String>> {
        let mut out = Vec::new();
        links(&parse(markdown), &mut out);
        out
    }

    fn el(kind: Kind, children: Vec<Node>) -> Node {
        Node::Element { kind, children }
    }

    fn text(s: &str) -> Node {
        Node::Text(s.into())
    }

    #[test]
    fn paragraphs_emphasis_and_code_spans() {
        assert_eq!(
            parse("Hello *big* **bold** `x < y`"),
            vec![el(
                Kind::Paragraph,
                vec![
                    text("Hello "),
                    el(Kind::Emphasis, vec![text("big")]),
                    text(" "),
                    el(Kind::Strong, vec![text("bold")]),
                    text(" "),
                    el(Kind::Code, vec![text("x < y")]),
                ]
            )]
        );
    }

    #[test]
    fn fenced_code_keeps_its_language_and_text() {
        let tree = parse("```rust\nfn main() { println!(\"<b>\"); }\n```\n");
        assert_eq!(
            tree,
            vec![el(Kind::CodeBlock(Some("rust".into())), vec![text("fn main() { println!(\"<b>\"); }\n")])]
        );
    }

    #[test]
    fn an_unclosed_fence_while_streaming_is_still_a_code_block() {
        let tree = parse("Here:\n```py\nprint(1)\n");
        assert!(matches!(&tree[1], Node::Element { kind: Kind::CodeBlock(Some(lang)), .. } if lang == "py"));
    }

    #[test]
    fn lists_headings_and_tables() {
        let tree = parse("# Title\n\n1. one\n2. two\n\n- a\n- b\n\n| h | r |\n|---|--:|\n| 1 | 2 |\n");
        assert_eq!(tree[0], el(Kind::Heading(1), vec![text("Title")]));
        assert!(matches!(&tree[1], Node::Element { kind: Kind::OrderedList(1), children } if children.len() == 2));
        assert!(matches!(&tree[2], Node::Element { kind: Kind::BulletList, children } if children.len() == 2));
        let Node::Element { kind: Kind::Table, children } = &tree[3] else {
            panic!("expected a table, got {:?}", tree[3]);
        };
        assert_eq!(
            children[0],
            el(
                Kind::TableHead,
                vec![
                    el(Kind::TableCell { header: true, align: Align::None }, vec![text("h")]),
                    el(Kind::TableCell { header: true, align: Align::Right }, vec![text("r")]),
                ]
            )
        );
        assert_eq!(
            children[1],
            el(
                Kind::TableRow,
                vec![
                    el(Kind::TableCell { header: false, align: Align::None }, vec![text("1")]),
                    el(Kind::TableCell { header: false, align: Align::Right }, vec![text("2")]),
                ]
            )
        );
    }

    #[test]
    fn safe_links_keep_their_target() {
        assert_eq!(
            all_links("[a](https://example.com/x?y=1) [b](http://e.org) [c](mailto:me@e.org)"),
            vec![Some("https://example.com/x?y=1".into()), Some("http://e.org".into()), Some("mailto:me@e.org".into())]
        );
        assert_eq!(all_links("<https://auto.link>"), vec![Some("https://auto.link".into())]);
    }

    #[test]
    fn hostile_link_targets_are_dropped() {
        let hostile = [
            "[x](javascript:alert(1))",
            "[x](JaVaScRiPt:alert(1))",
            "[x](  javascript:alert(1))",
            "[x](<java\tscript:alert(1)>)",
            "[x](&#106;avascript:alert(1))",
            "[x](java&#x09;script:alert(1))",
            "[x](vbscript:msgbox(1))",
            "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
            "[x](DATA:text/html,<script>alert(1)</script>)",
            "[x](file:///etc/passwd)",
            "[x](/relative/path)",
            "[x](//evil.example)",
            "[x](#frag)",
            "[x]: javascript:alert(1)\n\n[x]",
            "<javascript:alert(1)>",
            "[x](http:)",
        ];
        for input in hostile {
            let found = all_links(input);
            assert!(found.iter().all(Option::is_none), "{input:?} kept a link: {found:?}");
        }
    }

    #[test]
    fn raw_html_is_kept_as_text() {
        let hostile = [
            "<script>alert(1)</script>",
            "<img src=x onerror=alert(1)>",
            "Hi <b onmouseover=alert(1)>there</b>",
            "<iframe src=\"javascript:alert(1)\"></iframe>",
            "<svg><script>alert(1)</script></svg>",
            "<a href=\"javascript:alert(1)\">x</a>",
            "<div>\n<style>body{display:none}</style>\n</div>",
            "<!-- comment --><details open ontoggle=alert(1)>",
        ];
        for input in hostile {
            let tree = parse(input);
            let shown = text_of(&tree);
            // Everything the model wrote is still visible, as characters.
            for needle in ["alert(1)", "<"] {
                if input.contains(needle) && !input.starts_with("<!--") {
                    assert!(shown.contains(needle), "{input:?} lost {needle:?}: {shown:?}");
                }
            }
            assert!(all_links(input).is_empty(), "{input:?} produced a link");
        }
    }

    #[test]
    fn images_become_their_alt_text() {
        let tree = parse("![a cat](https://tracker.example/pixel.png) ![x](javascript:alert(1))");
        assert_eq!(text_of(&tree), "a cat x");
        assert!(all_links("![a cat](https://t.example/p.png)").is_empty());
    }

    #[test]
    fn nested_and_unclosed_constructs_stay_balanced() {
        let inputs = [
            "**bold *both** still",
            "[unclosed link(https://e.org",
            "> > > deep\n> quote",
            "- a\n  - b\n    - c\n      1. d",
            "| a |\n|---|\n| <script> |",
            "`unclosed code",
            "***",
            &"[".repeat(500),
            &"> ".repeat(200),
            &"*a ".repeat(300),
        ];
        for input in inputs {
            let tree = parse(input);
            // Structural sanity: every link in any of these has been vetted.
            let mut found = Vec::new();
            links(&tree, &mut found);
            assert!(found.iter().flatten().all(|href| safe_href(href).is_some()));
        }
    }

    #[test]
    fn nested_lists_quotes_setext_and_breaks() {
        let tree = parse("- a\n  - b\n- c\n\n> quoted\n> **text**\n\nTitle\n===\n\nline one  \nline two");
        assert_eq!(
            tree[0],
            el(
                Kind::BulletList,
                vec![
                    el(Kind::Item, vec![text("a"), el(Kind::BulletList, vec![el(Kind::Item, vec![text("b")])])]),
                    el(Kind::Item, vec![text("c")]),
                ]
            )
        );
        assert_eq!(
            tree[1],
            el(
                Kind::BlockQuote,
                vec![el(Kind::Paragraph, vec![text("quoted\n"), el(Kind::Strong, vec![text("text")])])]
            )
        );
        assert_eq!(tree[2], el(Kind::Heading(1), vec![text("Title")]));
        assert_eq!(tree[3], el(Kind::Paragraph, vec![text("line one"), el(Kind::LineBreak, vec![]), text("line two")]));
    }

    #[test]
    fn hostile_nesting_depth_is_bounded() {
        for input in [
            "> ".repeat(10_000),
            "- ".repeat(10_000),
            "[".repeat(10_000) + "x" + &"](https://a.b)".repeat(10_000),
            "*a ".repeat(5_000) + &"*".repeat(5_000),
        ] {
            // Must return (no stack overflow) and keep every character as text somewhere.
            let tree = parse(&input);
            assert!(!tree.is_empty());
        }
    }

    #[test]
    fn links_inside_hostile_html_are_text() {
        let tree = parse("<a href=\"javascript:alert(1)\">[ok](https://ok.example)</a>");
        assert_eq!(
            all_links("<a href=\"javascript:alert(1)\">[ok](https://ok.example)</a>"),
            vec![Some("https://ok.example".into())]
        );
        assert!(text_of(&tree).contains("<a href=\"javascript:alert(1)\">"));
    }
}
