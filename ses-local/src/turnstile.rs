//! A stand-in for Cloudflare Turnstile's siteverify (`POST /turnstile/v0/siteverify`), for local
//! development and tests. It accepts Cloudflare's documented dummy token `XXXX.DUMMY.TOKEN.XXXX`
//! (and, so a test can pass more than once, `XXXX.DUMMY.TOKEN.XXXX.<anything>`), each once:
//! a replayed token fails with `timeout-or-duplicate`, unless it comes with the idempotency key
//! of its first verification (a retry), which gets the first answer again.

use std::collections::HashMap;

use serde_json::{json, Value};

const DUMMY_TOKEN: &str = "XXXX.DUMMY.TOKEN.XXXX";

#[derive(Default)]
pub struct Siteverify {
    /// Token → the idempotency key of its first verification.
    spent: HashMap<String, Option<String>>,
}

impl Siteverify {
    /// Answers one verification, from the request's form (or JSON) fields.
    pub fn verify(&mut self, fields: &HashMap<String, String>) -> Value {
        let field = |name: &str| {
            fields
                .get(name)
                .map(String::as_str)
                .filter(|v| !v.is_empty())
        };
        let failure = |code: &str| json!({"success": false, "error-codes": [code], "messages": []});
        if field("secret").is_none() {
            return failure("missing-input-secret");
        }
        let Some(token) = field("response") else {
            return failure("missing-input-response");
        };
        let is_dummy = token == DUMMY_TOKEN || token.starts_with(&format!("{DUMMY_TOKEN}."));
        if !is_dummy {
            return failure("invalid-input-response");
        }
        let key = field("idempotency_key").map(str::to_string);
        match self.spent.get(token) {
            Some(first_key) if first_key.is_some() && *first_key == key => success(),
            Some(_) => failure("timeout-or-duplicate"),
            None => {
                self.spent.insert(token.to_string(), key);
                success()
            }
        }
    }
}

fn success() -> Value {
    json!({
        "success": true,
        "challenge_ts": "2026-01-01T00:00:00.000Z",
        "hostname": "localhost",
        "error-codes": [],
        "action": "",
        "cdata": ""
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn passes(s: &mut Siteverify, pairs: &[(&str, &str)]) -> bool {
        s.verify(&request(pairs))["success"] == true
    }

    #[test]
    fn a_dummy_token_passes_once_and_a_replay_fails() {
        let mut s = Siteverify::default();
        let first = [
            ("secret", "1x0000000000000000000000000000000AA"),
            ("response", DUMMY_TOKEN),
            ("idempotency_key", "k1"),
        ];
        assert!(passes(&mut s, &first));
        assert!(
            passes(&mut s, &first),
            "a retry with the same idempotency key gets the same answer"
        );
        let replay = s.verify(&request(&[
            ("secret", "x"),
            ("response", DUMMY_TOKEN),
            ("idempotency_key", "k2"),
        ]));
        assert_eq!(replay["error-codes"][0], "timeout-or-duplicate");
        assert!(passes(
            &mut s,
            &[("secret", "x"), ("response", "XXXX.DUMMY.TOKEN.XXXX.2")]
        ));
    }

    #[test]
    fn other_tokens_and_missing_fields_fail_with_turnstiles_codes() {
        let mut s = Siteverify::default();
        assert_eq!(
            s.verify(&request(&[("secret", "x"), ("response", "forged")]))["error-codes"][0],
            "invalid-input-response"
        );
        assert_eq!(
            s.verify(&request(&[("secret", "x")]))["error-codes"][0],
            "missing-input-response"
        );
        assert_eq!(
            s.verify(&request(&[("response", DUMMY_TOKEN)]))["error-codes"][0],
            "missing-input-secret"
        );
        assert!(
            passes(&mut s, &[("secret", "x"), ("response", DUMMY_TOKEN)]),
            "failures spend nothing"
        );
    }
}
