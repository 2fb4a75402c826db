//! The documentation is checked like code: the README stays a front door; every relative link in
//! the README, `docs/` and the other top-level pages reaches a file and a heading; every
//! `make` target the docs name exists; every JSON example marked `<!-- checked: METHOD PATH
//! STATUS [header=value…] -->` satisfies `openapi.yaml`, and every delivery marked `<!-- checked:
//! webhook -->` its `webhooks:` entry; and the module map in `docs/architecture.md` is the one
//! the sources' own `//!` lines describe (`SV_UPDATE_DOCS=1 cargo test --test docs` rewrites it).

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The README, every page under `docs/`, and the other pages a user opens from the README.
fn pages() -> Vec<PathBuf> {
    let mut pages: Vec<PathBuf> = [
        "README.md",
        "CONTRIBUTING.md",
        "SECURITY.md",
        "CHANGELOG.md",
    ]
    .iter()
    .map(|name| root().join(name))
    .collect();
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .expect("docs/")
        .map(|entry| entry.expect("docs/ entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
        .collect();
    docs.sort();
    pages.extend(docs);
    for extra in [
        "clients/js/README.md",
        "ses-local/README.md",
        "tests/fixtures/README.md",
    ] {
        let path = root().join(extra);
        if path.exists() {
            pages.push(path);
        }
    }
    pages
}

/// A page's text with its fenced code blocks blanked out (links and headings in code don't count).
fn prose(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_fence = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            out.push('\n');
            continue;
        }
        if !in_fence {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// GitHub's anchor for a heading: lowercased, punctuation other than `-` and `_` dropped,
/// spaces turned into `-`.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn anchors(text: &str) -> BTreeSet<String> {
    prose(text)
        .lines()
        .filter_map(|line| {
            let hashes = line.chars().take_while(|&c| c == '#').count();
            (1..=6)
                .contains(&hashes)
                .then(|| line[hashes..].strip_prefix(' '))
                .flatten()
        })
        .map(slug)
        .collect()
}

/// Every `[text](target)` link target of a page's prose.
fn links(text: &str) -> Vec<String> {
    let prose = prose(text);
    let mut found = Vec::new();
    let mut rest = prose.as_str();
    while let Some(at) = rest.find("](") {
        rest = &rest[at + 2..];
        if let Some(end) = rest.find(')') {
            let target = &rest[..end];
            if !target.contains(char::is_whitespace) {
                found.push(target.to_string());
            }
        }
    }
    found
}

#[test]
fn the_readme_is_a_front_door_of_at_most_250_lines() {
    let readme = read(&root().join("README.md"));
    let lines = readme.lines().count();
    assert!(
        lines <= 250,
        "README.md has {lines} lines; the manual belongs in docs/"
    );
    for section in ["Run it locally", "Deploy", "Integrate", "Limits"] {
        assert!(
            readme.contains(&format!("## {section}")),
            "README.md has no `## {section}` section"
        );
    }
}

#[test]
fn every_relative_link_in_the_docs_reaches_a_file_and_a_heading() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for page in pages() {
        let text = read(&page);
        let dir = page.parent().expect("a page has a folder");
        for target in links(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (file, anchor) = match target.split_once('#') {
                Some((file, anchor)) => (file, Some(anchor)),
                None => (target.as_str(), None),
            };
            let resolved = if file.is_empty() {
                page.clone()
            } else {
                dir.join(file)
            };
            checked += 1;
            if !resolved.exists() {
                broken.push(format!("{}: {target} (no such file)", page.display()));
                continue;
            }
            if let Some(anchor) = anchor {
                if resolved.extension().is_some_and(|ext| ext == "md")
                    && !anchors(&read(&resolved)).contains(anchor)
                {
                    broken.push(format!("{}: {target} (no such heading)", page.display()));
                }
            }
        }
    }
    assert!(
        checked > 50,
        "only {checked} links found: is the parser broken?"
    );
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_link_checker_finds_headings_and_ignores_code() {
    let page = "# Deploy to your accounts\n\n## `GET /signup/status`\n```\n# not a heading\n[x](nowhere.md)\n```\n[a](b.md#c)\n";
    let anchors = anchors(page);
    assert!(anchors.contains("deploy-to-your-accounts"));
    assert!(anchors.contains("get-signupstatus"));
    assert!(!anchors.contains("not-a-heading"));
    assert_eq!(links(page), vec!["b.md#c".to_string()]);
}

/// Every `make <target>` in a page's code (spans and blocks).
fn make_targets(text: &str) -> BTreeSet<String> {
    let mut code = String::new();
    let mut in_fence = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
        } else if in_fence {
            code.push_str(line);
            code.push('\n');
        } else {
            for (i, span) in line.split('`').enumerate() {
                if i % 2 == 1 {
                    code.push_str(span);
                    code.push('\n');
                }
            }
        }
    }
    let mut targets = BTreeSet::new();
    for line in code.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        for pair in words.windows(2) {
            if pair[0] == "make"
                && pair[1]
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            {
                targets.insert(pair[1].to_string());
            }
        }
    }
    targets
}

#[test]
fn every_make_target_the_docs_name_exists() {
    let makefile = read(&root().join("Makefile"));
    let defined: BTreeSet<String> = makefile
        .lines()
        .filter_map(|line| line.split_once(':').map(|(name, _)| name))
        .filter(|name| {
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        })
        .map(str::to_string)
        .collect();
    let mut named = BTreeSet::new();
    for page in pages() {
        for target in make_targets(&read(&page)) {
            if !defined.contains(&target) {
                named.insert(format!("{}: make {target}", page.display()));
            }
        }
    }
    assert!(defined.contains("dev") && defined.contains("test"));
    assert!(
        named.is_empty(),
        "targets the Makefile lacks:\n{}",
        named.iter().cloned().collect::<Vec<_>>().join("\n")
    );
}

/// `(annotation, block)` for every fenced block right after a `<!-- checked: … -->` line.
fn checked_blocks(text: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(annotation) = line
            .trim()
            .strip_prefix("<!-- checked:")
            .and_then(|rest| rest.strip_suffix("-->"))
        else {
            continue;
        };
        let fence = lines.get(i + 1).map(|l| l.trim()).unwrap_or("");
        assert!(
            fence.starts_with("```"),
            "`{line}` is not followed by a code block"
        );
        let block: Vec<&str> = lines[i + 2..]
            .iter()
            .take_while(|l| !l.trim().starts_with("```"))
            .map(|l| l.trim())
            .collect();
        found.push((annotation.trim().to_string(), block.join("\n")));
    }
    found
}

/// The JSON values of a block: the block as one value, or one value per line.
fn json_values(block: &str) -> Vec<serde_json::Value> {
    if let Ok(value) = serde_json::from_str(block) {
        return vec![value];
    }
    block
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect()
}

/// What every JSON answer of the Worker carries besides its body (docs/api.md says so); an
/// example shows only the body.
fn example_headers() -> Vec<(String, String)> {
    [
        ("content-type", "application/json"),
        ("cache-control", "no-store"),
        ("x-content-type-options", "nosniff"),
    ]
    .iter()
    .map(|(name, value)| (name.to_string(), value.to_string()))
    .collect()
}

/// A `checked: webhook` block is a whole delivery: headers, a blank line, the body.
fn webhook_delivery(block: &str) -> (Vec<(String, String)>, String) {
    let (head, body) = block
        .split_once("\n\n")
        .expect("headers, a blank line, the body");
    let headers = head
        .lines()
        .skip(1) // the request line
        .filter_map(|line| line.split_once(": "))
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    (headers, body.trim().to_string())
}

#[test]
fn every_checked_example_in_the_docs_satisfies_openapi() {
    let mut examples = 0;
    for page in pages() {
        for (annotation, block) in checked_blocks(&read(&page)) {
            if annotation == "webhook" {
                let (headers, body) = webhook_delivery(&block);
                let broken = support::contract::webhook_violations(&headers, &body);
                assert!(broken.is_empty(), "{}: {broken:?}", page.display());
                examples += 1;
                continue;
            }
            let words: Vec<&str> = annotation.split_whitespace().collect();
            let [method, path, status, extra @ ..] = &words[..] else {
                panic!(
                    "{}: `checked: {annotation}` is not METHOD PATH STATUS [header=value…]",
                    page.display()
                );
            };
            let status: u16 = status.parse().expect("a status");
            let mut headers = example_headers();
            headers.extend(extra.iter().map(|pair| {
                let (name, value) = pair.split_once('=').expect("header=value");
                (name.to_string(), value.to_string())
            }));
            for value in json_values(&block) {
                examples += 1;
                assert!(support::contract::check(
                    method,
                    &format!("http://127.0.0.1:8787{path}"),
                    status,
                    &headers,
                    &value.to_string(),
                ));
            }
        }
    }
    assert!(
        examples >= 9,
        "only {examples} checked examples: were the markers dropped?"
    );
}

#[test]
#[should_panic(expected = "breaks openapi.yaml")]
fn a_checked_example_that_breaks_the_document_fails() {
    let page =
        "<!-- checked: POST /signup 200 -->\n```json\n{\"status\":\"sent\",\"messageId\":7}\n```\n";
    for (_, block) in checked_blocks(page) {
        for value in json_values(&block) {
            support::contract::check(
                "POST",
                "http://127.0.0.1:8787/signup",
                200,
                &example_headers(),
                &value.to_string(),
            );
        }
    }
}

/// The first sentence of a file's `//!` comment.
fn summary(source: &str) -> Option<String> {
    let text: Vec<&str> = source
        .lines()
        .take_while(|line| line.starts_with("//!"))
        .map(|line| line.trim_start_matches("//!").trim())
        .take_while(|line| !line.is_empty())
        .collect();
    let text = text.join(" ");
    if text.is_empty() {
        return None;
    }
    let end = text
        .match_indices(". ")
        .map(|(i, _)| i + 1)
        .next()
        .unwrap_or(text.len());
    Some(text[..end].replace('|', "\\|"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

/// The module map, generated: one row per source file of the Worker and its tools.
fn module_map() -> String {
    let mut rows = vec![
        "| file | what it owns (its `//!` line) |".to_string(),
        "|---|---|".to_string(),
    ];
    let mut missing = Vec::new();
    for dir in [
        "crates/domain/src",
        "crates/ses/src",
        "crates/gate/src",
        "crates/web/src",
        "src",
        "ses-local/src",
        "ses-setup/src",
    ] {
        let mut files = Vec::new();
        rust_files(&root().join(dir), &mut files);
        for file in files {
            let name = file
                .strip_prefix(root())
                .expect("inside the repository")
                .display()
                .to_string();
            match summary(&read(&file)) {
                Some(text) => rows.push(format!("| `{name}` | {text} |")),
                None => missing.push(name),
            }
        }
    }
    assert!(
        missing.is_empty(),
        "files without a `//!` line: {missing:?}"
    );
    rows.join("\n")
}

#[test]
fn the_module_map_is_the_one_the_sources_describe() {
    const BEGIN: &str = "<!-- module-map:begin (generated by tests/docs.rs) -->\n";
    const END: &str = "<!-- module-map:end -->";
    let path = root().join("docs/architecture.md");
    let text = read(&path);
    let start = text
        .find(BEGIN)
        .expect("docs/architecture.md has the module-map markers")
        + BEGIN.len();
    let end = text[start..].find(END).expect("the module-map end marker") + start;
    let generated = format!("{}\n", module_map());
    if std::env::var_os("SV_UPDATE_DOCS").is_some() {
        let updated = format!("{}{generated}{}", &text[..start], &text[end..]);
        std::fs::write(&path, updated).expect("write docs/architecture.md");
        return;
    }
    assert!(
        text[start..end] == generated,
        "docs/architecture.md's module map is out of date: run SV_UPDATE_DOCS=1 cargo test --test docs"
    );
}

/// Every file path a page names in backticks (`crates/gate/src/queue.rs`, `tests/docs.rs`).
fn named_files(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter(|span| {
            span.contains('/')
                && !span.contains(char::is_whitespace)
                && !span.contains("://")
                && [
                    ".rs", ".md", ".toml", ".yaml", ".mjs", ".sh", ".html", ".json",
                ]
                .iter()
                .any(|ext| span.ends_with(ext))
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn every_file_the_docs_name_exists() {
    let mut missing = Vec::new();
    let mut named = 0;
    for page in pages() {
        for file in named_files(&read(&page)) {
            named += 1;
            let file = file.trim_start_matches("./");
            // What a run makes (state, builds) is named before it exists.
            if [".dev-state/", "target/", "build/", "dist/"]
                .iter()
                .any(|d| file.starts_with(d))
            {
                continue;
            }
            if !root().join(file).exists() && !page.parent().expect("folder").join(file).exists() {
                missing.push(format!("{}: {file}", page.display()));
            }
        }
    }
    assert!(
        named > 30,
        "only {named} file names found: is the parser broken?"
    );
    assert!(
        missing.is_empty(),
        "files the docs name that do not exist:\n{}",
        missing.join("\n")
    );
}
