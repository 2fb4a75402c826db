//! [`EmailAddress::parse`] and the canonical [`Mailbox`] of issue F.
//!
//! Input: any bytes; only UTF-8 reaches the parser (a signup body is decoded as UTF-8 first).
//!
//! Properties, for every accepted address:
//! - parsing is idempotent: the address parses to itself;
//! - form-encoded into the `SendCustomVerificationEmail` body and decoded again, it is byte for
//!   byte what was accepted, and the body holds exactly the parameters we wrote (no parameter
//!   injection through `&`, `=`, `+` or `%`);
//! - the canonical mailbox is idempotent, and the same for the address in upper case, with a
//!   `+tag`, and (at Gmail) with dots added.

use signup_verify_domain::email::EmailAddress;
use signup_verify_domain::mailbox::Mailbox;
use signup_verify_ses::request::build_send_body;

const TEMPLATE: &str = "SignupVerify";

pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(email) = EmailAddress::parse(text) else {
        return;
    };
    assert_eq!(
        EmailAddress::parse(email.as_str()).as_ref(),
        Ok(&email),
        "parse is not idempotent"
    );
    assert_reaches_ses_intact(&email);
    assert_mailbox_properties(&email);
}

/// The address, written into the SES Query body, is read back unchanged, beside exactly the
/// parameters the body was built with.
pub fn assert_reaches_ses_intact(email: &EmailAddress) {
    let body = build_send_body(email, TEMPLATE, None);
    let params: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let names: Vec<&str> = params.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["Action", "Version", "EmailAddress", "TemplateName"],
        "parameters injected: {body}"
    );
    assert_eq!(
        params[2].1,
        email.as_str(),
        "the address changed on the wire"
    );
    assert_eq!(params[3].1, TEMPLATE);
}

fn assert_mailbox_properties(email: &EmailAddress) {
    let mailbox = Mailbox::of(email);
    let again = EmailAddress::parse(mailbox.as_str()).expect("a canonical mailbox is an address");
    assert_eq!(
        Mailbox::of(&again),
        mailbox,
        "canonicalising is not idempotent"
    );

    let (local, domain) = email
        .as_str()
        .rsplit_once('@')
        .expect("an accepted address has an @");
    let mut variants = vec![
        email.as_str().to_ascii_uppercase(),
        format!("{local}+fuzz@{domain}"),
    ];
    if mailbox.domain() == "gmail.com" {
        variants.push(with_dots(local) + "@" + domain);
    }
    for variant in variants {
        // A variant may be too long to be an address; only the ones that parse are compared.
        if let Ok(variant_email) = EmailAddress::parse(&variant) {
            assert_eq!(
                Mailbox::of(&variant_email),
                mailbox,
                "{variant} is another mailbox"
            );
        }
    }
}

/// `local` with a dot between every two characters that are not dots already.
fn with_dots(local: &str) -> String {
    let mut dotted = String::new();
    for c in local.chars() {
        if !dotted.is_empty() && !dotted.ends_with('.') && c != '.' {
            dotted.push('.');
        }
        dotted.push(c);
    }
    dotted
}
