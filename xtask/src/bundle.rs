//! The frontend bundle in `dist/`, built without Trunk: cargo compiles the Wasm, the workspace's
//! `bindgen` crate writes wasm-bindgen's JavaScript glue, wasm-opt from npm shrinks release
//! builds, and `frontend/index.html` gets its `data-trunk` links replaced by the files they name.
//!
//! Trunk stays the tool of `trunk serve`, the development loop. The app and its tests use this
//! bundle, so a fresh machine serves the page without compiling Trunk and wasm-bindgen-cli,
//! which took longer on two cores than everything else `cargo xtask run` does.

use std::fs;
use std::hash::{DefaultHasher, Hasher};
use std::path::Path;

use crate::setup::WASM_TARGET;
use crate::util::{self, APP_PROFILE, Result};

/// The Cargo profile of the release Wasm bundle (size-tuned, defined in the root Cargo.toml).
pub const WASM_PROFILE: &str = "wasm-release";

/// The frontend's binary name, and so the stem of every file wasm-bindgen writes.
const CRATE: &str = "frontend";

/// The workspace's wasm-bindgen as a program; built with the server's profile so that
/// `cargo xtask run` compiles the two in one cargo invocation.
pub fn bindgen_build() -> std::process::Command {
    let mut cmd = util::cargo();
    cmd.args(["build", "--profile", APP_PROFILE, "-p", "bindgen"]);
    cmd
}

/// Compiles the frontend crate to Wasm. Cargo locks a profile's output directory, and this one
/// (`target/wasm32-unknown-unknown/…`) is not the server's, so the two builds can run at once.
pub fn compile(release: bool) -> Result {
    let mut cmd = util::cargo();
    cmd.args(["build", "-p", CRATE, "--target", WASM_TARGET]);
    if release {
        cmd.args(["--profile", WASM_PROFILE]);
    }
    util::run_quiet("frontend wasm", &mut cmd)
}

/// Turns the compiled Wasm into `dist/`: glue, optimised Wasm, stylesheet and page, each asset
/// named after a hash of its content so browsers may cache them for as long as they like.
pub fn assemble(release: bool) -> Result {
    let root = util::root();
    let target = util::target_dir();
    let wasm =
        target.join(WASM_TARGET).join(if release { WASM_PROFILE } else { "debug" }).join(format!("{CRATE}.wasm"));
    let staging = target.join("bundle");
    recreate_dir(&staging)?;

    let page_dir = root.join(CRATE);
    let page = fs::read_to_string(page_dir.join("index.html"))?;
    let rust = trunk_links(&page)?
        .into_iter()
        .find(|link| link.attr("rel") == Some("rust"))
        .ok_or("frontend/index.html has no `<link data-trunk rel=\"rust\">`: nothing says to build the Wasm")?;

    util::run(util::command(util::app_binary("bindgen")).arg(&wasm).arg(&staging))?;
    let bg_wasm = staging.join(format!("{CRATE}_bg.wasm"));
    if let Some(args) = wasm_opt_args(&rust).filter(|_| release) {
        let wasm_opt = util::node_bin_dir().join("wasm-opt");
        util::run_quiet("wasm-opt", util::command(wasm_opt).args(args).arg(&bg_wasm).arg("-o").arg(&bg_wasm))?;
    }

    let out = staging.join("dist");
    fs::create_dir_all(&out)?;
    let wasm_bytes = fs::read(&bg_wasm)?;
    let stem = format!("{CRATE}-{}", content_hash(&wasm_bytes));
    let wasm_name = format!("{stem}_bg.wasm");
    let js_name = format!("{stem}.js");
    fs::write(out.join(&wasm_name), &wasm_bytes)?;
    fs::copy(staging.join(format!("{CRATE}.js")), out.join(&js_name))?;

    let page = replace_trunk_links(&page, |link| match link.attr("rel") {
        Some("css") => {
            let href = link.attr("href").ok_or("a `rel=\"css\"` link without `href`")?;
            let css = compact_css(&fs::read_to_string(page_dir.join(href))?);
            let css = css.as_bytes();
            let name = format!(
                "{}-{}.css",
                Path::new(href).file_stem().and_then(|s| s.to_str()).unwrap_or("style"),
                content_hash(css)
            );
            fs::write(out.join(&name), css)?;
            Ok(format!(r#"<link rel="stylesheet" href="/{name}" />"#))
        }
        Some("rust") => Ok(format!(
            "<link rel=\"modulepreload\" href=\"/{js_name}\" />\n    \
             <link rel=\"preload\" href=\"/{wasm_name}\" as=\"fetch\" type=\"application/wasm\" crossorigin />\n    \
             <script type=\"module\">import init from '/{js_name}'; await init({{ module_or_path: '/{wasm_name}' }});</script>"
        )),
        other => {
            Err(format!("frontend/index.html: `data-trunk rel={other:?}` is not something this bundler builds").into())
        }
    })?;
    fs::write(out.join("index.html"), without_comments(&page, "<!--", "-->"))?;

    let dist = util::dist_dir();
    if dist.exists() {
        fs::remove_dir_all(&dist)?;
    }
    fs::rename(&out, &dist)?;
    Ok(())
}

fn recreate_dir(dir: &Path) -> Result {
    if dir.exists() {
        fs::remove_dir_all(dir)?;
    }
    fs::create_dir_all(dir)?;
    Ok(())
}

/// 16 hex digits of the bytes' SipHash: enough to tell one build's asset from another's. It may
/// differ between Rust releases, which only means a browser downloads the asset once more.
fn content_hash(bytes: &[u8]) -> String {
    let mut hasher = DefaultHasher::new();
    hasher.write(bytes);
    format!("{:016x}", hasher.finish())
}

/// `text` without the comments opened by `open` and closed by `close`. A comment left open keeps
/// the rest as it is: it is the source's mistake, and the browser will say so.
fn without_comments(text: &str, open: &str, close: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(open) {
        let Some(len) = rest[start..].find(close) else { break };
        out.push_str(&rest[..start]);
        rest = &rest[start + len + close.len()..];
    }
    out.push_str(rest);
    out
}

/// The stylesheet without comments, indentation and blank lines: what a browser needs of it.
fn compact_css(css: &str) -> String {
    let css = without_comments(css, "/*", "*/");
    css.lines().map(str::trim).filter(|line| !line.is_empty()).collect::<Vec<_>>().join("\n")
}

/// wasm-opt's arguments as the page's `rel="rust"` link gives them to Trunk (`data-wasm-opt`,
/// the level, and `data-wasm-opt-params`), so that both builds optimise alike; none without a
/// level or at level 0, as with Trunk.
fn wasm_opt_args(link: &TrunkLink) -> Option<Vec<String>> {
    let level = link.attr("data-wasm-opt").filter(|level| *level != "0")?;
    let params = link.attr("data-wasm-opt-params").unwrap_or_default().split_whitespace();
    Some(std::iter::once(format!("-O{level}")).chain(params.map(str::to_owned)).collect())
}

/// A `<link data-trunk …>` element's attributes, in the order written.
#[derive(Debug, Clone, PartialEq)]
struct TrunkLink(Vec<(String, String)>);

impl TrunkLink {
    fn attr(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// The `<link data-trunk …>` elements of `page`, in order.
fn trunk_links(page: &str) -> Result<Vec<TrunkLink>> {
    let mut links = Vec::new();
    replace_trunk_links(page, |link| {
        links.push(link.clone());
        Ok(String::new())
    })?;
    Ok(links)
}

/// Replaces each `<link data-trunk …>` element of `page` by what `with` makes of it.
fn replace_trunk_links(page: &str, mut with: impl FnMut(&TrunkLink) -> Result<String>) -> Result<String> {
    let mut out = String::with_capacity(page.len());
    let mut rest = page;
    while let Some(start) = rest.find("<link") {
        let (before, tag) = rest.split_at(start);
        out.push_str(before);
        let end = tag.find('>').ok_or("frontend/index.html: a `<link` is never closed")? + 1;
        let (element, after) = tag.split_at(end);
        let link = parse_link(element)?;
        if link.attr("data-trunk").is_some() {
            out.push_str(&with(&link)?);
        } else {
            out.push_str(element);
        }
        rest = after;
    }
    out.push_str(rest);
    Ok(out)
}

/// Reads `<link a="b" c d='e' />` into its attributes (a bare name has an empty value).
fn parse_link(element: &str) -> Result<TrunkLink> {
    let inner = element.trim_start_matches("<link").trim_end_matches('>').trim_end_matches('/');
    let mut attrs = Vec::new();
    let mut chars = inner.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let name: String = std::iter::from_fn(|| chars.next_if(|c| !c.is_whitespace() && *c != '=')).collect();
        if name.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.next_if_eq(&'=').is_some() {
            let quote = chars.next_if(|c| *c == '"' || *c == '\'');
            match quote {
                Some(q) => {
                    value = std::iter::from_fn(|| chars.next_if(|c| *c != q)).collect();
                    chars.next().ok_or_else(|| format!("frontend/index.html: unclosed quote in `{element}`"))?;
                }
                None => value = std::iter::from_fn(|| chars.next_if(|c| !c.is_whitespace())).collect(),
            }
        }
        attrs.push((name, value));
    }
    Ok(TrunkLink(attrs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(link: &TrunkLink) -> Vec<(&str, &str)> {
        link.0.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect()
    }

    #[test]
    fn a_link_is_read_into_its_attributes_whatever_the_quoting() {
        let link =
            parse_link("<link data-trunk rel=\"rust\" href='Cargo.toml'\n   data-bin=frontend />").expect("parses");
        assert_eq!(
            pairs(&link),
            [("data-trunk", ""), ("rel", "rust"), ("href", "Cargo.toml"), ("data-bin", "frontend")]
        );
    }

    #[test]
    fn only_trunk_links_are_replaced_and_everything_around_them_is_kept() {
        let page =
            "<head>\n<link rel=\"icon\" href=\"data:,\" />\n<link data-trunk rel=\"css\" href=\"a.css\" />\n</head>";
        let out = replace_trunk_links(page, |link| Ok(format!("[{}]", link.attr("href").unwrap_or_default())))
            .expect("replaces");
        assert_eq!(out, "<head>\n<link rel=\"icon\" href=\"data:,\" />\n[a.css]\n</head>");
    }

    #[test]
    fn wasm_opt_runs_as_the_page_tells_trunk_to() {
        let page = "<link data-trunk rel=\"rust\" data-wasm-opt=\"z\"\n data-wasm-opt-params=\"--enable-bulk-memory  --enable-sign-ext\" />\n<link data-trunk rel=\"css\" href=\"a.css\" />";
        let links = trunk_links(page).expect("parses");
        assert_eq!(links.len(), 2);
        assert_eq!(
            wasm_opt_args(&links[0]),
            Some(vec!["-Oz".to_owned(), "--enable-bulk-memory".to_owned(), "--enable-sign-ext".to_owned()])
        );
        let unoptimised = parse_link("<link data-trunk rel=\"rust\" data-wasm-opt=\"0\" />").expect("parses");
        assert_eq!(wasm_opt_args(&unoptimised), None);
        assert_eq!(wasm_opt_args(&links[1]), None);
    }

    #[test]
    fn an_unclosed_link_is_an_error_not_a_truncated_page() {
        assert!(replace_trunk_links("<link data-trunk rel=\"css\"", |_| Ok(String::new())).is_err());
    }

    #[test]
    fn comments_go_and_what_surrounds_them_stays() {
        assert_eq!(without_comments("a<!-- x -->b<!--y-->c", "<!--", "-->"), "abc");
        assert_eq!(without_comments("a<!-- open", "<!--", "-->"), "a<!-- open");
        assert_eq!(compact_css("/* why */\nbody {\n  color: red; /* note */\n}\n\n"), "body {\ncolor: red;\n}");
    }

    #[test]
    fn the_content_hash_tells_different_bytes_apart_and_names_equal_ones_alike() {
        assert_eq!(content_hash(b"abc"), content_hash(b"abc"));
        assert_ne!(content_hash(b"abc"), content_hash(b"abd"));
        assert_eq!(content_hash(b"abc").len(), 16);
    }
}
