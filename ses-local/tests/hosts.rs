//! The `Host` check. A DNS-rebinding page (a site whose name its attacker re-points at
//! 127.0.0.1) reaches ses-local from the victim's browser with its own name in `Host`; it must
//! neither read the outbox's links, nor call the Query API, nor open a link. Such requests are
//! refused with 421 and change nothing; ses-local's own names keep working.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;

use support::{
    call, form, get_json, now, open_without_following, outbox, port, post_body, request_with_host,
    requests, sign_form_to, start, start_failure, start_logged, status_of, SesLocal, FORM,
};

/// The `Host` a browser sends for `http://evil.example:PORT/` once the name points at 127.0.0.1.
fn evil(ses: &SesLocal) -> String {
    format!("evil.example:{}", port(ses))
}

fn json() -> Vec<(String, String)> {
    vec![("accept".into(), "application/json".into())]
}

fn send(ses: &SesLocal, email: &str) -> serde_json::Value {
    let reply = call(
        ses,
        "SendCustomVerificationEmail",
        &[("EmailAddress", email), ("TemplateName", "SignupVerify")],
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    outbox(ses).into_iter().next().expect("a mail")
}

/// The status and `Host` check of a GET to `/_health` with `host`.
fn health(ses: &SesLocal, host: &str) -> u16 {
    request_with_host(ses, "GET", "/_health", host, &[], "").0
}

/// A raw HTTP request (no client adds anything to it): the answer's status.
fn raw(ses: &SesLocal, request: &str) -> u16 {
    let mut stream = TcpStream::connect(("127.0.0.1", port(ses))).expect("connect");
    stream.write_all(request.as_bytes()).expect("write");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
        .split(' ')
        .nth(1)
        .and_then(|status| status.parse().ok())
        .unwrap_or_else(|| panic!("{request:?}: {answer:?}"))
}

#[test]
fn a_rebinding_page_cannot_read_the_outbox_or_its_verification_links() {
    let ses = start(&["--throttle-ms", "0"]);
    let mail = send(&ses, "victim@example.com");
    let id = mail["messageId"].as_str().expect("id");
    let hosts = [evil(&ses), "evil.example".into(), "EVIL.example:80".into()];
    for host in &hosts {
        for (path, headers) in [
            ("/_outbox".to_string(), vec![]),
            ("/_outbox".to_string(), json()),
            (format!("/_outbox/{id}"), vec![]),
            (format!("/_outbox/{id}"), json()),
        ] {
            let (status, body) = request_with_host(&ses, "GET", &path, host, &headers, "");
            assert_eq!(status, 421, "GET {path} with Host {host}: {body}");
            assert!(
                !body.contains("_verify/") && !body.contains("victim@example.com"),
                "{body}"
            );
            assert!(body.contains("Host"), "the answer says why: {body}");
        }
    }
    // ses-local's own name still reads it.
    assert_eq!(outbox(&ses).len(), 1);
}

#[test]
fn a_rebinding_page_cannot_call_the_query_api_even_with_a_valid_signature() {
    let ses = start(&["--throttle-ms", "0"]);
    let host = evil(&ses);
    let body = form(&[
        ("Action", "SendCustomVerificationEmail"),
        ("Version", "2010-12-01"),
        ("EmailAddress", "victim@example.com"),
        ("TemplateName", "SignupVerify"),
    ]);
    // The test credentials are well known: the page signs for its own name, so the signature is
    // valid for the request as it arrives.
    let mut headers = sign_form_to(&format!("http://{host}/"), &body, &now());
    headers.push(("content-type".into(), FORM.into()));
    let (status, reply) = request_with_host(&ses, "POST", "/", &host, &headers, &body);
    assert_eq!(status, 421, "{reply}");
    assert!(reply.contains("<Code>MisdirectedRequest</Code>"), "{reply}");
    assert!(outbox(&ses).is_empty(), "no mail");
    assert!(requests(&ses).is_empty(), "not even a call in the log");
    assert_eq!(status_of(&ses, "victim@example.com"), None, "no identity");

    // The same call for ses-local's own name is accepted: what was refused is the Host.
    assert_eq!(post_body(&ses, &body, Some(&now())).status, 200);
}

#[test]
fn a_rebinding_page_cannot_open_a_verification_link_and_the_link_still_works() {
    let ses = start(&["--throttle-ms", "0"]);
    let mail = send(&ses, "victim@example.com");
    let link = mail["verificationLink"].as_str().expect("link");
    let path = link
        .find("/_verify/")
        .map(|at| &link[at..])
        .expect("a /_verify/ link");
    let (status, body) = request_with_host(&ses, "GET", path, &evil(&ses), &[], "");
    assert_eq!(status, 421, "{body}");
    assert_eq!(
        status_of(&ses, "victim@example.com").as_deref(),
        Some("Pending"),
        "not verified"
    );
    // The token was not used up: its owner's click verifies the address.
    let (status, location) = open_without_following(link);
    assert_eq!(status, 302);
    assert_eq!(location.as_deref(), Some("http://127.0.0.1:8787/confirm"));
    assert_eq!(
        status_of(&ses, "victim@example.com").as_deref(),
        Some("Success")
    );
}

#[test]
fn every_route_refuses_a_foreign_host_and_nothing_changes() {
    let ses = start(&["--throttle-ms", "0"]);
    let host = evil(&ses);
    let fault = r#"{"action":"SendCustomVerificationEmail","fault":"hang"}"#;
    // A fault queued by ses-local's own name, which a refused call must not use up.
    ureq::post(&format!("{}_faults", ses.url))
        .send_string(r#"{"action":"GetSendQuota","fault":"throttle"}"#)
        .expect("queue a fault");
    let token = "secret=s&response=XXXX.DUMMY.TOKEN.XXXX.rebinding";
    for (method, path, body) in [
        ("GET", "/", ""),
        ("POST", "/", "Action=GetSendQuota"),
        ("GET", "/_outbox", ""),
        ("GET", "/_outbox/nope", ""),
        ("POST", "/_outbox/nope/scan", ""),
        ("GET", "/_verify/nope", ""),
        ("GET", "/_requests", ""),
        ("GET", "/_health", ""),
        ("GET", "/_faults", ""),
        ("POST", "/_faults", fault),
        ("DELETE", "/_faults", ""),
        ("POST", "/turnstile/v0/siteverify", token),
        ("GET", "/_pages/verified", ""),
        ("GET", "/_pages/failed", ""),
        ("GET", "/no-such-page", ""),
    ] {
        let (status, answer) = request_with_host(&ses, method, path, &host, &[], body);
        assert_eq!(status, 421, "{method} {path}: {answer}");
    }
    assert_eq!(
        get_json(&ses, "/_faults"),
        serde_json::json!({"faults": [{"action": "GetSendQuota", "fault": "throttle"}]}),
        "no fault was queued, used up or cleared"
    );
    assert!(requests(&ses).is_empty());
    // The Turnstile token was not used up either.
    let verdict = ureq::post(&format!("{}turnstile/v0/siteverify", ses.url))
        .send_string(token)
        .expect("siteverify")
        .into_string()
        .expect("body");
    assert!(verdict.contains("\"success\":true"), "{verdict}");
}

#[test]
fn a_request_without_exactly_one_host_header_is_refused() {
    let ses = start(&[]);
    let own = format!("127.0.0.1:{}", port(&ses));
    for request in [
        "GET /_outbox HTTP/1.1\r\nconnection: close\r\n\r\n".to_string(),
        "GET /_outbox HTTP/1.0\r\n\r\n".to_string(),
        format!("GET /_outbox HTTP/1.1\r\nhost: {own}\r\nhost: evil.example\r\nconnection: close\r\n\r\n"),
    ] {
        assert_eq!(raw(&ses, &request), 421, "{request:?}");
    }
    // The absolute form names the server in the request line; a foreign one is refused too.
    let absolute = format!(
        "GET http://evil.example/_outbox HTTP/1.1\r\nhost: {own}\r\nconnection: close\r\n\r\n"
    );
    assert_eq!(raw(&ses, &absolute), 421);
    let own_name =
        format!("GET http://{own}/_health HTTP/1.1\r\nhost: {own}\r\nconnection: close\r\n\r\n");
    assert_eq!(raw(&ses, &own_name), 200);
    let plain = format!("GET /_health HTTP/1.1\r\nhost: {own}\r\nconnection: close\r\n\r\n");
    assert_eq!(raw(&ses, &plain), 200);
}

#[test]
fn the_loopback_names_with_the_bound_port_are_accepted_in_any_case() {
    let ses = start(&["--throttle-ms", "0"]);
    let p = port(&ses);
    for host in [
        format!("127.0.0.1:{p}"),
        format!("localhost:{p}"),
        format!("LocalHost:{p}"),
        format!("[::1]:{p}"),
    ] {
        assert_eq!(health(&ses, &host), 200, "Host {host}");
    }
    let other_port = if p == 1 { 2 } else { 1 };
    for host in [
        "127.0.0.1".to_string(),
        "localhost".to_string(),
        format!("127.0.0.1:{other_port}"),
        format!("localhost.evil.example:{p}"),
        format!("127.0.0.1.evil.example:{p}"),
        format!("0.0.0.0:{p}"),
        format!("[::1]x:{p}"),
    ] {
        assert_eq!(health(&ses, &host), 421, "Host {host}");
    }
    // An SDK whose endpoint is http://localhost:PORT/ signs and sends that name.
    let body = form(&[("Action", "GetSendQuota"), ("Version", "2010-12-01")]);
    let host = format!("localhost:{p}");
    let mut headers = sign_form_to(&format!("http://{host}/"), &body, &now());
    headers.push(("content-type".into(), FORM.into()));
    let (status, reply) = request_with_host(&ses, "POST", "/", &host, &headers, &body);
    assert_eq!(status, 200, "{reply}");
}

#[test]
fn in_a_container_the_bound_address_and_the_allowed_hosts_are_accepted_too() {
    let ses = start(&[
        "--throttle-ms",
        "0",
        "--bind",
        "0.0.0.0",
        "--allowed-hosts",
        "ses-local",
        "--allowed-hosts",
        "Mail.Internal:8025",
    ]);
    let p = port(&ses);
    for host in [
        format!("0.0.0.0:{p}"),
        format!("127.0.0.1:{p}"),
        format!("ses-local:{p}"),
        format!("SES-LOCAL:{p}"),
        "ses-local".to_string(),
        "ses-local:8080".to_string(),
        "mail.internal:8025".to_string(),
    ] {
        assert_eq!(health(&ses, &host), 200, "Host {host}");
    }
    for host in [
        format!("mail.internal:{p}"),
        "mail.internal".to_string(),
        evil(&ses),
        format!("ses-local.evil.example:{p}"),
    ] {
        assert_eq!(health(&ses, &host), 421, "Host {host}");
    }
    // Another container calls it by its service name.
    let body = form(&[("Action", "GetSendQuota"), ("Version", "2010-12-01")]);
    let host = format!("ses-local:{p}");
    let mut headers = sign_form_to(&format!("http://{host}/"), &body, &now());
    headers.push(("content-type".into(), FORM.into()));
    let (status, reply) = request_with_host(&ses, "POST", "/", &host, &headers, &body);
    assert_eq!(status, 200, "{reply}");
    // Links in mails name 127.0.0.1, which is accepted.
    let mail = send(&ses, "container@example.com");
    let link = mail["verificationLink"].as_str().expect("link");
    assert!(
        link.starts_with(&format!("http://127.0.0.1:{p}/_verify/")),
        "{link}"
    );
    assert_eq!(open_without_following(link).0, 302);
    assert_eq!(
        status_of(&ses, "container@example.com").as_deref(),
        Some("Success")
    );
}

#[test]
fn allowed_hosts_can_come_from_their_environment_variable() {
    let ses = start_logged(
        &["--config", &support::seed_file()],
        &[],
        &[("SES_LOCAL_ALLOWED_HOSTS", "a.internal, b.internal:9000,")],
        std::process::Stdio::null(),
    );
    assert_eq!(health(&ses, &format!("a.internal:{}", port(&ses))), 200);
    assert_eq!(health(&ses, "b.internal:9000"), 200);
    assert_eq!(health(&ses, &evil(&ses)), 421);
}

#[test]
fn an_allowed_host_that_is_not_a_host_name_stops_startup() {
    let state =
        std::env::temp_dir().join(format!("ses-local-hosts-{}/state.json", std::process::id()));
    for bad in [
        "http://ses-local:4579",
        "ses-local,ses-local:port",
        "a b",
        "*",
    ] {
        let (code, stderr) = start_failure(&["--allowed-hosts", bad], &state);
        assert_eq!(code, Some(2), "{bad}: {stderr}");
        assert!(
            stderr.contains("--allowed-hosts") && stderr.contains("is not a host"),
            "{bad}: {stderr}"
        );
    }
}
