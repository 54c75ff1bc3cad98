//! Reading a report page as a browser renders it: headless Chromium (Debian's `chromium`; the
//! path in `CLLM4REC_CHROMIUM`, else `chromium` on PATH) dumps the DOM after the page's
//! scripts ran and takes a screenshot; small helpers find elements, rows and texts in it.

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn chromium() -> Option<String> {
    let exe = std::env::var("CLLM4REC_CHROMIUM").unwrap_or_else(|_| "chromium".into());
    Command::new(&exe)
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|_| exe)
}

/// Headless Chromium: the DOM after the page's scripts ran, and a screenshot.
pub fn browse(exe: &str, page: &Path, shot: &Path) -> String {
    let profile = tempfile::tempdir().unwrap();
    let url = format!("file://{}", page.display());
    let common = |c: &mut Command| {
        c.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--hide-scrollbars",
            &format!("--user-data-dir={}", profile.path().display()),
        ]);
    };
    let mut c = Command::new(exe);
    common(&mut c);
    let out = c.args(["--dump-dom", &url]).output().unwrap();
    assert!(
        out.status.success(),
        "chromium --dump-dom: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut c = Command::new(exe);
    common(&mut c);
    let s = c
        .args([
            &format!("--screenshot={}", shot.display()),
            "--window-size=1400,1800",
            &url,
        ])
        .output()
        .unwrap();
    assert!(
        s.status.success() && shot.is_file(),
        "chromium --screenshot: {}",
        String::from_utf8_lossy(&s.stderr)
    );
    let png = std::fs::read(shot).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "not a PNG: {}", shot.display());
    eprintln!("screenshot: {}", shot.display());
    String::from_utf8(out.stdout).unwrap()
}

/// Where screenshots are kept for people to look at (the test's artifacts).
pub fn artifact(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("report-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// The first element `<tag ...>...</tag>` (not nested in itself) whose opening tag contains
/// `marker`, from `from` on: (its text, where it ends).
pub fn element<'a>(
    html: &'a str,
    tag: &str,
    marker: &str,
    from: usize,
) -> Option<(&'a str, usize)> {
    let open = format!("<{tag}");
    let close = format!("</{tag}>");
    let mut at = from;
    loop {
        let s = at + html[at..].find(&open)?;
        let head_end = s + html[s..].find('>')?;
        if html[s..head_end].contains(marker) {
            let e = head_end + html[head_end..].find(&close)? + close.len();
            return Some((&html[s..e], e));
        }
        at = head_end;
    }
}

/// Every element `<tag ...>` in `html` whose opening tag contains `marker`.
pub fn elements<'a>(html: &'a str, tag: &str, marker: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some((e, end)) = element(html, tag, marker, at) {
        out.push(e);
        at = end;
    }
    out
}

/// Text without tags, entities decoded (the few the report writes).
pub fn text(html: &str) -> String {
    let mut o = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => o.push(c),
            _ => {}
        }
    }
    o.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
        .trim()
        .to_owned()
}

/// The body rows of a table element, each as its cells' texts.
pub fn rows(table: &str) -> Vec<Vec<String>> {
    let body = element(table, "tbody", "", 0).map(|b| b.0).unwrap_or(table);
    elements(body, "tr", "")
        .into_iter()
        .map(|r| elements(r, "td", "").into_iter().map(text).collect())
        .collect()
}

/// The cells of the body rows of a Markdown table, each trimmed.
pub fn markdown_rows(md: &str) -> Vec<Vec<String>> {
    md.lines()
        .filter(|l| l.starts_with('|'))
        .skip(2)
        .map(|l| {
            l.trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().replace("\\|", "|"))
                .collect()
        })
        .collect()
}

/// The lineage views of the page that name the raw file `name` with `hash`.
pub fn lineage_naming(dom: &str, name: &str, hash: &str) -> usize {
    elements(dom, "details", "class=\"lineage\"")
        .into_iter()
        .filter(|d| {
            elements(d, "tr", "")
                .iter()
                .any(|r| r.contains(name) && r.contains(hash))
        })
        .count()
}

/// Every lineage link in `part` of the page leads to an element of the page.
#[track_caller]
pub fn assert_links_resolve(dom: &str, part: &str) {
    let links = elements(part, "a", "href=\"#lineage-");
    assert!(!links.is_empty(), "no lineage links");
    for link in links {
        let id = link
            .split("href=\"#")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert!(dom.contains(&format!("id=\"{id}\"")), "dangling link {id}");
    }
}
