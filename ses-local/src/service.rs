//! The SES behaviour itself, without HTTP: actions in, XML answers out, with the outbox and the
//! request log kept as evidence for tests. Time is passed in.

use serde::Serialize;

use crate::settings::Settings;
use crate::xml;

/// One reply: HTTP status and XML body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: String,
    /// The SES error code, when it is an error.
    pub code: Option<String>,
    /// The MessageId, when a mail was accepted.
    pub message_id: Option<String>,
}

impl Answer {
    pub fn error(status: u16, kind: &str, code: &str, message: &str, request_id: &str) -> Self {
        Self {
            status,
            body: xml::error(kind, code, message, request_id),
            code: Some(code.to_string()),
            message_id: None,
        }
    }
}

/// An accepted `SendCustomVerificationEmail`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutboxEntry {
    pub message_id: String,
    pub request_id: String,
    /// Exactly as received, after form decoding.
    pub email_address: String,
    pub template_name: String,
    pub configuration_set_name: Option<String>,
    pub from_email_address: String,
    pub subject: String,
    pub sent_at: String,
    pub sent_at_ms: u64,
}

/// Everything that reached ses-local, and what it answered.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestRecord {
    pub request_id: String,
    /// Arrival time in Unix microseconds.
    pub received_at_us: u64,
    pub method: String,
    pub path: String,
    pub action: Option<String>,
    pub email_address: Option<String>,
    /// `valid`, or the SigV4 failure code.
    pub signature: String,
    pub status: u16,
    pub code: Option<String>,
    pub message_id: Option<String>,
}

pub struct Ses {
    settings: Settings,
    region: String,
    throttle_ms: u64,
    /// Microseconds, so the window is exact rather than subject to millisecond rounding.
    last_accepted_send_us: Option<u64>,
    pub outbox: Vec<OutboxEntry>,
    pub requests: Vec<RequestRecord>,
}

impl Ses {
    pub fn new(settings: Settings, region: &str, throttle_ms: u64) -> Self {
        Self {
            settings,
            region: region.to_string(),
            throttle_ms,
            last_accepted_send_us: None,
            outbox: Vec::new(),
            requests: Vec::new(),
        }
    }

    /// Runs one signed Query API call that arrived at `now_us` (Unix microseconds).
    pub fn handle(
        &mut self,
        params: &[(String, String)],
        now_us: u64,
        request_id: &str,
        new_message_id: impl FnOnce() -> String,
    ) -> Answer {
        let param = |name: &str| {
            params
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        match param("Action") {
            None => Answer::error(
                400,
                "Sender",
                "MissingAction",
                "Could not find operation: the request has no Action parameter.",
                request_id,
            ),
            Some("SendCustomVerificationEmail") => {
                self.send_custom_verification_email(&param, now_us, request_id, new_message_id)
            }
            Some(other) => Answer::error(
                400,
                "Sender",
                "InvalidAction",
                &format!("The action {other} is not valid for this web service."),
                request_id,
            ),
        }
    }

    fn send_custom_verification_email<'a>(
        &mut self,
        param: &impl Fn(&str) -> Option<&'a str>,
        now_us: u64,
        request_id: &str,
        new_message_id: impl FnOnce() -> String,
    ) -> Answer {
        let sender =
            |code: &str, message: &str| Answer::error(400, "Sender", code, message, request_id);
        if let Some(last) = self.last_accepted_send_us {
            if now_us < last + self.throttle_ms * 1000 {
                return sender("Throttling", "Maximum sending rate exceeded.");
            }
        }
        let Some(template_name) = param("TemplateName") else {
            return sender(
                "MissingParameter",
                "The request must contain the parameter TemplateName.",
            );
        };
        let email = param("EmailAddress").unwrap_or_default();
        if email.is_empty() {
            return sender("InvalidParameterValue", "Email address not specified.");
        }
        if !looks_like_an_address(email) {
            return sender(
                "InvalidParameterValue",
                &format!("Invalid email address<{email}>."),
            );
        }
        let Some(template) = self
            .settings
            .templates
            .iter()
            .find(|t| t.name == template_name)
        else {
            return sender(
                "CustomVerificationEmailTemplateDoesNotExist",
                &format!("Template <{template_name}> does not exist"),
            );
        };
        if !self.settings.verified_identities.contains(&template.from) {
            return sender(
                "FromEmailAddressNotVerified",
                &format!(
                    "Email address is not verified. The following identities failed the check in region {}: {}",
                    self.region.to_uppercase(),
                    template.from
                ),
            );
        }
        let configuration_set = param("ConfigurationSetName");
        if let Some(set) = configuration_set {
            if !self.settings.configuration_sets.iter().any(|s| s == set) {
                return sender(
                    "ConfigurationSetDoesNotExist",
                    &format!("Configuration set <{set}> does not exist."),
                );
            }
        }
        let message_id = new_message_id();
        self.last_accepted_send_us = Some(now_us);
        let now_ms = now_us / 1000;
        self.outbox.push(OutboxEntry {
            message_id: message_id.clone(),
            request_id: request_id.to_string(),
            email_address: email.to_string(),
            template_name: template.name.clone(),
            configuration_set_name: configuration_set.map(str::to_string),
            from_email_address: template.from.clone(),
            subject: template.subject.clone(),
            sent_at: rfc3339(now_ms),
            sent_at_ms: now_ms,
        });
        Answer {
            status: 200,
            body: xml::success(
                "SendCustomVerificationEmail",
                &format!(
                    "\n    <MessageId>{}</MessageId>\n  ",
                    xml::escape(&message_id)
                ),
                request_id,
            ),
            code: None,
            message_id: Some(message_id),
        }
    }
}

/// SES's own check is loose: one `@`, something on each side, a dot in the domain, no spaces.
fn looks_like_an_address(email: &str) -> bool {
    match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.contains('@')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    }
}

pub fn rfc3339(ms: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Template;

    fn ses() -> Ses {
        let template = |name: &str, from: &str| Template {
            name: name.into(),
            from: from.into(),
            subject: "Confirm".into(),
            content: "<p>Hi</p>".into(),
            success_url: "http://127.0.0.1/ok".into(),
            failure_url: "http://127.0.0.1/fail".into(),
        };
        Ses::new(
            Settings {
                verified_identities: vec!["noreply@example.com".into()],
                configuration_sets: vec!["signup-events".into()],
                templates: vec![
                    template("SignupVerify", "noreply@example.com"),
                    template("Unverified", "other@example.com"),
                ],
            },
            "us-east-1",
            1000,
        )
    }

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn send(ses: &mut Ses, extra: &[(&str, &str)], now_ms: u64) -> Answer {
        let mut p = vec![
            ("Action", "SendCustomVerificationEmail"),
            ("Version", "2010-12-01"),
        ];
        p.extend_from_slice(extra);
        ses.handle(&params(&p), now_ms * 1000, "req-1", || {
            format!("msg-{now_ms}")
        })
    }

    const GOOD: [(&str, &str); 2] = [
        ("EmailAddress", "user+tag@example.com"),
        ("TemplateName", "SignupVerify"),
    ];

    #[test]
    fn an_accepted_send_is_in_the_outbox_exactly_as_received() {
        let mut ses = ses();
        let answer = send(&mut ses, &GOOD, 5_000);
        assert_eq!(
            (answer.status, answer.message_id.as_deref()),
            (200, Some("msg-5000"))
        );
        assert!(answer.body.contains("<MessageId>msg-5000</MessageId>"));
        assert_eq!(ses.outbox.len(), 1);
        assert_eq!(ses.outbox[0].email_address, "user+tag@example.com");
        assert_eq!(ses.outbox[0].sent_at, "1970-01-01T00:00:05Z");
    }

    #[test]
    fn a_second_send_within_the_window_is_throttled_and_after_it_accepted() {
        let mut ses = ses();
        send(&mut ses, &GOOD, 10_000);
        let early = send(&mut ses, &GOOD, 10_999);
        assert_eq!(
            (early.status, early.code.as_deref()),
            (400, Some("Throttling"))
        );
        assert!(early.body.contains("Maximum sending rate exceeded."));
        assert_eq!(send(&mut ses, &GOOD, 11_000).status, 200);
        assert_eq!(ses.outbox.len(), 2);
    }

    #[test]
    fn each_real_error_has_its_code_and_accepts_nothing() {
        let mut ses = ses();
        let cases: [(&[(&str, &str)], &str); 6] = [
            (&[("EmailAddress", "a@b.io")], "MissingParameter"),
            (
                &[("EmailAddress", ""), ("TemplateName", "SignupVerify")],
                "InvalidParameterValue",
            ),
            (
                &[
                    ("EmailAddress", "not-an-email"),
                    ("TemplateName", "SignupVerify"),
                ],
                "InvalidParameterValue",
            ),
            (
                &[("EmailAddress", "a@b.io"), ("TemplateName", "Nope")],
                "CustomVerificationEmailTemplateDoesNotExist",
            ),
            (
                &[("EmailAddress", "a@b.io"), ("TemplateName", "Unverified")],
                "FromEmailAddressNotVerified",
            ),
            (
                &[
                    ("EmailAddress", "a@b.io"),
                    ("TemplateName", "SignupVerify"),
                    ("ConfigurationSetName", "nope"),
                ],
                "ConfigurationSetDoesNotExist",
            ),
        ];
        for (extra, code) in cases {
            let answer = send(&mut ses, extra, 1_000);
            assert_eq!(
                (answer.status, answer.code.as_deref()),
                (400, Some(code)),
                "{extra:?}"
            );
        }
        assert!(ses.outbox.is_empty());
        let answer = send(
            &mut ses,
            &[("EmailAddress", "a@b.io"), ("TemplateName", "Unverified")],
            1_000,
        );
        assert!(answer
            .body
            .contains("failed the check in region US-EAST-1: other@example.com"));
    }

    #[test]
    fn unknown_or_missing_actions_are_refused() {
        let mut ses = ses();
        let answer = ses.handle(&params(&[("Action", "SendEmail")]), 0, "r", || "m".into());
        assert_eq!(answer.code.as_deref(), Some("InvalidAction"));
        let answer = ses.handle(&params(&[]), 0, "r", || "m".into());
        assert_eq!(answer.code.as_deref(), Some("MissingAction"));
    }
}
