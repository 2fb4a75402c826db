//! The outbox: every verification mail ses-local "sent", rendered as SES would render it, and the
//! single-use, expiring tokens behind their verification links.

use std::collections::HashMap;

use serde::Serialize;

use crate::xml::escape as escape_html;

/// SES appends a fixed notice under the template content; ses-local appends this one in its place.
pub const DISCLAIMER: &str =
    "If you did not ask to verify this address, you can ignore this email. \
     The address will not be verified unless you click the link above.";

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Mail {
    pub message_id: String,
    /// `CustomVerification` (SendCustomVerificationEmail) or `Verification` (VerifyEmailIdentity).
    pub kind: &'static str,
    /// Exactly as received.
    pub email_address: String,
    pub from_email_address: String,
    pub subject: String,
    pub template_name: Option<String>,
    pub configuration_set_name: Option<String>,
    pub verification_link: String,
    /// The body as sent: template content, then the link, then the disclaimer.
    pub html: String,
    pub sent_at: String,
    pub sent_at_ms: u64,
}

/// A custom template's redirection URLs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirects {
    pub success: String,
    pub failure: String,
}

/// The template a custom verification mail was made from.
pub struct TemplateUse {
    pub name: String,
    pub redirects: Redirects,
}

/// Where a link leads once used.
#[derive(Debug, Clone)]
struct Token {
    identity: String,
    /// The custom template's URLs; `None` for a plain verification.
    redirects: Option<Redirects>,
    expires_at_ms: u64,
    used: bool,
}

/// What opening a verification link does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkOutcome {
    /// The identity is now verified; go to the success URL (or ses-local's page).
    Verified {
        identity: String,
        redirect: Option<String>,
    },
    /// The link had expired: the identity failed; go to the failure URL (or ses-local's page).
    Expired {
        identity: String,
        redirect: Option<String>,
    },
    /// Used before, or never issued: nothing changes; go to the failure URL if known.
    Invalid { redirect: Option<String> },
}

/// A mail to add, before the outbox gives it its link.
pub struct Draft {
    pub message_id: String,
    pub email_address: String,
    pub from_email_address: String,
    pub subject: String,
    pub content_html: String,
    pub template: Option<TemplateUse>,
    pub configuration_set_name: Option<String>,
}

#[derive(Default)]
pub struct Outbox {
    mails: Vec<Mail>,
    tokens: HashMap<String, Token>,
}

impl Outbox {
    /// Renders and stores `draft`, issuing a fresh token valid for `ttl_ms`.
    pub fn send(
        &mut self,
        draft: Draft,
        base_url: &str,
        token: String,
        now_ms: u64,
        ttl_ms: u64,
    ) -> &Mail {
        let link = format!("{}/_verify/{token}", base_url.trim_end_matches('/'));
        let (kind, template_name, redirects) = match draft.template {
            Some(used) => ("CustomVerification", Some(used.name), Some(used.redirects)),
            None => ("Verification", None, None),
        };
        let html = format!(
            "{}\n<p><a href=\"{link}\">{link}</a></p>\n<p style=\"color:#666;font-size:small\">{}</p>\n",
            draft.content_html,
            escape_html(DISCLAIMER)
        );
        self.tokens.insert(
            token,
            Token {
                identity: draft.email_address.clone(),
                redirects,
                expires_at_ms: now_ms + ttl_ms,
                used: false,
            },
        );
        self.mails.push(Mail {
            message_id: draft.message_id,
            kind,
            email_address: draft.email_address,
            from_email_address: draft.from_email_address,
            subject: draft.subject,
            template_name,
            configuration_set_name: draft.configuration_set_name,
            verification_link: link,
            html,
            sent_at: crate::clock::rfc3339(now_ms),
            sent_at_ms: now_ms,
        });
        self.mails.last().expect("just pushed")
    }

    /// Newest first.
    pub fn newest_first(&self) -> impl Iterator<Item = &Mail> {
        self.mails.iter().rev()
    }

    pub fn find(&self, message_id: &str) -> Option<&Mail> {
        self.mails.iter().find(|m| m.message_id == message_id)
    }

    /// Whether this outbox issued `token`.
    pub fn knows_token(&self, token: &str) -> bool {
        self.tokens.contains_key(token)
    }

    /// Uses a token. The caller applies the identity change the outcome names.
    pub fn open_link(&mut self, token: &str, now_ms: u64) -> LinkOutcome {
        let Some(entry) = self.tokens.get_mut(token) else {
            return LinkOutcome::Invalid { redirect: None };
        };
        let success = entry.redirects.as_ref().map(|r| r.success.clone());
        let failure = entry.redirects.as_ref().map(|r| r.failure.clone());
        if entry.used {
            return LinkOutcome::Invalid { redirect: failure };
        }
        entry.used = true;
        let identity = entry.identity.clone();
        if now_ms > entry.expires_at_ms {
            LinkOutcome::Expired {
                identity,
                redirect: failure,
            }
        } else {
            LinkOutcome::Verified {
                identity,
                redirect: success,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(template: bool) -> Draft {
        Draft {
            message_id: "m-1".into(),
            email_address: "a+b@example.com".into(),
            from_email_address: "noreply@example.com".into(),
            subject: "Confirm".into(),
            content_html: "<h1>Hi</h1>".into(),
            template: template.then(|| TemplateUse {
                name: "T".into(),
                redirects: Redirects {
                    success: "https://x/ok".into(),
                    failure: "https://x/no".into(),
                },
            }),
            configuration_set_name: None,
        }
    }

    #[test]
    fn a_mail_is_the_content_then_the_link_then_the_disclaimer() {
        let mut outbox = Outbox::default();
        let mail = outbox.send(draft(true), "http://127.0.0.1:9/", "tok".into(), 0, 1000);
        assert_eq!(mail.verification_link, "http://127.0.0.1:9/_verify/tok");
        let content = mail.html.find("<h1>Hi</h1>").expect("content");
        let link = mail.html.find("/_verify/tok").expect("link");
        let disclaimer = mail.html.find("If you did not ask").expect("disclaimer");
        assert!(content < link && link < disclaimer);
    }

    #[test]
    fn a_link_works_once_then_sends_to_the_failure_url() {
        let mut outbox = Outbox::default();
        outbox.send(draft(true), "http://h", "tok".into(), 0, 1000);
        assert_eq!(
            outbox.open_link("tok", 500),
            LinkOutcome::Verified {
                identity: "a+b@example.com".into(),
                redirect: Some("https://x/ok".into())
            }
        );
        assert_eq!(
            outbox.open_link("tok", 600),
            LinkOutcome::Invalid {
                redirect: Some("https://x/no".into())
            }
        );
        assert_eq!(
            outbox.open_link("nope", 600),
            LinkOutcome::Invalid { redirect: None }
        );
    }

    #[test]
    fn an_expired_link_fails_the_identity() {
        let mut outbox = Outbox::default();
        outbox.send(draft(false), "http://h", "tok".into(), 0, 1000);
        assert_eq!(
            outbox.open_link("tok", 1001),
            LinkOutcome::Expired {
                identity: "a+b@example.com".into(),
                redirect: None
            }
        );
    }
}
