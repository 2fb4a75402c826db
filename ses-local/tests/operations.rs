//! ses-local as a tool: its health check, its flags from environment variables, its call log,
//! and `GetSendQuota`.

mod support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use support::{call, get_json, seed_file, start, start_logged};

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
