//! Custom verification email templates: the one `Template` type (the state file's, the seed
//! file's and the API's), and the template actions: create, get, update (partial), delete and
//! list, with SES's rules and limits.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::identities::{not_verified, Identities};
use crate::query::{next_token_xml, sender, Failure, Page, Params};
use crate::xml::escape;

/// SES's limits.
const MAX_TEMPLATES: usize = 50;
const MAX_CONTENT_BYTES: usize = 10 * 1024 * 1024;

/// A custom verification email template, as `CreateCustomVerificationEmailTemplate` takes it.
/// The state file uses the API's names; the seed file (`--config`) may use the short ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Template {
    #[serde(alias = "name")]
    pub template_name: String,
    #[serde(alias = "from")]
    pub from_email_address: String,
    #[serde(alias = "subject")]
    pub template_subject: String,
    #[serde(alias = "content")]
    pub template_content: String,
    #[serde(rename = "SuccessRedirectionURL", alias = "success_url")]
    pub success_redirection_url: String,
    #[serde(rename = "FailureRedirectionURL", alias = "failure_url")]
    pub failure_redirection_url: String,
}

impl Template {
    /// The template as XML elements, one per line at `indent`, in SES's order; the content only
    /// `with_content` (a listing leaves it out).
    fn elements(&self, with_content: bool, indent: &str) -> String {
        [
            ("TemplateName", Some(&self.template_name)),
            ("FromEmailAddress", Some(&self.from_email_address)),
            ("TemplateSubject", Some(&self.template_subject)),
            (
                "TemplateContent",
                with_content.then_some(&self.template_content),
            ),
            ("SuccessRedirectionURL", Some(&self.success_redirection_url)),
            ("FailureRedirectionURL", Some(&self.failure_redirection_url)),
        ]
        .into_iter()
        .filter_map(|(name, value)| {
            value.map(|v| format!("\n{indent}<{name}>{}</{name}>", escape(v)))
        })
        .collect()
    }
}

/// Every template, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Templates(BTreeMap<String, Template>);

/// Who may send: the verified identities, and the region (for the error message).
pub struct Senders<'a> {
    pub identities: &'a Identities,
    pub region: &'a str,
}

impl Templates {
    pub fn find(&self, name: &str) -> Result<&Template, Failure> {
        self.0.get(name).ok_or_else(|| {
            sender(
                "CustomVerificationEmailTemplateDoesNotExist",
                format!("Template <{name}> does not exist"),
            )
        })
    }

    /// Adds `template` unless one of that name exists (seeding keeps stored templates).
    pub fn seed(&mut self, template: &Template) {
        self.0
            .entry(template.template_name.clone())
            .or_insert_with(|| template.clone());
    }

    pub fn create(&mut self, p: &Params, senders: &Senders) -> Result<(), Failure> {
        let template = Template {
            template_name: p.require("TemplateName")?.to_string(),
            from_email_address: p.require("FromEmailAddress")?.to_string(),
            template_subject: p.require("TemplateSubject")?.to_string(),
            template_content: p.require("TemplateContent")?.to_string(),
            success_redirection_url: p.require("SuccessRedirectionURL")?.to_string(),
            failure_redirection_url: p.require("FailureRedirectionURL")?.to_string(),
        };
        if self.0.contains_key(&template.template_name) {
            return Err(sender(
                "CustomVerificationEmailTemplateAlreadyExists",
                format!(
                    "Custom verification email template {} already exists.",
                    template.template_name
                ),
            ));
        }
        check(&template, senders)?;
        if self.0.len() >= MAX_TEMPLATES {
            return Err(sender(
                "LimitExceeded",
                format!("You have reached the limit of {MAX_TEMPLATES} custom verification email templates."),
            ));
        }
        self.0.insert(template.template_name.clone(), template);
        Ok(())
    }

    pub fn update(&mut self, p: &Params, senders: &Senders) -> Result<(), Failure> {
        let name = p.require("TemplateName")?;
        let mut template = self.find(name)?.clone();
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
        check(&template, senders)?;
        self.0.insert(name.to_string(), template);
        Ok(())
    }

    pub fn delete(&mut self, p: &Params) -> Result<(), Failure> {
        self.0.remove(p.require("TemplateName")?);
        Ok(())
    }

    /// `GetCustomVerificationEmailTemplate`'s result.
    pub fn get_xml(&self, p: &Params) -> Result<String, Failure> {
        let t = self.find(p.require("TemplateName")?)?;
        Ok(format!("{}\n  ", t.elements(true, "    ")))
    }

    /// `ListCustomVerificationEmailTemplates`' result: no content, in name order, paged.
    pub fn list_xml(&self, p: &Params) -> Result<String, Failure> {
        let page = Page::from_params(p, "MaxResults", 1..=50, 50)?;
        let mut names = self.0.range(page.start..);
        let members: String = names
            .by_ref()
            .take(page.size)
            .map(|(_, t)| {
                format!(
                    "\n      <member>{}\n      </member>",
                    t.elements(false, "        ")
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
}

/// The same rules for create and update.
fn check(t: &Template, senders: &Senders) -> Result<(), Failure> {
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
    if !senders.identities.is_verified_sender(&t.from_email_address) {
        return Err(not_verified(senders.region, &t.from_email_address));
    }
    Ok(())
}
