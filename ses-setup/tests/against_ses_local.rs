//! `ses-setup` against a real ses-local (built by `make build` in target/release): the template
//! is created, then updated; `check` reports what is missing and starts the From address's
//! verification; credentials come from the environment or from a profile file.

mod support;

use std::process::Command;
use support::{root, ses_local, SesLocal, KEY_ID, SECRET};

fn setup(ses: &SesLocal, args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    support::run(
        Command::new(env!("CARGO_BIN_EXE_ses-setup"))
            .current_dir(root())
            .args(args)
            .args(["--endpoint", &ses.url, "--region", "us-east-1"])
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
            .envs(env.iter().copied()),
    )
}

const ENV_KEYS: &[(&str, &str)] = &[
    ("AWS_ACCESS_KEY_ID", KEY_ID),
    ("AWS_SECRET_ACCESS_KEY", SECRET),
];

fn stored_template(ses: &SesLocal) -> String {
    let (_, text) = setup(ses, &["check"], ENV_KEYS);
    text
}

#[test]
fn the_template_is_created_then_updated_and_check_then_finds_nothing_missing() {
    let dev_seed = root().join("ses-local.toml");
    let ses = ses_local(&[
        "--config",
        dev_seed.to_str().expect("utf-8"),
        "--throttle-ms",
        "0",
    ]);

    let (code, text) = setup(&ses, &["check"], ENV_KEYS);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("missing template SignupVerify: not in SES"),
        "{text}"
    );

    let (code, text) = setup(&ses, &["template"], ENV_KEYS);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("created template SignupVerify"), "{text}");

    let local = ["--success-url", "http://127.0.0.1:8787/confirm"];
    let (code, text) = setup(&ses, &[&["template"][..], &local].concat(), ENV_KEYS);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("updated template SignupVerify"), "{text}");

    // The stored template is the file's, with the override: check compares them field by field.
    let (code, text) = setup(&ses, &[&["check"][..], &local].concat(), ENV_KEYS);
    assert_eq!(code, 0, "{text}");
    for line in [
        "ok      template SignupVerify: in SES and matches templates/",
        "ok      From noreply@signup-verify.test: verified",
        "ok      production access: granted",
        "ready: signups can be sent",
    ] {
        assert!(text.contains(line), "{line} in {text}");
    }
    let text = stored_template(&ses);
    assert!(
        text.contains("its success URL differ"),
        "without the override: {text}"
    );
}

#[test]
fn check_on_a_new_sandbox_account_starts_the_from_verification_and_lists_what_is_missing() {
    let ses = ses_local(&["--max-24-hour-send", "200", "--throttle-ms", "0"]);
    let (code, text) = setup(&ses, &["check"], ENV_KEYS);
    assert_eq!(code, 1, "{text}");
    for line in [
        "missing template SignupVerify: not in SES",
        "missing From noreply@signup-verify.test: not verified; SES has just mailed it",
        "missing production access: sandbox (200 a day)",
        "not ready",
    ] {
        assert!(text.contains(line), "{line} in {text}");
    }
    let outbox: serde_json::Value = ureq::get(&format!("{}_outbox", ses.url))
        .set("Accept", "application/json")
        .call()
        .expect("outbox")
        .into_json()
        .expect("json");
    assert!(
        outbox.to_string().contains("noreply@signup-verify.test"),
        "VerifyEmailIdentity mailed the From address: {outbox}"
    );
    let (_, again) = setup(&ses, &["check"], ENV_KEYS);
    assert!(again.contains("verification pending"), "{again}");
}

#[test]
fn credentials_come_from_a_named_profile_and_a_wrong_secret_is_named_by_ses_code() {
    let ses = ses_local(&["--throttle-ms", "0"]);
    let dir = std::env::temp_dir().join(format!("ses-setup-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("credentials");
    std::fs::write(
        &file,
        format!("[default]\naws_access_key_id = nope\naws_secret_access_key = nope\n[site]\naws_access_key_id = {KEY_ID}\naws_secret_access_key = {SECRET}\n"),
    )
    .expect("write credentials");
    let file = file.to_str().expect("utf-8");
    let profile = [
        ("AWS_SHARED_CREDENTIALS_FILE", file),
        ("AWS_PROFILE", "site"),
    ];
    let (code, text) = setup(&ses, &["check"], &profile);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("not verified; SES has just mailed it"),
        "{text}"
    );

    let wrong = [
        ("AWS_ACCESS_KEY_ID", KEY_ID),
        ("AWS_SECRET_ACCESS_KEY", "wrong"),
    ];
    let (code, text) = setup(&ses, &["template"], &wrong);
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("SES answered SignatureDoesNotMatch"),
        "{text}"
    );
    assert!(
        !text.contains("wrong"),
        "the secret is never printed: {text}"
    );

    let (code, text) = setup(&ses, &["check"], &[]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("no credentials"), "{text}");
}
