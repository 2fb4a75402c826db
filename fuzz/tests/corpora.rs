//! Every kept fuzz input, replayed on stable as an ordinary test: the corpora (`corpus/<target>`)
//! and the inputs that once failed (`regressions/<target>`), so a fixed crash or property failure
//! never comes back unnoticed.

use std::path::{Path, PathBuf};

fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(kind)
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Replays every input of `kind`; returns how many, after failing with the list of every input
/// that failed.
fn replay(kind: &str) -> usize {
    let mut replayed = 0;
    let mut failed = Vec::new();
    for target in signup_verify_fuzz::TARGETS {
        for file in inputs(kind, target) {
            let data = std::fs::read(&file).expect("a readable input");
            let outcome = std::panic::catch_unwind(|| signup_verify_fuzz::check(target, &data));
            if !matches!(outcome, Ok(Some(()))) {
                failed.push(format!("{target}: {}", file.display()));
            }
            replayed += 1;
        }
    }
    assert!(
        failed.is_empty(),
        "these inputs fail:\n{}",
        failed.join("\n")
    );
    replayed
}

#[test]
fn every_corpus_input_of_every_target_passes_its_properties() {
    let replayed = replay("corpus");
    for target in signup_verify_fuzz::TARGETS {
        assert!(
            !inputs("corpus", target).is_empty(),
            "{target} has no corpus"
        );
    }
    eprintln!("replayed {replayed} corpus inputs");
}

#[test]
fn every_input_that_once_failed_passes_now() {
    let replayed = replay("regressions");
    eprintln!("replayed {replayed} regression inputs");
}
