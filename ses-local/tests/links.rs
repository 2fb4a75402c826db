//! The verification link of a custom verification email: success, reuse, unknown and expiry,
//! through a real HTTP client.

mod support;

use std::time::Duration;

use support::{call, open_without_following, outbox, start, status_of};

/// A template whose links land on this ses-local's own pages.
fn create_template(ses: &support::SesLocal) {
    let success = format!("{}_pages/verified", ses.url);
    let failure = format!("{}_pages/failed", ses.url);
    let reply = call(
        ses,
        "CreateCustomVerificationEmailTemplate",
        &[
            ("TemplateName", "Linked"),
            ("FromEmailAddress", support::FROM),
            ("TemplateSubject", "Confirm"),
            (
                "TemplateContent",
                "<html><body><h1>Almost there</h1></body></html>",
            ),
            ("SuccessRedirectionURL", &success),
            ("FailureRedirectionURL", &failure),
        ],
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
}

fn send(ses: &support::SesLocal, email: &str) -> serde_json::Value {
    if call(
        ses,
        "GetCustomVerificationEmailTemplate",
        &[("TemplateName", "Linked")],
    )
    .status
        != 200
    {
        create_template(ses);
    }
    let reply = call(
        ses,
        "SendCustomVerificationEmail",
        &[("EmailAddress", email), ("TemplateName", "Linked")],
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    outbox(ses).into_iter().next().expect("a mail")
}

#[test]
fn the_link_verifies_the_address_and_a_browser_lands_on_the_success_url() {
    let ses = start(&["--throttle-ms", "0"]);
    let mail = send(&ses, "user+tag@example.com");
    assert_eq!(
        status_of(&ses, "user+tag@example.com").as_deref(),
        Some("Pending")
    );
    let link = mail["verificationLink"].as_str().expect("link");
    let html = mail["html"].as_str().expect("html");
    assert!(
        html.starts_with("<html><body><h1>Almost there</h1>"),
        "the template content comes first"
    );
    assert!(html.contains(link) && html.contains("If you did not ask to verify"));

    // A real client following the redirect ends on the template's success page.
    let landed = ureq::get(link).call().expect("follow the link");
    assert!(
        landed.get_url().ends_with("/_pages/verified"),
        "{}",
        landed.get_url()
    );
    assert_eq!(
        status_of(&ses, "user+tag@example.com").as_deref(),
        Some("Success")
    );

    // A second click is a reused token: the failure URL, and the identity stays verified.
    let (status, location) = open_without_following(link);
    assert_eq!(status, 302);
    assert!(location.expect("Location").ends_with("/_pages/failed"));
    assert_eq!(
        status_of(&ses, "user+tag@example.com").as_deref(),
        Some("Success")
    );
}

#[test]
fn the_scanner_stand_in_opens_the_link_and_its_redirect_without_cookies() {
    // The template's success URL: a loopback page that records what the scanner sent it.
    let page = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = page.local_addr().expect("addr").port();
    let seen = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut stream, _) = page.accept().expect("the scanner arrives");
        let mut request = vec![0; 4096];
        let n = stream.read(&mut request).expect("read");
        let _ = stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 7\r\nconnection: close\r\n\r\nlanding");
        String::from_utf8_lossy(&request[..n]).to_string()
    });
    let ses = start(&["--throttle-ms", "0"]);
    let success = format!("http://127.0.0.1:{port}/confirm");
    let reply = call(
        &ses,
        "CreateCustomVerificationEmailTemplate",
        &[
            ("TemplateName", "Scanned"),
            ("FromEmailAddress", "noreply@signup-verify.test"),
            ("TemplateSubject", "Confirm"),
            ("TemplateContent", "<p>Confirm</p>"),
            ("SuccessRedirectionURL", &success),
            ("FailureRedirectionURL", &success),
        ],
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let reply = call(
        &ses,
        "SendCustomVerificationEmail",
        &[
            ("EmailAddress", "scanned@example.com"),
            ("TemplateName", "Scanned"),
        ],
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let mail = outbox(&ses).into_iter().next().expect("a mail");
    let id = mail["messageId"].as_str().expect("id");
    let scanned = ureq::post(&format!("{}_outbox/{id}/scan", ses.url))
        .call()
        .expect("scan")
        .into_string()
        .expect("body");
    let scanned: serde_json::Value = serde_json::from_str(&scanned).expect("json");
    assert_eq!(scanned["landedOn"], success.as_str(), "{scanned}");
    assert_eq!(scanned["status"], 200);
    assert_eq!(scanned["body"], "landing");
    let request = seen.join().expect("page thread");
    assert!(request.starts_with("GET /confirm "), "{request}");
    assert!(
        !request.to_ascii_lowercase().contains("\ncookie:"),
        "{request}"
    );
    // A scanner's GET verifies the identity at SES, as the real one does.
    assert_eq!(
        status_of(&ses, "scanned@example.com").as_deref(),
        Some("Success")
    );
    let missing = ureq::post(&format!("{}_outbox/nope/scan", ses.url)).call();
    assert!(matches!(missing, Err(ureq::Error::Status(404, _))));
}

#[test]
fn an_unknown_token_does_not_verify_anything() {
    let ses = start(&["--throttle-ms", "0"]);
    let (status, _) = open_without_following(&format!("{}_verify/not-a-token", ses.url));
    assert_eq!(status, 404);
}

#[test]
fn an_expired_link_fails_the_identity_and_redirects_to_the_failure_url() {
    let ses = start(&["--throttle-ms", "0", "--link-ttl-secs", "1"]);
    let mail = send(&ses, "late@example.com");
    std::thread::sleep(Duration::from_millis(1300));
    let (status, location) =
        open_without_following(mail["verificationLink"].as_str().expect("link"));
    assert_eq!(status, 302);
    assert!(location.expect("Location").ends_with("/_pages/failed"));
    assert_eq!(
        status_of(&ses, "late@example.com").as_deref(),
        Some("Failed")
    );
    // A new mail refreshes the identity to Pending.
    send(&ses, "late@example.com");
    assert_eq!(
        status_of(&ses, "late@example.com").as_deref(),
        Some("Pending")
    );
}

#[test]
fn the_outbox_pages_escape_attacker_chosen_addresses() {
    let ses = start(&["--throttle-ms", "0"]);
    let hostile = "<script>alert(1)</script>@evil.example";
    let mail = send(&ses, hostile);
    let list = ureq::get(&format!("{}_outbox", ses.url))
        .call()
        .expect("outbox")
        .into_string()
        .expect("html");
    assert!(
        list.contains("&lt;script&gt;alert(1)&lt;/script&gt;@evil.example"),
        "{list}"
    );
    assert!(!list.contains("<script>alert(1)"));
    let id = mail["messageId"].as_str().expect("id");
    let page = ureq::get(&format!("{}_outbox/{id}", ses.url))
        .call()
        .expect("mail page")
        .into_string()
        .expect("html");
    assert!(!page.contains("<script>alert(1)") && page.contains("iframe sandbox"));
}

#[test]
fn with_identity_on_click_only_the_clicked_link_creates_the_identity() {
    let ses = start(&[
        "--throttle-ms",
        "0",
        "--identity-on",
        "click",
        "--link-ttl-secs",
        "1",
    ]);
    let clicked = send(&ses, "clicker@example.com");
    assert_eq!(
        status_of(&ses, "clicker@example.com"),
        None,
        "a send alone leaves the identity out, as the FAQ says"
    );
    let (status, _) = open_without_following(clicked["verificationLink"].as_str().expect("link"));
    assert_eq!(status, 302);
    assert_eq!(
        status_of(&ses, "clicker@example.com").as_deref(),
        Some("Success")
    );
    let ignored = send(&ses, "ignorer@example.com");
    std::thread::sleep(Duration::from_millis(1300));
    let (status, _) = open_without_following(ignored["verificationLink"].as_str().expect("link"));
    assert_eq!(status, 302);
    assert_eq!(
        status_of(&ses, "ignorer@example.com"),
        None,
        "an expired link creates nothing"
    );
}

#[test]
fn the_request_log_counts_calls_per_action() {
    let ses = start(&["--throttle-ms", "0"]);
    send(&ses, "a@example.com");
    send(&ses, "b@example.com");
    call(&ses, "NoSuchAction", &[]);
    let log = support::get_json(&ses, "/_requests");
    let counts = &log["counts"];
    assert_eq!(
        counts["SendCustomVerificationEmail"],
        serde_json::json!({"received": 2, "accepted": 2})
    );
    assert_eq!(counts["NoSuchAction"]["accepted"], 0);
    assert_eq!(
        counts["GetCustomVerificationEmailTemplate"]["received"], 2,
        "{counts}"
    );
    let total: u64 = counts
        .as_object()
        .expect("object")
        .values()
        .map(|c| c["received"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(
        total,
        log["requests"].as_array().map_or(0, |r| r.len()) as u64
    );
}
