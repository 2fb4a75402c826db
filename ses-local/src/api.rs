//! The SES Query API behaviour, without HTTP: template CRUD, identities, and
//! SendCustomVerificationEmail, each rate limited like SES, with SES's error codes. Time and
//! randomness are passed in.

use std::collections::HashMap;

use serde::Serialize;

use crate::mail::{Draft, LinkOutcome, Outbox};
use crate::store::{StateFile, Store, Template, VerificationStatus};
use crate::xml::{self, escape};

/// SES's limits.
const MAX_TEMPLATES: usize = 50;
const MAX_CONTENT_BYTES: usize = 10 * 1024 * 1024;
const MAX_IDENTITIES_PER_CALL: usize = 100;

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

/// An SES error before it is put in its envelope.
#[derive(Debug)]
struct Failure {
    status: u16,
    code: &'static str,
    message: String,
}

fn sender(code: &'static str, message: impl Into<String>) -> Failure {
    Failure {
        status: 400,
        code,
        message: message.into(),
    }
}

/// Everything that reached ses-local's Query API, and what it answered.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestRecord {
    pub request_id: String,
    /// Arrival time in Unix microseconds.
    pub received_at_us: u64,
    pub action: Option<String>,
    pub email_address: Option<String>,
    /// `valid`, the SigV4 failure code, or `unchecked` when a fault answered first.
    pub signature: String,
    /// The injected fault that shaped the answer, if any.
    pub fault: Option<String>,
    pub status: u16,
    pub code: Option<String>,
    pub message_id: Option<String>,
}

/// The decoded form parameters of one call.
pub struct Params(pub Vec<(String, String)>);

impl Params {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn require(&self, name: &str) -> Result<&str, Failure> {
        self.get(name).ok_or_else(|| {
            sender(
                "MissingParameter",
                format!("The request must contain the parameter {name}."),
            )
        })
    }

    /// `Prefix.member.1`, `Prefix.member.2`, … in order.
    fn members(&self, prefix: &str) -> Vec<&str> {
        (1..)
            .map_while(|i| self.get(&format!("{prefix}.member.{i}")))
            .collect()
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

pub struct Limits {
    pub throttle_ms: u64,
    pub link_ttl_ms: u64,
}

pub struct Ses {
    pub store: Store,
    state_file: Option<StateFile>,
    configuration_sets: Vec<String>,
    region: String,
    limits: Limits,
    last_accepted_us: HashMap<&'static str, u64>,
    pub outbox: Outbox,
    pub requests: Vec<RequestRecord>,
    pub faults: crate::faults::Faults,
}

/// Every action ses-local implements.
const ACTIONS: [&str; 10] = [
    "CreateCustomVerificationEmailTemplate",
    "GetCustomVerificationEmailTemplate",
    "UpdateCustomVerificationEmailTemplate",
    "DeleteCustomVerificationEmailTemplate",
    "ListCustomVerificationEmailTemplates",
    "VerifyEmailIdentity",
    "GetIdentityVerificationAttributes",
    "DeleteIdentity",
    "ListIdentities",
    "SendCustomVerificationEmail",
];

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
            configuration_sets,
            region: region.to_string(),
            limits,
            last_accepted_us: HashMap::new(),
            outbox: Outbox::default(),
            requests: Vec::new(),
            faults: Default::default(),
        }
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
        let Some(&action) = ACTIONS.iter().find(|a| **a == action_name) else {
            let message = format!("The action {action_name} is not valid for this web service.");
            return Answer::error(400, "InvalidAction", &message, call.request_id);
        };
        if let Some(last) = self.last_accepted_us.get(action) {
            if call.now_us < last + self.limits.throttle_ms * 1000 {
                return Answer::error(
                    400,
                    "Throttling",
                    "Maximum sending rate exceeded.",
                    call.request_id,
                );
            }
        }
        let store_before = self.store.clone();
        let result = self.run(action, params, call).and_then(|result| {
            if self.store != store_before {
                self.save().map_err(|message| Failure {
                    status: 500,
                    code: "InternalFailure",
                    message,
                })?;
            }
            Ok(result)
        });
        match result {
            Ok((result_xml, message_id)) => {
                self.last_accepted_us.insert(action, call.now_us);
                Answer {
                    status: 200,
                    body: xml::success(action, &result_xml, call.request_id),
                    code: None,
                    message_id,
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

    /// The action's `<…Result>` content and, for a send, its MessageId.
    fn run(
        &mut self,
        action: &str,
        p: &Params,
        call: &mut Call,
    ) -> Result<(String, Option<String>), Failure> {
        let empty = |()| (String::new(), None);
        match action {
            "CreateCustomVerificationEmailTemplate" => self.create_template(p).map(empty),
            "GetCustomVerificationEmailTemplate" => self.get_template(p).map(|x| (x, None)),
            "UpdateCustomVerificationEmailTemplate" => self.update_template(p).map(empty),
            "DeleteCustomVerificationEmailTemplate" => {
                self.store.templates.remove(p.require("TemplateName")?);
                Ok((String::new(), None))
            }
            "ListCustomVerificationEmailTemplates" => self.list_templates(p).map(|x| (x, None)),
            "VerifyEmailIdentity" => self.verify_email_identity(p, call).map(empty),
            "GetIdentityVerificationAttributes" => self.identity_attributes(p).map(|x| (x, None)),
            "DeleteIdentity" => {
                self.store.identities.remove(p.require("Identity")?);
                Ok((String::new(), None))
            }
            "ListIdentities" => self.list_identities(p).map(|x| (x, None)),
            _ => self.send_custom_verification_email(p, call).map(|id| {
                let result = format!("\n    <MessageId>{}</MessageId>\n  ", escape(&id));
                (result, Some(id))
            }),
        }
    }

    fn create_template(&mut self, p: &Params) -> Result<(), Failure> {
        let template = Template {
            template_name: p.require("TemplateName")?.to_string(),
            from_email_address: p.require("FromEmailAddress")?.to_string(),
            template_subject: p.require("TemplateSubject")?.to_string(),
            template_content: p.require("TemplateContent")?.to_string(),
            success_redirection_url: p.require("SuccessRedirectionURL")?.to_string(),
            failure_redirection_url: p.require("FailureRedirectionURL")?.to_string(),
        };
        if self.store.templates.contains_key(&template.template_name) {
            return Err(sender(
                "CustomVerificationEmailTemplateAlreadyExists",
                format!(
                    "Custom verification email template {} already exists.",
                    template.template_name
                ),
            ));
        }
        self.check_template(&template)?;
        if self.store.templates.len() >= MAX_TEMPLATES {
            return Err(sender(
                "LimitExceeded",
                format!("You have reached the limit of {MAX_TEMPLATES} custom verification email templates."),
            ));
        }
        self.store
            .templates
            .insert(template.template_name.clone(), template);
        Ok(())
    }

    fn update_template(&mut self, p: &Params) -> Result<(), Failure> {
        let name = p.require("TemplateName")?;
        let mut template = self.template(name)?.clone();
        let fields: [(&str, &mut String); 5] = [
            ("FromEmailAddress", &mut template.from_email_address),
            ("TemplateSubject", &mut template.template_subject),
            ("TemplateContent", &mut template.template_content),
            (
                "SuccessRedirectionURL",
                &mut template.success_redirection_url,
            ),
            (
                "FailureRedirectionURL",
                &mut template.failure_redirection_url,
            ),
        ];
        for (param, field) in fields {
            if let Some(value) = p.get(param) {
                *field = value.to_string();
            }
        }
        self.check_template(&template)?;
        self.store.templates.insert(name.to_string(), template);
        Ok(())
    }

    /// The same rules for create and update.
    fn check_template(&self, t: &Template) -> Result<(), Failure> {
        for (name, value) in [
            ("TemplateName", &t.template_name),
            ("TemplateSubject", &t.template_subject),
            ("TemplateContent", &t.template_content),
        ] {
            if value.trim().is_empty() {
                return Err(sender(
                    "InvalidParameterValue",
                    format!("{name} must not be empty."),
                ));
            }
        }
        for (name, url) in [
            ("SuccessRedirectionURL", &t.success_redirection_url),
            ("FailureRedirectionURL", &t.failure_redirection_url),
        ] {
            let valid = url::Url::parse(url)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
            if !valid {
                return Err(sender(
                    "InvalidParameterValue",
                    format!("{name} is not a valid URL: {url}"),
                ));
            }
        }
        if t.template_content.len() > MAX_CONTENT_BYTES {
            return Err(sender(
                "InvalidParameterValue",
                "The template content must be less than 10 MB.",
            ));
        }
        let lowered = t.template_content.to_ascii_lowercase();
        if ["<script", "javascript:", "<iframe", "<object", "<embed"]
            .iter()
            .any(|bad| lowered.contains(bad))
        {
            return Err(sender(
                "CustomVerificationEmailInvalidContent",
                "The template content contains unsupported HTML (scripts, frames or embedded objects).",
            ));
        }
        if !self.store.is_verified_sender(&t.from_email_address) {
            return Err(self.not_verified(&t.from_email_address));
        }
        Ok(())
    }

    fn not_verified(&self, address: &str) -> Failure {
        sender(
            "FromEmailAddressNotVerified",
            format!(
                "Email address is not verified. The following identities failed the check in region {}: {address}",
                self.region.to_uppercase()
            ),
        )
    }

    fn template(&self, name: &str) -> Result<&Template, Failure> {
        self.store.templates.get(name).ok_or_else(|| {
            sender(
                "CustomVerificationEmailTemplateDoesNotExist",
                format!("Template <{name}> does not exist"),
            )
        })
    }

    fn get_template(&self, p: &Params) -> Result<String, Failure> {
        let t = self.template(p.require("TemplateName")?)?;
        Ok(format!(
            "\n    <TemplateName>{}</TemplateName>\n    <FromEmailAddress>{}</FromEmailAddress>\n    \
             <TemplateSubject>{}</TemplateSubject>\n    <TemplateContent>{}</TemplateContent>\n    \
             <SuccessRedirectionURL>{}</SuccessRedirectionURL>\n    <FailureRedirectionURL>{}</FailureRedirectionURL>\n  ",
            escape(&t.template_name),
            escape(&t.from_email_address),
            escape(&t.template_subject),
            escape(&t.template_content),
            escape(&t.success_redirection_url),
            escape(&t.failure_redirection_url),
        ))
    }

    fn list_templates(&self, p: &Params) -> Result<String, Failure> {
        let (max, start) = page_params(p, "MaxResults", 1..=50, 50)?;
        let mut names = self.store.templates.range(start..);
        let members: String = names
            .by_ref()
            .take(max)
            .map(|(_, t)| {
                format!(
                    "\n      <member>\n        <TemplateName>{}</TemplateName>\n        <FromEmailAddress>{}</FromEmailAddress>\n        \
                     <TemplateSubject>{}</TemplateSubject>\n        <SuccessRedirectionURL>{}</SuccessRedirectionURL>\n        \
                     <FailureRedirectionURL>{}</FailureRedirectionURL>\n      </member>",
                    escape(&t.template_name),
                    escape(&t.from_email_address),
                    escape(&t.template_subject),
                    escape(&t.success_redirection_url),
                    escape(&t.failure_redirection_url),
                )
            })
            .collect();
        let next = names
            .next()
            .map(|(name, _)| next_token_xml(name))
            .unwrap_or_default();
        Ok(format!(
            "\n    <CustomVerificationEmailTemplates>{members}\n    </CustomVerificationEmailTemplates>{next}\n  "
        ))
    }

    fn verify_email_identity(&mut self, p: &Params, call: &mut Call) -> Result<(), Failure> {
        let email = p.require("EmailAddress")?;
        check_address(email)?;
        self.mark_pending(email);
        let region = self.region.to_uppercase();
        let draft = Draft {
            message_id: new_message_id(call),
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
        self.deliver(draft, call);
        Ok(())
    }

    fn identity_attributes(&self, p: &Params) -> Result<String, Failure> {
        let identities = p.members("Identities");
        if identities.len() > MAX_IDENTITIES_PER_CALL {
            return Err(sender(
                "InvalidParameterValue",
                format!("At most {MAX_IDENTITIES_PER_CALL} identities may be requested at once."),
            ));
        }
        let entries: String = identities
            .iter()
            .filter_map(|identity| self.store.identities.get(*identity).map(|status| (identity, status)))
            .map(|(identity, status)| {
                format!(
                    "\n      <entry>\n        <key>{}</key>\n        <value>\n          <VerificationStatus>{}</VerificationStatus>\n        </value>\n      </entry>",
                    escape(identity),
                    status.as_str()
                )
            })
            .collect();
        Ok(format!(
            "\n    <VerificationAttributes>{entries}\n    </VerificationAttributes>\n  "
        ))
    }

    fn list_identities(&self, p: &Params) -> Result<String, Failure> {
        let kind = p.get("IdentityType");
        if kind.is_some_and(|k| k != "EmailAddress" && k != "Domain") {
            return Err(sender(
                "InvalidParameterValue",
                "IdentityType must be EmailAddress or Domain.",
            ));
        }
        let (max, start) = page_params(p, "MaxItems", 1..=1000, 1000)?;
        let wanted = |identity: &str| match kind {
            Some("EmailAddress") => identity.contains('@'),
            Some("Domain") => !identity.contains('@'),
            _ => true,
        };
        let mut identities = self
            .store
            .identities
            .range(start..)
            .map(|(i, _)| i)
            .filter(|i| wanted(i));
        let members: String = identities
            .by_ref()
            .take(max)
            .map(|i| format!("\n      <member>{}</member>", escape(i)))
            .collect();
        let next = identities
            .next()
            .map(|i| next_token_xml(i))
            .unwrap_or_default();
        Ok(format!(
            "\n    <Identities>{members}\n    </Identities>{next}\n  "
        ))
    }

    fn send_custom_verification_email(
        &mut self,
        p: &Params,
        call: &mut Call,
    ) -> Result<String, Failure> {
        let template_name = p.require("TemplateName")?;
        let email = p.get("EmailAddress").unwrap_or_default();
        check_address(email)?;
        let template = self.template(template_name)?.clone();
        if !self.store.is_verified_sender(&template.from_email_address) {
            return Err(self.not_verified(&template.from_email_address));
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
        self.mark_pending(email);
        let message_id = new_message_id(call);
        let draft = Draft {
            message_id: message_id.clone(),
            email_address: email.to_string(),
            from_email_address: template.from_email_address,
            subject: template.template_subject,
            content_html: template.template_content,
            template: Some((
                template.template_name,
                template.success_redirection_url,
                template.failure_redirection_url,
            )),
            configuration_set_name: configuration_set.map(str::to_string),
        };
        self.deliver(draft, call);
        Ok(message_id)
    }

    /// A new or unverified identity becomes (or stays) Pending; a verified one stays verified.
    fn mark_pending(&mut self, identity: &str) {
        let status = self
            .store
            .identities
            .entry(identity.to_string())
            .or_insert(VerificationStatus::Pending);
        if *status == VerificationStatus::Failed {
            *status = VerificationStatus::Pending;
        }
    }

    fn deliver(&mut self, draft: Draft, call: &mut Call) {
        let token = (call.new_id)();
        let now_ms = call.now_us / 1000;
        self.outbox
            .send(draft, call.base_url, token, now_ms, self.limits.link_ttl_ms);
    }

    /// Opens a verification link and applies its outcome to the identity.
    pub fn open_link(&mut self, token: &str, now_ms: u64) -> Result<LinkOutcome, String> {
        let outcome = self.outbox.open_link(token, now_ms);
        let before = self.store.clone();
        match &outcome {
            LinkOutcome::Verified { identity, .. } => {
                self.store
                    .identities
                    .insert(identity.clone(), VerificationStatus::Success);
            }
            LinkOutcome::Expired { identity, .. } => {
                let status = self
                    .store
                    .identities
                    .entry(identity.clone())
                    .or_insert(VerificationStatus::Failed);
                if *status == VerificationStatus::Pending {
                    *status = VerificationStatus::Failed;
                }
            }
            LinkOutcome::Invalid { .. } => {}
        }
        if self.store != before {
            self.save()?;
        }
        Ok(outcome)
    }
}

fn new_message_id(call: &mut Call) -> String {
    let id = (call.new_id)();
    format!("0100{}-{}-000000", &id[..12.min(id.len())], id)
}

/// SES's own address check is loose: one `@`, something on each side, a dot in the domain, no spaces.
fn check_address(email: &str) -> Result<(), Failure> {
    if email.is_empty() {
        return Err(sender(
            "InvalidParameterValue",
            "Email address not specified.",
        ));
    }
    let plausible = email.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty()
            && domain.contains('.')
            && !domain.contains('@')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
    }) && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if plausible {
        Ok(())
    } else {
        Err(sender(
            "InvalidParameterValue",
            format!("Invalid email address<{email}>."),
        ))
    }
}

/// (page size, first key) from a size parameter and `NextToken`.
fn page_params(
    p: &Params,
    size_param: &str,
    range: std::ops::RangeInclusive<usize>,
    default: usize,
) -> Result<(usize, String), Failure> {
    let max = match p.get(size_param) {
        None => default,
        Some(raw) => raw
            .parse()
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(|| {
                sender(
                    "InvalidParameterValue",
                    format!(
                        "{size_param} must be between {} and {}.",
                        range.start(),
                        range.end()
                    ),
                )
            })?,
    };
    let start = match p.get("NextToken") {
        None => String::new(),
        Some(token) => hex::decode(token)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| sender("InvalidParameterValue", "The NextToken is not valid."))?,
    };
    Ok((max, start))
}

/// An opaque token naming the first item of the next page.
fn next_token_xml(next_key: &str) -> String {
    format!("\n    <NextToken>{}</NextToken>", hex::encode(next_key))
}
