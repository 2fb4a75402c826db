//! `Ses`: one signed Query API call, without HTTP. It names the [`Action`], applies SES's
//! per-action rate limit (`Throttling`), runs the action in its concern (`templates`,
//! `identities`, `sending`), and on failure puts the store back as it was; a changed store is
//! saved before the answer. Time and randomness are passed in. Faults and the request log belong
//! to the server, not here.

use std::collections::HashMap;

use crate::action::Action;
use crate::mail::LinkOutcome;
use crate::query::{Failure, Params};
use crate::sending::{Delivery, IdentityOn, Sending};
use crate::store::{StateFile, Store};
use crate::templates::Senders;
use crate::xml::{self, escape};

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
    pub fn error(status: u16, code: &str, message: &str, request_id: &str) -> Self {
        let kind = if status >= 500 { "Receiver" } else { "Sender" };
        Self {
            status,
            body: xml::error(kind, code, message, request_id),
            code: Some(code.to_string()),
            message_id: None,
        }
    }
}

/// Per-call inputs from the outside world.
pub struct Call<'a> {
    pub now_us: u64,
    pub request_id: &'a str,
    /// Where ses-local is reachable, for verification links.
    pub base_url: &'a str,
    /// A fresh random id (message ids and link tokens).
    pub new_id: &'a mut dyn FnMut() -> String,
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub throttle_ms: u64,
    pub link_ttl_ms: u64,
    pub max_identities: usize,
    pub identity_on: IdentityOn,
    /// What `GetSendQuota` reports as `Max24HourSend` (SES: 200 in the sandbox).
    pub max_24_hour_send: u64,
}

/// What a successful action gives back: its `<…Result>` content and, for a send, the MessageId.
struct Done {
    result_xml: String,
    message_id: Option<String>,
}

impl Done {
    fn empty(_: ()) -> Self {
        Self::result(String::new())
    }

    fn result(result_xml: String) -> Self {
        Self {
            result_xml,
            message_id: None,
        }
    }
}

pub struct Ses {
    store: Store,
    state_file: Option<StateFile>,
    sending: Sending,
    region: String,
    throttle_ms: u64,
    max_24_hour_send: u64,
    last_accepted_us: HashMap<Action, u64>,
}

impl Ses {
    pub fn new(
        store: Store,
        state_file: Option<StateFile>,
        configuration_sets: Vec<String>,
        region: &str,
        limits: Limits,
    ) -> Self {
        Self {
            store,
            state_file,
            sending: Sending::new(
                configuration_sets,
                limits.link_ttl_ms,
                limits.max_identities,
                limits.identity_on,
            ),
            region: region.to_string(),
            throttle_ms: limits.throttle_ms,
            max_24_hour_send: limits.max_24_hour_send,
            last_accepted_us: HashMap::new(),
        }
    }

    pub fn outbox(&self) -> &crate::mail::Outbox {
        &self.sending.outbox
    }

    /// Runs one signed Query API call.
    pub fn handle(&mut self, params: &Params, call: &mut Call) -> Answer {
        let Some(action_name) = params.get("Action") else {
            return Answer::error(
                400,
                "MissingAction",
                "Could not find operation: the request has no Action parameter.",
                call.request_id,
            );
        };
        let Some(action) = Action::parse(action_name) else {
            let message = format!("The action {action_name} is not valid for this web service.");
            return Answer::error(400, "InvalidAction", &message, call.request_id);
        };
        if let Some(last) = self.last_accepted_us.get(&action) {
            if call.now_us < last + self.throttle_ms * 1000 {
                return Answer::error(
                    400,
                    "Throttling",
                    "Maximum sending rate exceeded.",
                    call.request_id,
                );
            }
        }
        let store_before = self.store.clone();
        let result = self.run(action, params, call).and_then(|done| {
            if self.store != store_before {
                self.save().map_err(|message| Failure {
                    status: 500,
                    code: "InternalFailure",
                    message,
                })?;
            }
            Ok(done)
        });
        match result {
            Ok(done) => {
                self.last_accepted_us.insert(action, call.now_us);
                Answer {
                    status: 200,
                    body: xml::success(action.name(), &done.result_xml, call.request_id),
                    code: None,
                    message_id: done.message_id,
                }
            }
            Err(failure) => {
                self.store = store_before;
                Answer::error(
                    failure.status,
                    failure.code,
                    &failure.message,
                    call.request_id,
                )
            }
        }
    }

    fn save(&self) -> Result<(), String> {
        self.state_file
            .as_ref()
            .map_or(Ok(()), |file| file.save(&self.store))
    }

    fn run(&mut self, action: Action, p: &Params, call: &mut Call) -> Result<Done, Failure> {
        let Store {
            templates,
            identities,
        } = &mut self.store;
        let region = self.region.as_str();
        let mut delivery = Delivery {
            now_ms: call.now_us / 1000,
            base_url: call.base_url,
            new_id: &mut *call.new_id,
        };
        match action {
            Action::CreateCustomVerificationEmailTemplate => templates
                .create(p, &Senders { identities, region })
                .map(Done::empty),
            Action::GetCustomVerificationEmailTemplate => templates.get_xml(p).map(Done::result),
            Action::UpdateCustomVerificationEmailTemplate => templates
                .update(p, &Senders { identities, region })
                .map(Done::empty),
            Action::DeleteCustomVerificationEmailTemplate => templates.delete(p).map(Done::empty),
            Action::ListCustomVerificationEmailTemplates => templates.list_xml(p).map(Done::result),
            Action::VerifyEmailIdentity => self
                .sending
                .verify_email_identity(p, identities, region, &mut delivery)
                .map(Done::empty),
            Action::GetIdentityVerificationAttributes => {
                identities.attributes_xml(p).map(Done::result)
            }
            Action::DeleteIdentity => identities.delete(p).map(Done::empty),
            Action::ListIdentities => identities.list_xml(p).map(Done::result),
            Action::SendCustomVerificationEmail => self
                .sending
                .send_custom_verification_email(p, templates, identities, region, &mut delivery)
                .map(|id| Done {
                    result_xml: format!("\n    <MessageId>{}</MessageId>\n  ", escape(&id)),
                    message_id: Some(id),
                }),
            Action::GetSendQuota => Ok(Done::result(self.send_quota_xml(call.now_us / 1000))),
        }
    }

    /// `GetSendQuota`: the configured daily quota, the rate the throttle allows, and the mails
    /// of the last 24 hours.
    fn send_quota_xml(&self, now_ms: u64) -> String {
        let day_ago = now_ms.saturating_sub(86_400_000);
        let sent = self
            .sending
            .outbox
            .newest_first()
            .filter(|mail| mail.sent_at_ms >= day_ago)
            .count();
        let rate = if self.throttle_ms == 0 {
            1000.0
        } else {
            1000.0 / self.throttle_ms as f64
        };
        format!(
            "\n    <Max24HourSend>{:.1}</Max24HourSend>\n    <MaxSendRate>{rate:.1}</MaxSendRate>\n    <SentLast24Hours>{sent}.0</SentLast24Hours>\n  ",
            self.max_24_hour_send as f64
        )
    }

    /// Opens a verification link and applies its outcome to the identity.
    pub fn open_link(&mut self, token: &str, now_ms: u64) -> Result<LinkOutcome, String> {
        let outcome = self.sending.outbox.open_link(token, now_ms);
        let before = self.store.identities.clone();
        self.store.identities.apply_link(&outcome);
        if self.store.identities != before {
            self.save()?;
        }
        Ok(outcome)
    }
}
