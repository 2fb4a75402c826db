//! A real AWS SDK, unchanged, pointed at ses-local with `endpoint_url`: boto3 (installed by
//! `make test`'s set-up into target/py). aws-sdk-ses would add minutes of compile time to CI for
//! the same evidence.

mod support;

use std::path::PathBuf;
use std::process::Command;

use support::{outbox, start, KEY_ID, SECRET};

fn python() -> PathBuf {
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/py/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `make test` (scripts/setup.sh installs boto3)",
        python.display()
    );
    python
}

#[test]
fn boto3_creates_a_template_sends_and_reads_verification_attributes_unchanged() {
    // No rate limit: the script calls GetCustomVerificationEmailTemplate twice in a row.
    let ses = start(&["--throttle-ms", "0"]);
    let output = Command::new(python())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/boto3_client.py"
        ))
        .args([ses.url.as_str(), KEY_ID, SECRET])
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .expect("run python");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "boto3 failed:\n{stderr}");
    let result: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("the script prints JSON");
    assert_eq!(result["subject"], "Confirm your address");
    assert_eq!(
        result["attributes"],
        serde_json::json!({"boto+3@example.com": {"VerificationStatus": "Pending"}})
    );
    assert_eq!(result["listed"], serde_json::json!(["FromBoto3"]));
    assert!(
        result["nextToken"].is_string(),
        "a second page exists: {result}"
    );
    assert_eq!(
        result["errorCode"],
        "CustomVerificationEmailTemplateDoesNotExist"
    );
    let mail = &outbox(&ses)[0];
    assert_eq!(mail["emailAddress"], "boto+3@example.com");
    assert_eq!(mail["messageId"], result["messageId"]);
}
