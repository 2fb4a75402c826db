//! `make deploy`'s SES check, without AWS: ses-local stands in for SES (`SES_CHECK_ENDPOINT`) and
//! a recording script for wrangler (`DEPLOY_WRANGLER`), so the tests see whether the deploy ran.
//! Also `ses-setup --wrangler-toml`: the region and template name are the Worker's.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use support::{root, ses_local, SesLocal, KEY_ID, SECRET};

/// A fresh directory under target/ for one test's files.
fn scratch(name: &str) -> PathBuf {
    let dir = root()
        .join("target/ses-setup-tests")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// A stand-in for wrangler that writes its arguments to `ran` beside it.
fn recording_wrangler(dir: &Path) -> PathBuf {
    let script = dir.join("wrangler");
    std::fs::write(
        &script,
        "#!/bin/sh\nprintf '%s\\n' \"$@\" > \"$(dirname \"$0\")/ran\"\n",
    )
    .expect("write the stand-in");
    let chmod = Command::new("chmod")
        .arg("+x")
        .arg(&script)
        .status()
        .expect("chmod");
    assert!(chmod.success());
    script
}

/// Runs `make deploy` against `ses` with ses-local's credentials and `env`; (exit code, output).
fn make_deploy(ses: &SesLocal, wrangler: &Path, env: &[(&str, &str)]) -> (i32, String) {
    let mut make = Command::new("make");
    // The variables cargo sets for this test (CARGO_PKG_NAME, ...): ring's build script reruns
    // when they change, and the `cargo run` in make deploy would rebuild ses-setup (a minute).
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("CARGO_") && name != "CARGO_HOME" && name != "CARGO_TARGET_DIR" {
            make.env_remove(&*name);
        }
    }
    support::run(
        make.arg("--no-print-directory")
            .arg("deploy")
            .current_dir(root())
            .env("SES_CHECK_ENDPOINT", &ses.url)
            .env("DEPLOY_WRANGLER", wrangler)
            .env("AWS_ACCESS_KEY_ID", KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", SECRET)
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
            // Were the region taken from here and not from wrangler.toml, ses-local (us-east-1)
            // would refuse the signature.
            .env("AWS_DEFAULT_REGION", "eu-west-1")
            .env_remove("AWS_REGION")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE")
            .env_remove("DEPLOY_ENV")
            .envs(env.iter().copied()),
    )
}

/// `ses-setup` itself with ses-local's credentials and `env`; (exit code, output).
fn ses_setup(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    support::run(
        Command::new(env!("CARGO_BIN_EXE_ses-setup"))
            .current_dir(root())
            .args(args)
            .env("AWS_ACCESS_KEY_ID", KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", SECRET)
            .env_remove("AWS_REGION")
            .env_remove("AWS_DEFAULT_REGION")
            .env_remove("AWS_SESSION_TOKEN")
            .envs(env.iter().copied()),
    )
}

#[test]
fn make_deploy_stops_before_wrangler_while_the_template_is_missing_and_deploys_once_it_is_there() {
    let dir = scratch("deploy-template");
    let wrangler = recording_wrangler(&dir);
    // The From address verified and production access granted; no template yet.
    let seed = root().join("ses-local.toml");
    let ses = ses_local(&[
        "--config",
        seed.to_str().expect("utf-8"),
        "--region",
        "us-east-1",
        "--throttle-ms",
        "0",
    ]);

    let (code, text) = make_deploy(&ses, &wrangler, &[]);
    assert_ne!(code, 0, "{text}");
    for line in [
        "missing template SignupVerify: not in SES",
        "not ready in us-east-1",
        "deploy stopped: SES is not ready for this Worker",
        "Nothing was deployed.",
    ] {
        assert!(text.contains(line), "{line:?} in {text}");
    }
    assert!(!text.contains("==> wrangler"), "{text}");
    assert!(
        !dir.join("ran").exists(),
        "wrangler ran after a failed check"
    );

    let (code, text) = ses_setup(
        &[
            "template",
            "--wrangler-toml",
            "wrangler.toml",
            "--endpoint",
            &ses.url,
        ],
        &[],
    );
    assert_eq!(code, 0, "{text}");

    let (code, text) = make_deploy(&ses, &wrangler, &[]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("ready: signups can be sent"), "{text}");
    let ran = std::fs::read_to_string(dir.join("ran")).expect("wrangler ran after the check");
    assert_eq!(ran, "deploy\n");
}

#[test]
fn make_deploy_refuses_an_aws_region_other_than_the_workers_and_deploys_nothing() {
    let dir = scratch("deploy-region");
    let wrangler = recording_wrangler(&dir);
    let ses = ses_local(&["--region", "eu-west-1", "--throttle-ms", "0"]);

    let (code, text) = make_deploy(&ses, &wrangler, &[("AWS_REGION", "eu-west-1")]);
    assert_ne!(code, 0, "{text}");
    for line in [
        "AWS_REGION is eu-west-1 here, but the Worker sends through us-east-1",
        "deploy stopped: the SES check could not run",
    ] {
        assert!(text.contains(line), "{line:?} in {text}");
    }
    assert!(
        !dir.join("ran").exists(),
        "wrangler ran after a failed check"
    );
}

#[test]
fn check_takes_the_region_and_template_name_from_wrangler_toml_and_refuses_a_template_file_naming_another(
) {
    let dir = scratch("wrangler-toml");
    let ses = ses_local(&["--region", "eu-west-1", "--throttle-ms", "0"]);
    let config = dir.join("wrangler.toml");
    let config_arg = config.to_str().expect("utf-8");
    let write = |template: &str| {
        std::fs::write(
            &config,
            format!(
                "name = \"w\"\n[vars]\nAWS_REGION = \"eu-west-1\"\nSES_TEMPLATE_NAME = \"{template}\"\n"
            ),
        )
        .expect("write wrangler.toml")
    };
    let check = [
        "check",
        "--wrangler-toml",
        config_arg,
        "--endpoint",
        &ses.url,
    ];

    write("SomethingElse");
    let (code, text) = ses_setup(&check, &[]);
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("names the template SignupVerify, but the Worker sends SomethingElse"),
        "{text}"
    );

    // Signed for eu-west-1 (ses-local refuses any other scope): the file's region.
    write("SignupVerify");
    let (code, text) = ses_setup(&check, &[]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("SES eu-west-1 at"), "{text}");
    assert!(text.contains("missing template SignupVerify"), "{text}");
    assert!(text.contains("not ready in eu-west-1"), "{text}");

    // The same region in the environment is fine; another one is refused before any call.
    let (code, text) = ses_setup(&check, &[("AWS_REGION", "eu-west-1")]);
    assert_eq!(code, 1, "{text}");
    let (code, text) = ses_setup(&check, &[("AWS_REGION", "us-east-1")]);
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("AWS_REGION is us-east-1 here, but the Worker sends through eu-west-1"),
        "{text}"
    );
}
