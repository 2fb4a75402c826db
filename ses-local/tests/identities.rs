//! Identities: VerifyEmailIdentity with its clickable mail, verification attributes, deletion
//! and listing.

mod support;

use support::{call, outbox, start, status_of, FROM};

#[test]
fn verify_email_identity_mails_a_link_that_verifies_the_address() {
    let ses = start(&["--throttle-ms", "0"]);
    assert_eq!(
        call(
            &ses,
            "VerifyEmailIdentity",
            &[("EmailAddress", "new@example.com")]
        )
        .status,
        200
    );
    assert_eq!(
        status_of(&ses, "new@example.com").as_deref(),
        Some("Pending")
    );
    let mail = &outbox(&ses)[0];
    assert_eq!(mail["kind"], "Verification");
    assert_eq!(mail["emailAddress"], "new@example.com");
    let link = mail["verificationLink"].as_str().expect("link");
    let page = ureq::get(link).call().expect("open link");
    assert_eq!(page.status(), 200);
    assert!(page
        .into_string()
        .expect("body")
        .contains("new@example.com is now a verified identity"));
    assert_eq!(
        status_of(&ses, "new@example.com").as_deref(),
        Some("Success")
    );
}

#[test]
fn attributes_answer_known_identities_only_and_at_most_a_hundred() {
    let ses = start(&["--throttle-ms", "0"]);
    call(
        &ses,
        "VerifyEmailIdentity",
        &[("EmailAddress", "pending@example.com")],
    );
    let reply = call(
        &ses,
        "GetIdentityVerificationAttributes",
        &[
            ("Identities.member.1", FROM),
            ("Identities.member.2", "unknown@example.com"),
            ("Identities.member.3", "pending@example.com"),
        ],
    );
    assert_eq!(reply.all("key"), vec![FROM, "pending@example.com"]);
    assert_eq!(reply.all("VerificationStatus"), vec!["Success", "Pending"]);
    let names: Vec<String> = (1..=101)
        .map(|i| format!("Identities.member.{i}"))
        .collect();
    let params: Vec<(&str, &str)> = names
        .iter()
        .map(|n| (n.as_str(), "x@example.com"))
        .collect();
    let too_many = call(&ses, "GetIdentityVerificationAttributes", &params);
    assert_eq!(
        (too_many.status, too_many.code()),
        (400, "InvalidParameterValue")
    );
}

#[test]
fn deleted_identities_disappear_and_the_list_pages_and_filters() {
    let ses = start(&["--throttle-ms", "0"]);
    for email in ["a@example.com", "b@example.com", "c@example.com"] {
        assert_eq!(
            call(&ses, "VerifyEmailIdentity", &[("EmailAddress", email)]).status,
            200
        );
    }
    let all = call(&ses, "ListIdentities", &[]).all("member");
    assert_eq!(
        all,
        vec!["a@example.com", "b@example.com", "c@example.com", FROM]
    );
    let first = call(&ses, "ListIdentities", &[("MaxItems", "2")]);
    assert_eq!(first.all("member"), vec!["a@example.com", "b@example.com"]);
    let token = first.text("NextToken").expect("a next page").to_string();
    let second = call(
        &ses,
        "ListIdentities",
        &[("MaxItems", "2"), ("NextToken", &token)],
    );
    assert_eq!(second.all("member"), vec!["c@example.com", FROM]);
    assert_eq!(second.text("NextToken"), None);
    assert!(call(&ses, "ListIdentities", &[("IdentityType", "Domain")])
        .all("member")
        .is_empty());
    assert_eq!(
        call(&ses, "ListIdentities", &[("IdentityType", "Robot")]).code(),
        "InvalidParameterValue"
    );

    assert_eq!(
        call(&ses, "DeleteIdentity", &[("Identity", "b@example.com")]).status,
        200
    );
    assert_eq!(status_of(&ses, "b@example.com"), None);
    assert_eq!(
        call(&ses, "DeleteIdentity", &[("Identity", "never@example.com")]).status,
        200,
        "idempotent"
    );
}

#[test]
fn seeded_identities_are_listed_and_a_custom_verification_mail_leaves_a_verified_one_verified() {
    let dir = std::env::temp_dir().join(format!("ses-local-seeded-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let seed = dir.join("seed.toml");
    let test_seed = std::fs::read_to_string(support::seed_file()).expect("the test seed");
    let verified = format!(
        "verified_identities = [\"{FROM}\", \"already@example.com\", \"verified.example\"]"
    );
    let text = test_seed.replace(&format!("verified_identities = [\"{FROM}\"]"), &verified);
    assert_ne!(text, test_seed, "the seed names the extra identities");
    std::fs::write(&seed, text).expect("write the seed");
    let seed = seed.to_str().expect("utf-8 path");
    let ses = support::start_with(&["--config", seed], &["--throttle-ms", "0"]);

    assert_eq!(
        call(&ses, "ListIdentities", &[]).all("member"),
        vec!["already@example.com", FROM, "verified.example"]
    );
    assert_eq!(
        call(&ses, "ListIdentities", &[("IdentityType", "Domain")]).all("member"),
        vec!["verified.example"]
    );

    let sent = call(
        &ses,
        "SendCustomVerificationEmail",
        &[
            ("EmailAddress", "already@example.com"),
            ("TemplateName", "SignupVerify"),
        ],
    );
    assert_eq!(sent.status, 200, "{}", sent.body);
    assert_eq!(outbox(&ses)[0]["emailAddress"], "already@example.com");
    let reply = call(
        &ses,
        "GetIdentityVerificationAttributes",
        &[
            ("Identities.member.1", "already@example.com"),
            ("Identities.member.2", "verified.example"),
        ],
    );
    assert_eq!(
        reply.all("VerificationStatus"),
        vec!["Success", "Success"],
        "{}",
        reply.body
    );
}
