//! The template as the repository keeps it (`templates/template.toml` and its HTML), and the two
//! commands that bring one region of an SES account in line with it (`each_region` runs them in
//! every target region and prints what they found).
//!
//! Invariant: `template` is idempotent (create, else update to exactly the file's values), and
//! `check` changes nothing except starting the From address's verification when SES has none.

use std::path::Path;

use serde::Deserialize;

use crate::aws::{first_text, texts, CallError, Client};

/// SES's largest template (10 MB).
const MAX_HTML_BYTES: usize = 10 * 1024 * 1024;
/// A sandbox account may send 200 messages a day; production access raises it.
const SANDBOX_DAILY_QUOTA: f64 = 200.0;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    name: String,
    from: String,
    subject: String,
    html: String,
    success_url: String,
    failure_url: String,
}

/// Values given on the command line in place of the file's (`make dev` points the URLs at the
/// local Worker).
#[derive(Default)]
pub struct Overrides {
    pub from: Option<String>,
    pub success_url: Option<String>,
    pub failure_url: Option<String>,
}

/// Everything SES needs for the template.
pub struct TemplateFile {
    pub name: String,
    pub from: String,
    pub subject: String,
    pub html: String,
    pub success_url: String,
    pub failure_url: String,
}

impl TemplateFile {
    pub fn load(dir: &Path, overrides: &Overrides) -> Result<Self, String> {
        let path = dir.join("template.toml");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let settings: Settings =
            toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let html_path = dir.join(&settings.html);
        let html = std::fs::read_to_string(&html_path)
            .map_err(|e| format!("cannot read {}: {e}", html_path.display()))?;
        if html.len() > MAX_HTML_BYTES {
            return Err(format!("{} is over SES's 10 MB", html_path.display()));
        }
        let file = Self {
            name: settings.name,
            from: overrides.from.clone().unwrap_or(settings.from),
            subject: settings.subject,
            html,
            success_url: overrides
                .success_url
                .clone()
                .unwrap_or(settings.success_url),
            failure_url: overrides
                .failure_url
                .clone()
                .unwrap_or(settings.failure_url),
        };
        for (field, value) in [
            ("name", &file.name),
            ("from", &file.from),
            ("subject", &file.subject),
            ("success_url", &file.success_url),
            ("failure_url", &file.failure_url),
        ] {
            if value.trim().is_empty() {
                return Err(format!("{}: {field} is empty", path.display()));
            }
        }
        Ok(file)
    }

    fn params(&self) -> [(&'static str, &str); 6] {
        [
            ("TemplateName", &self.name),
            ("FromEmailAddress", &self.from),
            ("TemplateSubject", &self.subject),
            ("TemplateContent", &self.html),
            ("SuccessRedirectionURL", &self.success_url),
            ("FailureRedirectionURL", &self.failure_url),
        ]
    }
}

/// Creates the template, or updates it when SES already has one of that name: which it did,
/// `"created"` or `"updated"`.
pub fn create_or_update(client: &Client, file: &TemplateFile) -> Result<&'static str, String> {
    match client.call("CreateCustomVerificationEmailTemplate", &file.params()) {
        Ok(_) => Ok("created"),
        Err(CallError::Ses { code, .. })
            if code == "CustomVerificationEmailTemplateAlreadyExists" =>
        {
            client
                .call("UpdateCustomVerificationEmailTemplate", &file.params())
                .map_err(|e| e.to_string())?;
            Ok("updated")
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Each requirement in the client's region, `ok` or not, with its line: what it is, or what to
/// do. Signups can be sent there when every one is ok.
pub fn check(client: &Client, file: &TemplateFile) -> Result<Vec<Verdict>, String> {
    Ok(vec![
        check_template(client, file)?,
        check_from(client, &file.from)?,
        check_production_access(client)?,
    ])
}

/// One requirement: met or not, and the line that says so.
pub type Verdict = (bool, String);

fn check_template(client: &Client, file: &TemplateFile) -> Result<Verdict, String> {
    let xml = match client.call(
        "GetCustomVerificationEmailTemplate",
        &[("TemplateName", &file.name)],
    ) {
        Ok(xml) => xml,
        Err(CallError::Ses { code, .. })
            if code == "CustomVerificationEmailTemplateDoesNotExist" =>
        {
            return Ok((
                false,
                format!(
                    "template {}: not in SES; run `make ses-template`",
                    file.name
                ),
            ))
        }
        Err(e) => return Err(e.to_string()),
    };
    let stored = |element: &str| first_text(&xml, element).unwrap_or_default();
    let differs: Vec<&str> = [
        ("from", stored("FromEmailAddress") == file.from),
        ("subject", stored("TemplateSubject") == file.subject),
        (
            "success URL",
            stored("SuccessRedirectionURL") == file.success_url,
        ),
        (
            "failure URL",
            stored("FailureRedirectionURL") == file.failure_url,
        ),
    ]
    .into_iter()
    .filter(|(_, same)| !same)
    .map(|(field, _)| field)
    .collect();
    Ok(if differs.is_empty() {
        (
            true,
            format!("template {}: in SES and matches templates/", file.name),
        )
    } else {
        (
            false,
            format!(
                "template {}: its {} differ from templates/; run `make ses-template`",
                file.name,
                differs.join(", ")
            ),
        )
    })
}

/// The From address is usable when it, or its domain, is a verified identity. With neither
/// verified nor pending, this starts the address's verification.
fn check_from(client: &Client, from: &str) -> Result<Verdict, String> {
    let domain = from.rsplit_once('@').map_or("", |(_, d)| d);
    let xml = client
        .call(
            "GetIdentityVerificationAttributes",
            &[
                ("Identities.member.1", from),
                ("Identities.member.2", domain),
            ],
        )
        .map_err(|e| e.to_string())?;
    let keys = texts(&xml, "key");
    let statuses = texts(&xml, "VerificationStatus");
    let status_of = |identity: &str| {
        keys.iter()
            .zip(&statuses)
            .find(|(key, _)| key.eq_ignore_ascii_case(identity))
            .map(|(_, status)| status.as_str())
    };
    if status_of(from) == Some("Success") || status_of(domain) == Some("Success") {
        return Ok((true, format!("From {from}: verified")));
    }
    if status_of(from) == Some("Pending") {
        return Ok((
            false,
            format!("From {from}: verification pending; click the link SES mailed to it"),
        ));
    }
    client
        .call("VerifyEmailIdentity", &[("EmailAddress", from)])
        .map_err(|e| e.to_string())?;
    Ok((
        false,
        format!("From {from}: not verified; SES has just mailed it a verification link (or verify its domain)"),
    ))
}

fn check_production_access(client: &Client) -> Result<Verdict, String> {
    let xml = match client.call("GetSendQuota", &[]) {
        Ok(xml) => xml,
        Err(CallError::Ses { code, message }) => {
            return Ok((false, format!("production access: cannot tell ({code}: {message}); allow ses:GetSendQuota or check the SES console")))
        }
        Err(e) => return Err(e.to_string()),
    };
    let quota: f64 = first_text(&xml, "Max24HourSend")
        .and_then(|q| q.parse().ok())
        .ok_or("GetSendQuota answered without Max24HourSend")?;
    Ok(if quota > SANDBOX_DAILY_QUOTA {
        (
            true,
            format!("production access: granted ({quota} messages a day)"),
        )
    } else {
        (false, format!("production access: sandbox ({quota} a day); SES refuses custom verification emails with ProductionAccessNotGranted until you request production access for this region"))
    })
}
