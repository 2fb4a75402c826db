//! The house keeps its shape: the pure crates never reach `worker` (by `cargo tree`) and depend
//! only on the layers below them, and no crate's files import each other in a circle (files as
//! nodes, `use crate::…` and `use super::…` as edges, test code left out).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Each pure crate, lowest layer first, with the workspace crates it may depend on.
const LAYERS: [(&str, &[&str]); 4] = [
    ("signup-verify-domain", &[]),
    ("signup-verify-ses", &["signup-verify-domain"]),
    (
        "signup-verify-gate",
        &["signup-verify-domain", "signup-verify-ses"],
    ),
    (
        "signup-verify-web",
        &[
            "signup-verify-domain",
            "signup-verify-ses",
            "signup-verify-gate",
        ],
    ),
];

/// Every package `package` reaches through normal dependencies (`cargo tree`).
fn reaches(package: &str) -> BTreeSet<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(root())
        .args([
            "tree",
            "--offline",
            "-e",
            "normal",
            "--prefix",
            "none",
            "-p",
            package,
        ])
        .output()
        .expect("cargo tree runs");
    assert!(
        output.status.success(),
        "cargo tree -p {package}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

#[test]
fn no_pure_crate_reaches_worker_and_each_depends_only_on_the_layers_below() {
    for (package, allowed) in LAYERS {
        let reached = reaches(package);
        assert!(
            reached.contains(package),
            "cargo tree lists {package} itself"
        );
        for forbidden in ["worker", "worker-sys", "wasm-bindgen", "js-sys", "web-sys"] {
            assert!(
                !reached.contains(forbidden),
                "{package} reaches {forbidden}: a pure crate must not"
            );
        }
        let ours: BTreeSet<&str> = reached
            .iter()
            .map(String::as_str)
            .filter(|name| name.starts_with("signup-verify") && *name != package)
            .collect();
        let allowed: BTreeSet<&str> = allowed.iter().copied().collect();
        assert!(
            ours.is_subset(&allowed),
            "{package} depends on {ours:?}; only {allowed:?} are below it"
        );
    }
    assert!(
        reaches("signup-verify").contains("worker"),
        "the check can see worker"
    );
}

/// A crate's source files by module path (`gate::intake` → `src/gate/intake.rs`).
fn modules(src: &Path) -> BTreeMap<Vec<String>, PathBuf> {
    let mut found = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("source folder") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                // Test-only module trees (`#[cfg(test)] mod tests;`) are test code.
                if path.file_name().is_some_and(|n| n != "tests") {
                    stack.push(path);
                }
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(src).expect("inside src");
            let mut segments: Vec<String> = relative
                .with_extension("")
                .iter()
                .map(|s| s.to_string_lossy().into_owned())
                .collect();
            if matches!(
                segments.last().map(String::as_str),
                Some("mod" | "lib" | "main")
            ) {
                segments.pop();
            }
            found.insert(segments, path);
        }
    }
    found
}

/// The code of a file before its `#[cfg(test)]` module, without comments (a doc link is not an
/// import).
fn non_test_code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("source");
    let end = text.find("\n#[cfg(test)]").unwrap_or(text.len());
    text[..end]
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The paths a file names: after `crate::` (absolute) and `super::` (relative to its parent).
fn named_paths(code: &str, module: &[String]) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    for (prefix, base) in [("crate::", Vec::new()), ("super::", parent(module))] {
        let mut rest = code;
        while let Some(at) = rest.find(prefix) {
            let before = rest[..at].chars().last();
            rest = &rest[at + prefix.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            // `crate::a::b::{c, d::e}` → a, b and each branch; `super::*` → the parent.
            let head: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            let mut path = base.clone();
            path.extend(
                head.split("::")
                    .filter(|s| !s.is_empty())
                    .map(str::to_string),
            );
            paths.push(path.clone());
            if rest[head.len()..].starts_with('{') {
                let group: String = rest[head.len() + 1..]
                    .chars()
                    .take_while(|c| *c != '}')
                    .collect();
                for branch in group.split(',') {
                    let mut sub = path.clone();
                    sub.extend(branch.trim().split("::").map(str::to_string));
                    paths.push(sub);
                }
            }
        }
    }
    paths
}

fn parent(module: &[String]) -> Vec<String> {
    module[..module.len().saturating_sub(1)].to_vec()
}

/// The file a path lands in: its longest prefix that is a module of the crate.
fn file_of<'a>(
    path: &[String],
    modules: &'a BTreeMap<Vec<String>, PathBuf>,
) -> Option<&'a Vec<String>> {
    (0..=path.len())
        .rev()
        .find_map(|n| modules.get_key_value(&path[..n]).map(|(k, _)| k))
}

/// A circle of files, if the crate's imports make one.
fn circle(src: &Path) -> Option<Vec<String>> {
    let modules = modules(src);
    let mut edges: BTreeMap<&Vec<String>, BTreeSet<&Vec<String>>> = BTreeMap::new();
    for (module, path) in &modules {
        let code = non_test_code(path);
        for named in named_paths(&code, module) {
            if let Some(target) = file_of(&named, &modules) {
                if target != module {
                    edges.entry(module).or_default().insert(target);
                }
            }
        }
    }
    // Depth-first search with colours: grey on the stack, black done.
    fn visit<'a>(
        node: &'a Vec<String>,
        edges: &BTreeMap<&'a Vec<String>, BTreeSet<&'a Vec<String>>>,
        grey: &mut Vec<&'a Vec<String>>,
        black: &mut BTreeSet<&'a Vec<String>>,
    ) -> Option<Vec<String>> {
        if let Some(at) = grey.iter().position(|n| *n == node) {
            return Some(grey[at..].iter().map(|m| m.join("::")).collect());
        }
        if black.contains(node) {
            return None;
        }
        grey.push(node);
        for next in edges.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, edges, grey, black) {
                return Some(found);
            }
        }
        grey.pop();
        black.insert(node);
        None
    }
    let mut black = BTreeSet::new();
    modules
        .keys()
        .find_map(|node| visit(node, &edges, &mut Vec::new(), &mut black))
}

#[test]
fn no_crate_imports_its_own_files_in_a_circle() {
    let crates = [
        "src",
        "crates/domain/src",
        "crates/ses/src",
        "crates/gate/src",
        "crates/web/src",
        "ses-local/src",
        "ses-setup/src",
    ];
    for src in crates {
        assert_eq!(
            circle(&root().join(src)),
            None,
            "{src} has an import circle"
        );
    }
}

#[test]
fn the_circle_check_finds_a_circle_and_reads_groups_and_super() {
    let dir = root().join("target/layers-fixture/src");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("a")).expect("fixture folder");
    std::fs::write(dir.join("lib.rs"), "pub mod a;\npub mod b;\n").expect("lib.rs");
    std::fs::write(dir.join("a/mod.rs"), "mod c;\nuse crate::{b::B};\n").expect("a/mod.rs");
    std::fs::write(dir.join("a/c.rs"), "use super::*;\n").expect("a/c.rs");
    std::fs::write(
        dir.join("b.rs"),
        "pub struct B;\n#[cfg(test)]\nuse crate::a::c;\n",
    )
    .expect("b.rs");
    assert_eq!(
        circle(&dir),
        None,
        "test code and a child using its parent are no circle"
    );
    std::fs::write(dir.join("b.rs"), "pub struct B;\nuse crate::a::c::X;\n").expect("b.rs");
    let found = circle(&dir).expect("a → b → a::c → a");
    assert_eq!(found.len(), 3, "{found:?}");
}
