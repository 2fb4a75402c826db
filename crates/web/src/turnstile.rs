//! Cloudflare Turnstile's siteverify call, pure: the token a confirmation's body carries, the
//! form body sent and the verdict read from the JSON reply. The shell (`http`) sends it to
//! `TURNSTILE_VERIFY_URL`.

use serde::Deserialize;

use crate::signup::TURNSTILE_FORM_FIELD;
use crate::signup::TURNSTILE_JSON_FIELD;

/// Turnstile's documented endpoint.
pub const SITEVERIFY_URL: &str = "https://challenges.cloudflare.com/turnstile/v0/siteverify";

/// Turnstile's token from a form body (`cf-turnstile-response`) or a JSON one
/// (`turnstileToken`), as `/confirm` takes either.
pub fn token_in_body(body: &[u8]) -> Option<String> {
    if let Ok(serde_json::Value::Object(fields)) = serde_json::from_slice(body) {
        return fields
            .get(TURNSTILE_JSON_FIELD)
            .and_then(|v| v.as_str())
            .map(str::to_string);
    }
    form_urlencoded::parse(body)
        .find(|(name, _)| name == TURNSTILE_FORM_FIELD)
        .map(|(_, value)| value.into_owned())
}

/// The form body: the secret, the token, the visitor's IP when known, and an idempotency key
/// (so a retried verification of the same submission is not mistaken for a replay).
pub fn siteverify_body(
    secret: &str,
    token: &str,
    remote_ip: Option<&str>,
    idempotency_key: &str,
) -> String {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("secret", secret)
        .append_pair("response", token);
    if let Some(ip) = remote_ip {
        form.append_pair("remoteip", ip);
    }
    form.append_pair("idempotency_key", idempotency_key);
    form.finish()
}

#[derive(Deserialize)]
struct SiteverifyReply {
    success: bool,
    #[serde(rename = "error-codes", default)]
    error_codes: Vec<String>,
    #[serde(default)]
    hostname: Option<String>,
}

/// `Ok(())` only for `{"success": true, …}` and, when `expected_hostnames` is not empty, a
/// `hostname` among them (a token solved on someone else's site is refused); otherwise the
/// error codes, for the log.
pub fn verdict(body: &[u8], expected_hostnames: &[String]) -> Result<(), Vec<String>> {
    match serde_json::from_slice::<SiteverifyReply>(body) {
        Ok(reply) if reply.success => {
            let hostname = reply.hostname.unwrap_or_default().to_ascii_lowercase();
            if expected_hostnames.is_empty() || expected_hostnames.contains(&hostname) {
                Ok(())
            } else {
                Err(vec!["unexpected-hostname".into()])
            }
        }
        Ok(reply) => Err(reply.error_codes),
        Err(_) => Err(vec!["unreadable-reply".into()]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_turnstile_token_comes_from_a_form_or_a_json_body() {
        assert_eq!(
            token_in_body(b"cf-turnstile-response=abc&x=1").as_deref(),
            Some("abc")
        );
        assert_eq!(
            token_in_body(br#"{"turnstileToken":"abc"}"#).as_deref(),
            Some("abc")
        );
        assert_eq!(token_in_body(br#"{"turnstileToken":1}"#), None);
        assert_eq!(token_in_body(b""), None);
    }

    #[test]
    fn the_body_carries_secret_token_ip_and_idempotency_key() {
        let body = siteverify_body(
            "1x0000000000000000000000000000000AA",
            "XXXX.DUMMY.TOKEN.XXXX",
            Some("203.0.113.9"),
            "k-1",
        );
        let pairs: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
        assert_eq!(
            pairs,
            vec![
                (
                    "secret".into(),
                    "1x0000000000000000000000000000000AA".into()
                ),
                ("response".into(), "XXXX.DUMMY.TOKEN.XXXX".into()),
                ("remoteip".into(), "203.0.113.9".into()),
                ("idempotency_key".into(), "k-1".into()),
            ]
        );
        assert!(!siteverify_body("s", "t", None, "k").contains("remoteip"));
    }

    #[test]
    fn only_an_explicit_success_passes() {
        assert_eq!(
            verdict(br#"{"success":true,"error-codes":[]}"#, &[]),
            Ok(())
        );
        assert_eq!(
            verdict(
                br#"{"success":false,"error-codes":["timeout-or-duplicate"]}"#,
                &[]
            ),
            Err(vec!["timeout-or-duplicate".to_string()])
        );
        for junk in [
            &b""[..],
            b"<html>",
            br#"{"success":"true"}"#,
            br#"{"ok":true}"#,
        ] {
            assert!(verdict(junk, &[]).is_err(), "{junk:?}");
        }
    }

    #[test]
    fn with_expected_hostnames_a_token_from_another_site_is_refused() {
        let expected = vec!["site.example".to_string()];
        let from = |host: &str| {
            format!(r#"{{"success":true,"hostname":"{host}","error-codes":[]}}"#).into_bytes()
        };
        assert_eq!(verdict(&from("site.example"), &expected), Ok(()));
        assert_eq!(verdict(&from("SITE.example"), &expected), Ok(()));
        assert_eq!(
            verdict(&from("evil.example"), &expected),
            Err(vec!["unexpected-hostname".to_string()])
        );
        assert!(
            verdict(br#"{"success":true}"#, &expected).is_err(),
            "no hostname"
        );
        assert_eq!(
            verdict(&from("evil.example"), &[]),
            Ok(()),
            "not checked when unset"
        );
    }
}
