//! Fault injection: queued behaviours for the next calls of an action.

mod support;

use std::time::{Duration, Instant};

use support::{call, outbox, requests, start};

fn add_fault(ses: &support::SesLocal, fault: &str, count: u32) {
    let body = serde_json::json!({"action": "SendCustomVerificationEmail", "fault": fault, "count": count});
    let reply = ureq::post(&format!("{}_faults", ses.url))
        .send_string(&body.to_string())
        .expect("POST /_faults");
    assert_eq!(reply.status(), 201);
}

fn send(ses: &support::SesLocal) -> support::Reply {
    call(
        ses,
        "SendCustomVerificationEmail",
        &[
            ("EmailAddress", "a@example.com"),
            ("TemplateName", "SignupVerify"),
        ],
    )
}

#[test]
fn each_fault_shapes_exactly_the_next_calls_then_service_resumes() {
    let ses = start(&["--throttle-ms", "0"]);
    add_fault(&ses, "throttle", 2);
    add_fault(&ses, "status:500", 1);
    add_fault(&ses, "status:503", 1);
    add_fault(&ses, "html", 1);
    add_fault(&ses, "empty", 1);
    add_fault(&ses, "truncated", 1);
    let expectations: [(u16, &str); 7] = [
        (400, "Throttling"),
        (400, "Throttling"),
        (500, "InternalFailure"),
        (503, "ServiceUnavailable"),
        (502, ""),
        (200, ""),
        (200, ""),
    ];
    let mut bodies = Vec::new();
    for (status, code) in expectations {
        let reply = send(&ses);
        assert_eq!(
            (reply.status, reply.code()),
            (status, code),
            "{}",
            reply.body
        );
        bodies.push(reply.body);
    }
    assert!(bodies[4].contains("502 Bad Gateway"));
    assert!(bodies[5].is_empty());
    assert!(
        bodies[6].starts_with("<SendCustomVerificationEmailResponse")
            && !bodies[6].contains("</SendCustomVerificationEmailResponse>")
    );
    assert!(outbox(&ses).is_empty(), "no fault sends mail");
    assert_eq!(send(&ses).status, 200, "the queue is used up");
    let log = requests(&ses);
    assert_eq!(log.len(), 8);
    assert_eq!(log[2]["fault"], "status:500");
    assert!(log[7]["fault"].is_null());
}

#[test]
fn a_delay_answers_normally_but_late_and_a_hang_never_answers() {
    let ses = start(&["--throttle-ms", "0"]);
    add_fault(&ses, "delay_ms:400", 1);
    let started = Instant::now();
    assert_eq!(send(&ses).status, 200);
    assert!(started.elapsed() >= Duration::from_millis(400));

    add_fault(&ses, "hang", 1);
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_millis(800))
        .build();
    let body = support::form(&[("Action", "SendCustomVerificationEmail")]);
    let result = agent.post(&ses.url).send_string(&body);
    assert!(
        matches!(result, Err(ureq::Error::Transport(_))),
        "a hang times out the client"
    );
    assert_eq!(requests(&ses).last().expect("logged")["fault"], "hang");
}

#[test]
fn faults_can_be_listed_cleared_and_bad_ones_are_refused() {
    let ses = start(&["--throttle-ms", "0"]);
    add_fault(&ses, "throttle", 3);
    let listed = support::get_json(&ses, "/_faults");
    assert_eq!(listed["faults"].as_array().map(Vec::len), Some(3));
    let cleared = ureq::delete(&format!("{}_faults", ses.url))
        .call()
        .expect("DELETE");
    assert_eq!(cleared.status(), 204);
    assert_eq!(send(&ses).status, 200);
    for bad in [
        r#"{"action":"X","fault":"explode"}"#,
        r#"{"fault":"throttle"}"#,
        "not json",
        r#"{"action":"X","fault":"throttle","count":0}"#,
    ] {
        match ureq::post(&format!("{}_faults", ses.url)).send_string(bad) {
            Err(ureq::Error::Status(400, _)) => {}
            other => panic!("{bad}: {other:?}"),
        }
    }
}

#[test]
fn deliver_then_truncate_and_deliver_then_hang_send_the_mail_but_lose_the_answer() {
    let ses = start(&["--throttle-ms", "0"]);
    add_fault(&ses, "deliver_truncated", 1);
    let truncated = send(&ses);
    assert_eq!(truncated.status, 200);
    assert!(
        truncated
            .body
            .starts_with("<SendCustomVerificationEmailResponse")
            && !truncated
                .body
                .contains("</SendCustomVerificationEmailResponse>"),
        "{}",
        truncated.body
    );
    assert_eq!(outbox(&ses).len(), 1, "the mail went out");

    add_fault(&ses, "deliver_hang", 1);
    let url = ses.url.clone();
    let body = support::form(&[
        ("Action", "SendCustomVerificationEmail"),
        ("Version", "2010-12-01"),
        ("EmailAddress", "b@example.com"),
        ("TemplateName", "SignupVerify"),
    ]);
    let signed = support::sign_form(&ses, &body, &support::now());
    let hung = std::thread::spawn(move || {
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_millis(800))
            .build();
        let mut request = agent.post(&url).set("content-type", support::FORM);
        for (name, value) in &signed {
            request = request.set(name, value);
        }
        request.send_string(&body).is_err()
    });
    assert!(hung.join().expect("thread"), "no answer ever came");
    let mails = outbox(&ses);
    assert_eq!(mails.len(), 2, "but the mail went out");
    let logged = requests(&ses);
    assert_eq!(
        logged.last().map(|r| r["fault"].clone()),
        Some("deliver_hang".into())
    );
}

#[test]
fn reject_address_echoes_the_address_as_ses_does_and_sends_nothing() {
    let ses = start(&[]);
    add_fault(&ses, "reject_address", 1);
    let reply = send(&ses);
    assert_eq!((reply.status, reply.code()), (400, "InvalidParameterValue"));
    // On the wire, XML-escaped, as SES sends it.
    assert_eq!(
        reply.text("Message"),
        Some("Invalid email address&lt;a@example.com&gt;.")
    );
    assert!(outbox(&ses).is_empty());
}

#[test]
fn past_the_identity_quota_a_new_address_is_refused_with_limit_exceeded() {
    // The seed verifies one identity (the From address); a quota of 2 leaves room for one more.
    let ses = start(&["--throttle-ms", "0", "--max-identities", "2"]);
    let first = send(&ses);
    assert_eq!(first.status, 200, "{}", first.body);
    let again = send(&ses);
    assert_eq!(
        again.status, 200,
        "an identity already known is not a new one"
    );
    let new = call(
        &ses,
        "SendCustomVerificationEmail",
        &[
            ("EmailAddress", "c@example.com"),
            ("TemplateName", "SignupVerify"),
        ],
    );
    assert_eq!(
        (new.status, new.code()),
        (400, "LimitExceeded"),
        "{}",
        new.body
    );
    assert_eq!(outbox(&ses).len(), 2);
}
