//! ses-local over real HTTP, with requests signed by aws-sigv4 directly (an independent path
//! from the Worker's signing code).

mod support;

use std::process::Command;
use std::time::{Duration, SystemTime};

use support::{get_json, now, post_body as post_reply, start, SesLocal, Signing};

fn post(ses: &SesLocal, body: &str, signing: Option<&Signing>) -> (u16, String) {
    let reply = post_reply(ses, body, signing);
    (reply.status, reply.body)
}

fn send_body(email: &str, template: &str) -> String {
    support::form(&[
        ("Action", "SendCustomVerificationEmail"),
        ("Version", "2010-12-01"),
        ("EmailAddress", email),
        ("TemplateName", template),
    ])
}

fn code_of(body: &str) -> &str {
    body.split("<Code>")
        .nth(1)
        .and_then(|s| s.split("</Code>").next())
        .unwrap_or("")
}

#[test]
fn a_signed_send_is_accepted_and_the_outbox_shows_the_address_and_message_id() {
    let ses = start(&[]);
    let (status, body) = post(
        &ses,
        &send_body("user+tag@example.com", "SignupVerify"),
        Some(&now()),
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(
        "<SendCustomVerificationEmailResponse xmlns=\"http://ses.amazonaws.com/doc/2010-12-01/\">"
    ));
    let message_id = body
        .split("<MessageId>")
        .nth(1)
        .and_then(|s| s.split("</MessageId>").next())
        .expect("MessageId");
    let outbox = get_json(&ses, "/_outbox");
    assert_eq!(
        outbox["messages"][0]["emailAddress"],
        "user+tag@example.com"
    );
    assert_eq!(outbox["messages"][0]["messageId"], message_id);
    assert_eq!(outbox["messages"][0]["templateName"], "SignupVerify");
    let requests = get_json(&ses, "/_requests");
    assert_eq!(requests["requests"][0]["signature"], "valid");
    assert_eq!(requests["requests"][0]["status"], 200);
}

#[test]
fn sends_closer_than_the_throttle_window_get_throttling_as_a_400() {
    let ses = start(&["--throttle-ms", "60000"]);
    assert_eq!(
        post(
            &ses,
            &send_body("a@example.com", "SignupVerify"),
            Some(&now())
        )
        .0,
        200
    );
    let (status, body) = post(
        &ses,
        &send_body("b@example.com", "SignupVerify"),
        Some(&now()),
    );
    assert_eq!((status, code_of(&body)), (400, "Throttling"));
    assert!(body.contains("Maximum sending rate exceeded."));
    assert_eq!(Some(support::outbox(&ses).len()), Some(1));
}

#[test]
fn a_short_throttle_window_accepts_sends_after_it() {
    let ses = start(&["--throttle-ms", "100"]);
    assert_eq!(
        post(
            &ses,
            &send_body("a@example.com", "SignupVerify"),
            Some(&now())
        )
        .0,
        200
    );
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(
        post(
            &ses,
            &send_body("b@example.com", "SignupVerify"),
            Some(&now())
        )
        .0,
        200
    );
}

#[test]
fn each_ses_error_is_answered_in_the_ses_envelope() {
    let ses = start(&["--throttle-ms", "0"]);
    let with_set = format!(
        "{}&ConfigurationSetName=missing-set",
        send_body("a@example.com", "SignupVerify")
    );
    let cases = [
        (
            send_body("a@example.com", "NoSuchTemplate"),
            "CustomVerificationEmailTemplateDoesNotExist",
        ),
        (with_set, "ConfigurationSetDoesNotExist"),
        (send_body("", "SignupVerify"), "InvalidParameterValue"),
        (
            send_body("not-an-email", "SignupVerify"),
            "InvalidParameterValue",
        ),
        (
            "Action=DoSomethingElse&Version=2010-12-01".to_string(),
            "InvalidAction",
        ),
    ];
    for (body, code) in cases {
        let (status, reply) = post(&ses, &body, Some(&now()));
        assert_eq!((status, code_of(&reply)), (400, code), "{body}");
        assert!(
            reply.starts_with("<ErrorResponse xmlns=\"http://ses.amazonaws.com/doc/2010-12-01/\">")
        );
        assert!(reply.contains("<Type>Sender</Type>") && reply.contains("<RequestId>"));
    }
    assert_eq!(Some(support::outbox(&ses).len()), Some(0));
}

#[test]
fn bad_signatures_are_403_with_the_ses_code_and_never_reach_the_outbox() {
    let ses = start(&["--throttle-ms", "0"]);
    let body = send_body("a@example.com", "SignupVerify");
    let eleven_minutes_ago = SystemTime::now() - Duration::from_secs(660);
    let cases = [
        (None, "MissingAuthenticationToken"),
        (
            Some(Signing {
                key_id: "AKIDUNKNOWN",
                ..now()
            }),
            "InvalidClientTokenId",
        ),
        (
            Some(Signing {
                secret: "wrong-secret",
                ..now()
            }),
            "SignatureDoesNotMatch",
        ),
        (
            Some(Signing {
                region: "eu-west-1",
                ..now()
            }),
            "SignatureDoesNotMatch",
        ),
        (
            Some(Signing {
                service: "email",
                ..now()
            }),
            "SignatureDoesNotMatch",
        ),
        (
            Some(Signing {
                time: eleven_minutes_ago,
                ..now()
            }),
            "SignatureDoesNotMatch",
        ),
    ];
    for (signing, code) in &cases {
        let (status, reply) = post(&ses, &body, signing.as_ref());
        assert_eq!((status, code_of(&reply)), (403, *code), "{reply}");
    }
    let (_, expired) = post(
        &ses,
        &body,
        Some(&Signing {
            time: eleven_minutes_ago,
            ..now()
        }),
    );
    assert!(
        expired.contains("<Message>Signature expired: "),
        "{expired}"
    );
    assert_eq!(Some(support::outbox(&ses).len()), Some(0));
    let verdicts: Vec<String> = get_json(&ses, "/_requests")["requests"]
        .as_array()
        .expect("requests")
        .iter()
        .map(|r| r["signature"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(verdicts[..cases.len()], cases.map(|(_, c)| c.to_string()));
}

#[test]
fn a_body_changed_after_signing_fails_the_recomputed_hash() {
    let ses = start(&["--throttle-ms", "0"]);
    // Sign one body, send another under the same headers.
    let signed_for = send_body("a@example.com", "SignupVerify");
    let headers = support::sign_form(&ses, &signed_for, &now());
    let tampered = send_body("victim@example.com", "SignupVerify");
    let reply = support::post_with_headers(&ses, &tampered, &headers);
    let (status, reply) = (reply.status, reply.body);
    assert_eq!((status, code_of(&reply)), (403, "SignatureDoesNotMatch"));
}

#[test]
fn help_documents_every_flag() {
    let output = Command::new(env!("CARGO_BIN_EXE_ses-local"))
        .arg("--help")
        .output()
        .expect("run --help");
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "--bind",
        "--allowed-hosts",
        "--port",
        "--access-key-id",
        "--secret-access-key",
        "--region",
        "--config",
        "--throttle-ms",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
}

#[test]
fn a_corrupt_config_file_is_a_clear_startup_error() {
    let dir = std::env::temp_dir().join(format!("ses-local-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let path = dir.join("bad.toml");
    std::fs::write(&path, "templates = 3").expect("write");
    let output = Command::new(env!("CARGO_BIN_EXE_ses-local"))
        .args(["--port", "0", "--config"])
        .arg(&path)
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("bad.toml"));
}

#[test]
fn a_template_whose_sender_lost_its_verification_cannot_send() {
    let ses = start(&["--throttle-ms", "0"]);
    assert_eq!(
        support::call(&ses, "DeleteIdentity", &[("Identity", support::FROM)]).status,
        200
    );
    let (status, reply) = post(
        &ses,
        &send_body("a@example.com", "SignupVerify"),
        Some(&now()),
    );
    assert_eq!(
        (status, code_of(&reply)),
        (400, "FromEmailAddressNotVerified")
    );
    assert!(reply.contains("failed the check in region US-EAST-1: noreply@signup-verify.test"));
}
