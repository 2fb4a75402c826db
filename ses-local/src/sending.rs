//! Sending: the two actions that mail a verification link (`SendCustomVerificationEmail` with a
//! template, `VerifyEmailIdentity` with SES's own text), each making its identity Pending, and
//! the outbox the mails go to.

use crate::identities::{not_verified, Identities};
use crate::mail::{Draft, Outbox, Redirects, TemplateUse};
use crate::query::{check_address, sender, Failure, Params};
use crate::templates::Templates;
use crate::xml::escape;

/// What a mail needs from the call: when, where links point, and fresh random ids.
pub struct Delivery<'a> {
    pub now_ms: u64,
    /// Where ses-local is reachable, for verification links.
    pub base_url: &'a str,
    /// A fresh random id (message ids and link tokens).
    pub new_id: &'a mut dyn FnMut() -> String,
}

/// When a custom verification send's identity appears. AWS's documents disagree: the API
/// reference says the send adds it, the FAQ that it is created only when the link is clicked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum IdentityOn {
    /// The send adds it as Pending (and counts it against the quota).
    Send,
    /// Only the click creates it (as Success); until then GetIdentityVerificationAttributes
    /// leaves it out.
    Click,
}

pub struct Sending {
    pub outbox: Outbox,
    /// The configuration sets a send may name (from the seed file).
    configuration_sets: Vec<String>,
    link_ttl_ms: u64,
    /// The region's identity quota (SES: 10,000).
    max_identities: usize,
    identity_on: IdentityOn,
}

impl Sending {
    pub fn new(
        configuration_sets: Vec<String>,
        link_ttl_ms: u64,
        max_identities: usize,
        identity_on: IdentityOn,
    ) -> Self {
        Self {
            outbox: Outbox::default(),
            configuration_sets,
            link_ttl_ms,
            max_identities,
            identity_on,
        }
    }

    /// `SendCustomVerificationEmail`: the MessageId.
    pub fn send_custom_verification_email(
        &mut self,
        p: &Params,
        templates: &Templates,
        identities: &mut Identities,
        region: &str,
        delivery: &mut Delivery,
    ) -> Result<String, Failure> {
        let template_name = p.require("TemplateName")?;
        let email = p.get("EmailAddress").unwrap_or_default();
        check_address(email)?;
        let template = templates.find(template_name)?.clone();
        if !identities.is_verified_sender(&template.from_email_address) {
            return Err(not_verified(region, &template.from_email_address));
        }
        let configuration_set = p.get("ConfigurationSetName");
        if let Some(set) = configuration_set {
            if !self.configuration_sets.iter().any(|s| s == set) {
                return Err(sender(
                    "ConfigurationSetDoesNotExist",
                    format!("Configuration set <{set}> does not exist."),
                ));
            }
        }
        if self.identity_on == IdentityOn::Send {
            identities.add_pending(email, self.max_identities)?;
        }
        let message_id = crate::ids::message_id(&(delivery.new_id)());
        let draft = Draft {
            message_id: message_id.clone(),
            email_address: email.to_string(),
            from_email_address: template.from_email_address,
            subject: template.template_subject,
            content_html: template.template_content,
            template: Some(TemplateUse {
                name: template.template_name,
                redirects: Redirects {
                    success: template.success_redirection_url,
                    failure: template.failure_redirection_url,
                },
            }),
            configuration_set_name: configuration_set.map(str::to_string),
        };
        self.deliver(draft, delivery);
        Ok(message_id)
    }

    /// `VerifyEmailIdentity`: SES's own verification mail.
    pub fn verify_email_identity(
        &mut self,
        p: &Params,
        identities: &mut Identities,
        region: &str,
        delivery: &mut Delivery,
    ) -> Result<(), Failure> {
        let email = p.require("EmailAddress")?;
        check_address(email)?;
        identities.add_pending(email, self.max_identities)?;
        let region = region.to_uppercase();
        let draft = Draft {
            message_id: crate::ids::message_id(&(delivery.new_id)()),
            email_address: email.to_string(),
            from_email_address: "no-reply-aws@amazon.com".into(),
            subject: format!("Amazon Web Services – Email Address Verification Request in region {region}"),
            content_html: format!(
                "<p>Dear Amazon Web Services Customer,</p><p>We have received a request to authorize this email \
                 address for use with Amazon SES in region {}. To confirm, click the link below.</p>",
                escape(&region)
            ),
            template: None,
            configuration_set_name: None,
        };
        self.deliver(draft, delivery);
        Ok(())
    }

    fn deliver(&mut self, draft: Draft, delivery: &mut Delivery) {
        let token = (delivery.new_id)();
        self.outbox.send(
            draft,
            delivery.base_url,
            token,
            delivery.now_ms,
            self.link_ttl_ms,
        );
    }
}
