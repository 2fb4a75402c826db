//! SES Query API calls from a workstation: standard AWS credentials, SigV4 signing (the Worker's
//! own signer), one blocking HTTPS POST per call, and the few XML fields the commands read.
//!
//! Invariant: no secret and no credential reaches stdout or stderr; errors name the variable or
//! the file that was wrong, and SES's own error code and message.

use std::path::PathBuf;

use signup_verify_ses::config::AwsCredentials;
use signup_verify_ses::reply::element_texts;
use signup_verify_ses::request::sign_headers;

const API_VERSION: &str = "2010-12-01";
const CONTENT_TYPE: &str = "application/x-www-form-urlencoded";

/// Which SES.
#[derive(Debug, Clone)]
pub struct Target {
    pub region: String,
    pub endpoint: String,
}

/// The environment's credentials, else the profile's from the shared credentials file.
pub fn credentials_from_environment() -> Result<AwsCredentials, String> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    if let (Some(id), Some(secret)) = (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
        return Ok(AwsCredentials {
            access_key_id: id,
            secret_access_key: secret.into(),
            session_token: var("AWS_SESSION_TOKEN").map(Into::into),
        });
    }
    let profile = var("AWS_PROFILE").unwrap_or_else(|| "default".into());
    let file = var("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .or_else(|| var("HOME").map(|home| PathBuf::from(home).join(".aws/credentials")))
        .ok_or("no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE")?;
    let text = std::fs::read_to_string(&file).map_err(|e| {
        format!(
            "no credentials: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY are not set and {} cannot be read ({e})",
            file.display()
        )
    })?;
    profile_credentials(&text, &profile).ok_or_else(|| {
        format!(
            "profile [{profile}] in {} has no aws_access_key_id and aws_secret_access_key",
            file.display()
        )
    })
}

/// The keys of `[profile]` in a shared credentials file (INI: `key = value` lines).
fn profile_credentials(text: &str, profile: &str) -> Option<AwsCredentials> {
    let mut in_profile = false;
    let (mut id, mut secret, mut token) = (None, None, None);
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_profile = name.trim() == profile;
        } else if let (true, Some((key, value))) = (in_profile, line.split_once('=')) {
            let value = value.trim().to_string();
            match key.trim() {
                "aws_access_key_id" => id = Some(value),
                "aws_secret_access_key" => secret = Some(value),
                "aws_session_token" => token = Some(value),
                _ => {}
            }
        }
    }
    Some(AwsCredentials {
        access_key_id: id?,
        secret_access_key: secret?.into(),
        session_token: token.map(Into::into),
    })
}

/// SES's answer to a call that failed.
#[derive(Debug)]
pub enum CallError {
    /// An `ErrorResponse`: its code and message.
    Ses { code: String, message: String },
    /// No answer, or one that is not SES's.
    Transport(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Ses { code, message } => write!(f, "SES answered {code}: {message}"),
            Self::Transport(e) => f.write_str(e),
        }
    }
}

pub struct Client {
    target: Target,
    credentials: AwsCredentials,
    agent: ureq::Agent,
}

impl Client {
    pub fn new(target: Target, credentials: AwsCredentials) -> Self {
        let agent = ureq::AgentBuilder::new()
            .timeout(std::time::Duration::from_secs(20))
            .build();
        Self {
            target,
            credentials,
            agent,
        }
    }

    /// Calls `action` with `params`; the XML body of a success.
    pub fn call(&self, action: &str, params: &[(&str, &str)]) -> Result<String, CallError> {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("Action", action)
            .append_pair("Version", API_VERSION);
        for (name, value) in params {
            form.append_pair(name, value);
        }
        let body = form.finish();
        // A workstation tool, not the Worker: the host clock is the signing time.
        #[allow(clippy::disallowed_methods)]
        let now = std::time::SystemTime::now();
        let signed = sign_headers(
            "POST",
            &self.target.endpoint,
            &[("Content-Type", CONTENT_TYPE)],
            body.as_bytes(),
            &self.credentials,
            &self.target.region,
            "ses",
            now,
        )
        .map_err(|e| CallError::Transport(format!("cannot sign the request: {e:?}")))?;
        let mut request = self
            .agent
            .post(&self.target.endpoint)
            .set("Content-Type", CONTENT_TYPE);
        for (name, value) in &signed {
            request = request.set(name, value);
        }
        match request.send_string(&body) {
            Ok(response) => response
                .into_string()
                .map_err(|e| CallError::Transport(format!("{action}: reading the answer: {e}"))),
            Err(ureq::Error::Status(status, response)) => {
                let xml = response.into_string().unwrap_or_default();
                match first_text(&xml, "Code") {
                    Some(code) => Err(CallError::Ses {
                        code,
                        message: first_text(&xml, "Message").unwrap_or_default(),
                    }),
                    None => Err(CallError::Transport(format!(
                        "{action}: HTTP {status} without an SES error"
                    ))),
                }
            }
            Err(e) => Err(CallError::Transport(format!(
                "{action}: cannot reach {}: {e}",
                self.target.endpoint
            ))),
        }
    }
}

/// The text of every `element` in an SES reply, in order (none when the reply is not XML).
pub fn texts(xml: &str, element: &str) -> Vec<String> {
    element_texts(xml.as_bytes(), element).unwrap_or_default()
}

pub fn first_text(xml: &str, element: &str) -> Option<String> {
    texts(xml, element).into_iter().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_profile_is_read_from_a_shared_credentials_file_and_others_are_ignored() {
        let text = "[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = d\n\n[site]\naws_access_key_id=AKIDSITE\naws_secret_access_key = s3cret\naws_session_token = tok\n";
        let site = profile_credentials(text, "site").expect("site");
        assert_eq!(site.access_key_id, "AKIDSITE");
        assert_eq!(site.secret_access_key.expose(), "s3cret");
        assert_eq!(
            site.session_token.map(|t| t.expose().to_string()),
            Some("tok".into())
        );
        assert!(profile_credentials(text, "default").is_some_and(|d| d.session_token.is_none()));
        assert!(profile_credentials(text, "missing").is_none());
    }

    #[test]
    fn element_texts_are_read_in_order_with_entities_resolved() {
        let xml = "<R><Code>A</Code><x><Code> B &amp; C </Code></x></R>";
        assert_eq!(texts(xml, "Code"), ["A", "B & C"]);
        assert_eq!(first_text(xml, "Missing"), None);
    }
}
