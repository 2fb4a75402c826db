//! The release bundle (`make dist`, scripts/dist.sh): unpacked in an empty folder, it deploys
//! (`wrangler deploy --dry-run`) with nothing but wrangler and Node on PATH, no Rust, and uploads
//! the very Worker in build/; its wrangler.toml is the repository's without `[build]`.
//!
//! Packs the build/ that `make test` builds before `cargo test`.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn require(path: &Path, what: &str) {
    assert!(
        path.exists(),
        "{} is missing ({what}). Run `make test`, which builds it first.",
        path.display()
    );
}

/// A fresh, empty folder outside the repository (so nothing there, no node_modules/, no
/// Cargo.toml, can help the bundle), removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the temp folder");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Whether `sh -c 'command -v NAME'` finds `name` on `path` (and nothing else in the environment).
fn on_path(name: &str, path: &Path) -> bool {
    Command::new("/bin/sh")
        .args(["-c", &format!("command -v {name}")])
        .env_clear()
        .env("PATH", path)
        .output()
        .expect("run sh")
        .status
        .success()
}

/// The files of `dir` whose name ends with `suffix`.
fn files_ending(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .expect("read the dry run's output")
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect()
}

#[test]
fn the_release_bundle_deploys_the_built_worker_with_only_node_and_wrangler_on_path() {
    let built_wasm = root().join("build/index_bg.wasm");
    require(&built_wasm, "the Worker bundle");
    let wrangler = root().join("node_modules/.bin/wrangler");
    require(&wrangler, "wrangler from npm");

    // The tarball, from the build/ that is there.
    let out = root()
        .join("target/dist-test")
        .join(std::process::id().to_string());
    let _ = std::fs::remove_dir_all(&out);
    let dist = Command::new(root().join("scripts/dist.sh"))
        .env("DIST_DIR", &out)
        .output()
        .expect("run scripts/dist.sh");
    let said =
        String::from_utf8_lossy(&dist.stdout).into_owned() + &String::from_utf8_lossy(&dist.stderr);
    assert!(dist.status.success(), "{said}");
    let name = format!("signup-verify-{}", env!("CARGO_PKG_VERSION"));
    let tarball = out.join(format!("{name}.tar.gz"));
    assert!(tarball.exists(), "named after Cargo.toml's version: {said}");

    // Unpacked in an empty folder.
    let scratch = Scratch::new("signup-verify-dist");
    let untar = Command::new("tar")
        .arg("-xzf")
        .arg(&tarball)
        .arg("-C")
        .arg(&scratch.0)
        .status()
        .expect("run tar");
    assert!(untar.success());
    let bundle = scratch.0.join(&name);
    for file in [
        "wrangler.toml",
        "build/index.js",
        "build/index_bg.wasm",
        "templates/template.toml",
        "templates/verify-email.html",
        "README.md",
        "LICENSE-MIT",
        "LICENSE-APACHE",
    ] {
        assert!(bundle.join(file).is_file(), "{file} in the bundle");
    }
    assert_eq!(
        std::fs::read_to_string(bundle.join("README.md")).expect("README.md"),
        std::fs::read_to_string(root().join("docs/deploy-from-release.md")).expect("docs"),
        "the bundle's README is docs/deploy-from-release.md"
    );

    // Its wrangler.toml is the repository's, table for table, minus [build].
    let parse = |path: &Path| -> toml::Table {
        std::fs::read_to_string(path)
            .expect("read wrangler.toml")
            .parse()
            .expect("parse wrangler.toml")
    };
    let mut repository = parse(&root().join("wrangler.toml"));
    assert!(
        repository.remove("build").is_some(),
        "the repository's has [build]"
    );
    let bundled = parse(&bundle.join("wrangler.toml"));
    assert!(!bundled.contains_key("build"), "no [build] in the bundle");
    assert_eq!(bundled, repository);

    // A PATH with wrangler and node only: no cargo, no rustc.
    let bin = scratch.0.join("bin");
    std::fs::create_dir(&bin).expect("bin");
    symlink(&wrangler, bin.join("wrangler")).expect("link wrangler");
    symlink(root().join("node_modules/.bin/node"), bin.join("node")).expect("link node");
    for tool in ["cargo", "rustc", "rustup", "worker-build", "wasm-bindgen"] {
        assert!(!on_path(tool, &bin), "{tool} is on the deploy's PATH");
    }
    assert!(on_path("wrangler", &bin), "the check above can find things");

    let dry_run = scratch.0.join("dry-run");
    let home = scratch.0.join("home");
    std::fs::create_dir(&home).expect("home");
    let deploy = Command::new("wrangler")
        .args(["deploy", "--dry-run", "--outdir"])
        .arg(&dry_run)
        .current_dir(&bundle)
        .env_clear()
        .env("PATH", &bin)
        .env("HOME", &home)
        .env("CI", "true")
        .env("WRANGLER_SEND_METRICS", "false")
        .output()
        .expect("run wrangler deploy --dry-run");
    let log = String::from_utf8_lossy(&deploy.stdout).into_owned()
        + &String::from_utf8_lossy(&deploy.stderr);
    assert!(deploy.status.success(), "{log}");
    for binding in [
        "env.SES_GATE (SesGate)",
        "env.IP_RATE_LIMITER",
        "env.AWS_REGION",
    ] {
        assert!(log.contains(binding), "{binding} in\n{log}");
    }
    assert!(
        !log.contains("SES_SENDER"),
        "one object: the sender's binding is gone (migration v3 deletes its class)\n{log}"
    );

    // The upload's wasm is build/'s, byte for byte.
    let uploaded = files_ending(&dry_run, ".wasm");
    assert_eq!(uploaded.len(), 1, "one wasm module: {uploaded:?}");
    let uploaded = std::fs::read(&uploaded[0]).expect("read the uploaded wasm");
    let built = std::fs::read(&built_wasm).expect("read build/index_bg.wasm");
    assert!(
        uploaded == built,
        "the dry run uploads {} bytes of wasm, build/ has {}",
        uploaded.len(),
        built.len()
    );
    let _ = std::fs::remove_dir_all(&out);
}
