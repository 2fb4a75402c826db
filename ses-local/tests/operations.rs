//! ses-local as a tool: its health check, its flags from environment variables, its call log,
//! `GetSendQuota`, and several regions served at once.

mod support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use support::{
    call, form, get_json, now, open_without_following, outbox, post_body, requests, seed_file,
    start, start_logged, Signing,
};

#[test]
fn the_health_check_answers_once_it_listens() {
    let ses = start(&[]);
    assert_eq!(get_json(&ses, "/_health"), serde_json::json!({"ok": true}));
}

#[test]
fn flags_can_come_from_environment_variables_and_a_flag_wins_over_its_variable() {
    let env = [
        ("SES_LOCAL_MAX_24_HOUR_SEND", "123"),
        ("SES_LOCAL_THROTTLE_MS", "0"),
    ];
    let ses = start_logged(&["--config", &seed_file()], &[], &env, Stdio::null());
    let quota = call(&ses, "GetSendQuota", &[]);
    assert_eq!(quota.status, 200, "{}", quota.body);
    assert!(
        quota.body.contains("<Max24HourSend>123.0</Max24HourSend>"),
        "{}",
        quota.body
    );
    // SES_LOCAL_THROTTLE_MS=0: no Throttling for a second call at once.
    assert_eq!(call(&ses, "GetSendQuota", &[]).status, 200);

    let ses = start_logged(
        &["--config", &seed_file()],
        &["--max-24-hour-send", "7"],
        &env,
        Stdio::null(),
    );
    assert!(call(&ses, "GetSendQuota", &[])
        .body
        .contains("<Max24HourSend>7.0</Max24HourSend>"));
}

#[test]
fn the_send_quota_counts_the_mails_of_the_last_day() {
    let ses = start(&["--throttle-ms", "0"]);
    for n in 0..3 {
        let email = format!("quota-{n}@example.com");
        let sent = call(
            &ses,
            "SendCustomVerificationEmail",
            &[("EmailAddress", &email), ("TemplateName", "SignupVerify")],
        );
        assert_eq!(sent.status, 200, "{}", sent.body);
    }
    let quota = call(&ses, "GetSendQuota", &[]);
    assert!(
        quota
            .body
            .contains("<SentLast24Hours>3.0</SentLast24Hours>"),
        "{}",
        quota.body
    );
    assert!(
        quota.body.contains("<MaxSendRate>1000.0</MaxSendRate>"),
        "{}",
        quota.body
    );
    assert!(
        quota
            .body
            .contains("<Max24HourSend>50000.0</Max24HourSend>"),
        "{}",
        quota.body
    );
}

#[test]
fn every_call_gets_one_log_line_with_its_verdict_and_a_send_its_link_but_not_its_address() {
    let mut ses = start_logged(
        &["--config", &seed_file()],
        &["--throttle-ms", "60000"],
        &[],
        Stdio::piped(),
    );
    let mut log = BufReader::new(ses.child.stderr.take().expect("stderr"));
    let send = [
        ("EmailAddress", "logged@example.com"),
        ("TemplateName", "SignupVerify"),
    ];
    assert_eq!(call(&ses, "SendCustomVerificationEmail", &send).status, 200);
    assert_eq!(call(&ses, "SendCustomVerificationEmail", &send).status, 400);
    let mut lines = Vec::new();
    for _ in 0..2 {
        let mut line = String::new();
        log.read_line(&mut line).expect("a log line");
        lines.push(line);
    }
    assert!(
        lines[0].starts_with(
            "ses-local: SendCustomVerificationEmail 200 OK signature=valid link=http://127.0.0.1:"
        ),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains("/_verify/"), "{}", lines[0]);
    assert_eq!(
        lines[1].trim(),
        "ses-local: SendCustomVerificationEmail 400 Throttling signature=valid"
    );
    assert!(lines.iter().all(|l| !l.contains("logged@example.com")));
}

#[test]
fn several_regions_each_keep_their_own_throttle_state_and_identities_and_share_one_outbox() {
    let ses = start(&["--region", "us-east-1,eu-west-1", "--throttle-ms", "60000"]);
    let in_region = |region: &'static str, address: &str| {
        let body = form(&[
            ("Action", "SendCustomVerificationEmail"),
            ("Version", "2010-12-01"),
            ("EmailAddress", address),
            ("TemplateName", "SignupVerify"),
        ]);
        let signing = Signing { region, ..now() };
        post_body(&ses, &body, Some(&signing))
    };
    // One send a minute per region: each region's first is accepted, a second is throttled.
    assert_eq!(in_region("us-east-1", "a@example.com").status, 200);
    assert_eq!(in_region("eu-west-1", "b@example.com").status, 200);
    let again = in_region("eu-west-1", "c@example.com");
    assert_eq!((again.status, again.code()), (400, "Throttling"));
    // A region ses-local does not serve is refused by the signature check, as SES would.
    let elsewhere = in_region("ap-south-1", "d@example.com");
    assert_eq!(elsewhere.status, 403, "{}", elsewhere.body);
    let regions: Vec<String> = requests(&ses)
        .iter()
        .map(|r| r["region"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        regions,
        ["us-east-1", "eu-west-1", "eu-west-1", "us-east-1"]
    );
    // The identity is unknown in the region that did not mail it (each action is throttled per
    // region too, so each region is asked once).
    let status_in = |region: &'static str, identity: &str| {
        let body = form(&[
            ("Action", "GetIdentityVerificationAttributes"),
            ("Version", "2010-12-01"),
            ("Identities.member.1", identity),
        ]);
        let signing = Signing { region, ..now() };
        post_body(&ses, &body, Some(&signing))
            .text("VerificationStatus")
            .map(str::to_string)
    };
    assert_eq!(status_in("us-east-1", "b@example.com"), None);
    // One outbox for all regions, and each region's link verifies in its own region.
    let mails = outbox(&ses);
    let mut addresses: Vec<&str> = mails
        .iter()
        .filter_map(|m| m["emailAddress"].as_str())
        .collect();
    addresses.sort_unstable();
    assert_eq!(addresses, ["a@example.com", "b@example.com"]);
    let link = mails
        .iter()
        .find(|m| m["emailAddress"] == "b@example.com")
        .and_then(|m| m["verificationLink"].as_str())
        .expect("b's link")
        .to_string();
    let (status, _) = open_without_following(&link);
    assert_eq!(status, 302);
    assert_eq!(
        status_in("eu-west-1", "b@example.com").as_deref(),
        Some("Success")
    );
}
