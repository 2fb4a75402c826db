//! Custom verification email template CRUD over the Query API, with SES's errors and paging.

mod support;

use support::{call, start, template_params, FROM};

#[test]
fn a_created_template_can_be_read_updated_listed_and_deleted() {
    let ses = start(&["--throttle-ms", "0"]);
    let created = call(
        &ses,
        "CreateCustomVerificationEmailTemplate",
        &template_params("Welcome", FROM),
    );
    assert_eq!(created.status, 200, "{}", created.body);
    assert!(created.body.contains("<CreateCustomVerificationEmailTemplateResponse xmlns=\"http://ses.amazonaws.com/doc/2010-12-01/\">"));

    let got = call(
        &ses,
        "GetCustomVerificationEmailTemplate",
        &[("TemplateName", "Welcome")],
    );
    assert_eq!(got.text("FromEmailAddress"), Some(FROM));
    assert_eq!(
        got.text("TemplateContent"),
        Some("&lt;h1&gt;Welcome&lt;/h1&gt;&lt;p&gt;Confirm below.&lt;/p&gt;")
    );
    assert_eq!(
        got.text("SuccessRedirectionURL"),
        Some("https://app.example/ok")
    );

    let updated = call(
        &ses,
        "UpdateCustomVerificationEmailTemplate",
        &[
            ("TemplateName", "Welcome"),
            ("TemplateSubject", "New subject"),
        ],
    );
    assert_eq!(updated.status, 200, "{}", updated.body);
    let got = call(
        &ses,
        "GetCustomVerificationEmailTemplate",
        &[("TemplateName", "Welcome")],
    );
    assert_eq!(got.text("TemplateSubject"), Some("New subject"));
    assert_eq!(
        got.text("FailureRedirectionURL"),
        Some("https://app.example/failed"),
        "partial update keeps the rest"
    );

    let listed = call(&ses, "ListCustomVerificationEmailTemplates", &[]);
    assert_eq!(listed.all("TemplateName"), vec!["SignupVerify", "Welcome"]);
    assert!(
        !listed.body.contains("TemplateContent"),
        "the list leaves the content out"
    );

    assert_eq!(
        call(
            &ses,
            "DeleteCustomVerificationEmailTemplate",
            &[("TemplateName", "Welcome")]
        )
        .status,
        200
    );
    let gone = call(
        &ses,
        "GetCustomVerificationEmailTemplate",
        &[("TemplateName", "Welcome")],
    );
    assert_eq!(
        (gone.status, gone.code()),
        (400, "CustomVerificationEmailTemplateDoesNotExist")
    );
}

#[test]
fn template_errors_have_ses_codes() {
    let ses = start(&["--throttle-ms", "0"]);
    let with = |changes: &[(&'static str, &'static str)]| {
        let mut params = template_params("T", FROM);
        for (name, value) in changes {
            params.retain(|(n, _)| n != name);
            params.push((name, value));
        }
        params
    };
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            template_params("SignupVerify", FROM),
            "CustomVerificationEmailTemplateAlreadyExists",
        ),
        (
            template_params("T", "stranger@unverified.test"),
            "FromEmailAddressNotVerified",
        ),
        (
            with(&[("TemplateContent", "<p>hi</p><script>steal()</script>")]),
            "CustomVerificationEmailInvalidContent",
        ),
        (
            with(&[("SuccessRedirectionURL", "not a url")]),
            "InvalidParameterValue",
        ),
        (
            with(&[("FailureRedirectionURL", "ftp://files.example/x")]),
            "InvalidParameterValue",
        ),
        (template_params("T", FROM)[..5].to_vec(), "MissingParameter"),
    ];
    for (params, code) in cases {
        let reply = call(&ses, "CreateCustomVerificationEmailTemplate", &params);
        assert_eq!((reply.status, reply.code()), (400, code), "{params:?}");
    }
    let update_missing = call(
        &ses,
        "UpdateCustomVerificationEmailTemplate",
        &[("TemplateName", "Nope"), ("TemplateSubject", "x")],
    );
    assert_eq!(
        update_missing.code(),
        "CustomVerificationEmailTemplateDoesNotExist"
    );
    let update_bad = call(
        &ses,
        "UpdateCustomVerificationEmailTemplate",
        &[
            ("TemplateName", "SignupVerify"),
            ("SuccessRedirectionURL", "nope"),
        ],
    );
    assert_eq!(update_bad.code(), "InvalidParameterValue");
    let listed = call(&ses, "ListCustomVerificationEmailTemplates", &[]);
    assert_eq!(
        listed.all("TemplateName"),
        vec!["SignupVerify"],
        "nothing failed half-way"
    );
}

#[test]
fn content_over_ten_megabytes_is_refused() {
    let ses = start(&["--throttle-ms", "0"]);
    let huge = "x".repeat(10 * 1024 * 1024 + 1);
    let mut params = template_params("Huge", FROM);
    params.retain(|(n, _)| *n != "TemplateContent");
    params.push(("TemplateContent", &huge));
    let reply = call(&ses, "CreateCustomVerificationEmailTemplate", &params);
    assert_eq!((reply.status, reply.code()), (400, "InvalidParameterValue"));
}

#[test]
fn at_most_fifty_templates_exist_and_the_list_pages_through_them() {
    let ses = start_empty();
    let names: Vec<String> = (0..50).map(|i| format!("T{i:02}")).collect();
    for name in &names {
        let reply = call(
            &ses,
            "CreateCustomVerificationEmailTemplate",
            &template_params(name, FROM),
        );
        assert_eq!(reply.status, 200, "{name}: {}", reply.body);
    }
    let over = call(
        &ses,
        "CreateCustomVerificationEmailTemplate",
        &template_params("T50", FROM),
    );
    assert_eq!((over.status, over.code()), (400, "LimitExceeded"));

    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut params = vec![("MaxResults", "7")];
        if let Some(t) = &token {
            params.push(("NextToken", t));
        }
        let page = call(&ses, "ListCustomVerificationEmailTemplates", &params);
        let names = page.all("TemplateName");
        assert!(names.len() <= 7);
        seen.extend(names);
        match page.text("NextToken") {
            Some(next) => token = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, names);
    for bad in ["0", "51", "x"] {
        let reply = call(
            &ses,
            "ListCustomVerificationEmailTemplates",
            &[("MaxResults", bad)],
        );
        assert_eq!(reply.code(), "InvalidParameterValue", "MaxResults={bad}");
    }
    assert_eq!(
        call(
            &ses,
            "ListCustomVerificationEmailTemplates",
            &[("NextToken", "zz")]
        )
        .code(),
        "InvalidParameterValue"
    );
}

/// Only a verified sender, no templates.
fn start_empty() -> support::SesLocal {
    let dir = std::env::temp_dir().join(format!("ses-local-empty-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let config = dir.join("seed.toml");
    std::fs::write(&config, format!("verified_identities = [\"{FROM}\"]\n")).expect("write");
    support::start_with(
        &["--config", config.to_str().expect("utf-8 path")],
        &["--throttle-ms", "0"],
    )
}

#[test]
fn each_action_is_rate_limited_on_its_own() {
    let ses = start(&[]);
    assert_eq!(
        call(&ses, "ListCustomVerificationEmailTemplates", &[]).status,
        200
    );
    let again = call(&ses, "ListCustomVerificationEmailTemplates", &[]);
    assert_eq!((again.status, again.code()), (400, "Throttling"));
    assert_eq!(
        call(&ses, "ListIdentities", &[]).status,
        200,
        "another action has its own window"
    );
}

#[test]
fn unknown_actions_and_missing_parameters_are_refused() {
    let ses = start(&["--throttle-ms", "0"]);
    assert_eq!(call(&ses, "CreateTemplate", &[]).code(), "InvalidAction");
    assert_eq!(
        call(&ses, "GetCustomVerificationEmailTemplate", &[]).code(),
        "MissingParameter"
    );
    assert_eq!(call(&ses, "DeleteIdentity", &[]).code(), "MissingParameter");
    assert_eq!(
        call(&ses, "VerifyEmailIdentity", &[]).code(),
        "MissingParameter"
    );
}
