//! Redaction for log lines that carry text from outside (SES's error messages echo the address:
//! "Invalid email address<…>."). Every email-like token is replaced: by `<email:TAG>` when it is
//! the call's own mailbox, where TAG is a short prefix of its HMAC address key (enough to follow
//! one signup through the logs, useless to anyone without the gate's key), and by `<email>`
//! otherwise. Pure.
//!
//! Invariant: no output of [`redact_addresses`] holds an email-like token ([`has_address`] is
//! false for it), whatever the input.

use std::ops::Range;

use crate::email::EmailAddress;
use crate::mailbox::Mailbox;

/// How many hex characters of the address key a log line shows.
pub const TAG_LEN: usize = 8;

/// Characters of an RFC 5322 dot-atom local part (and `.`), ASCII or not.
fn is_local_char(c: char) -> bool {
    c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c)
}

fn is_domain_char(c: char) -> bool {
    c.is_alphanumeric() || c == '-' || c == '.'
}

/// The byte ranges of email-like tokens: something local, `@`, something domain-like.
fn address_spans(text: &str) -> Vec<Range<usize>> {
    let mut spans: Vec<Range<usize>> = Vec::new();
    for (at, _) in text.match_indices('@') {
        if spans.last().is_some_and(|last| last.end > at) {
            continue;
        }
        let start = text[..at]
            .char_indices()
            .rev()
            .take_while(|(_, c)| is_local_char(*c))
            .last()
            .map_or(at, |(i, _)| i);
        let end = text[at + 1..]
            .char_indices()
            .take_while(|(_, c)| is_domain_char(*c))
            .last()
            .map_or(at + 1, |(i, c)| at + 1 + i + c.len_utf8());
        if start < at && end > at + 1 {
            match spans.last_mut() {
                // `a@b@c`: one token, not two overlapping ones.
                Some(last) if start < last.end => last.end = end,
                _ => spans.push(start..end),
            }
        }
    }
    spans
}

/// Whether `text` holds anything that looks like an address.
pub fn has_address(text: &str) -> bool {
    !address_spans(text).is_empty()
}

/// `text` with every email-like token replaced (see the module docs). `own` is the call's
/// address and `own_tag` its key prefix.
pub fn redact_addresses(text: &str, own: &EmailAddress, own_tag: &str) -> String {
    let own_mailbox = Mailbox::of(own);
    let mut out = String::with_capacity(text.len());
    let mut rest = 0;
    for span in address_spans(text) {
        out.push_str(&text[rest..span.start]);
        let token = text[span.clone()].trim_end_matches('.');
        let is_own = EmailAddress::parse(token).is_ok_and(|e| Mailbox::of(&e) == own_mailbox);
        if is_own {
            out.push_str(&format!("<email:{own_tag}>"));
        } else {
            out.push_str("<email>");
        }
        // A sentence's full stop after the address stays.
        out.push_str(&text[span.start + token.len()..span.end]);
        rest = span.end;
    }
    out.push_str(&text[rest..]);
    out
}

/// The log tag of an address key: its first [`TAG_LEN`] characters.
pub fn tag_of(address_key: &str) -> &str {
    address_key.get(..TAG_LEN).unwrap_or(address_key)
}

/// The label of [`worker_tag`]'s HMAC: no other MAC of the same key is over the same bytes.
const WORKER_TAG_LABEL: &[u8] = b"signup-verify/v2/worker-log-tag\0";

/// The log tag the Worker gives an address it refuses before the gate (which holds the address
/// key, and is never asked): [`TAG_LEN`] hex characters of an HMAC of the address's mailbox under
/// `secret` (`STATUS_TOKEN_SECRET`, whose every use has its own label: this one keeps the tag
/// apart from the status tokens, the confirmation credential and the decoy nonces). The same
/// mailbox gets the same tag while the secret stays; it is not the gate's tag.
pub fn worker_tag(secret: &[u8], email: &EmailAddress) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    let mut mac =
        <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(WORKER_TAG_LABEL);
    mac.update(Mailbox::of(email).as_str().as_bytes());
    let mut tag = hex::encode(mac.finalize().into_bytes());
    tag.truncate(TAG_LEN);
    tag
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own() -> EmailAddress {
        EmailAddress::parse("Jane.Doe+x@gmail.com").expect("valid")
    }

    #[test]
    fn the_worker_tag_is_keyed_short_and_the_same_for_one_mailbox() {
        let jane = |s: &str| EmailAddress::parse(s).expect("valid");
        let tag = worker_tag(b"key one", &jane("Jane.Doe+x@gmail.com"));
        assert_eq!(tag.len(), TAG_LEN);
        assert_eq!(tag, worker_tag(b"key one", &jane("janedoe@googlemail.com")));
        assert_ne!(tag, worker_tag(b"key two", &jane("Jane.Doe+x@gmail.com")));
        assert_ne!(tag, worker_tag(b"key one", &jane("john@gmail.com")));
    }

    #[test]
    fn the_calls_own_address_becomes_its_tag_and_others_become_a_placeholder() {
        let text = "Invalid email address<janedoe@gmail.com>. Also from noreply@site.example.";
        assert_eq!(
            redact_addresses(text, &own(), "ab12cd34"),
            "Invalid email address<<email:ab12cd34>>. Also from <email>."
        );
    }

    #[test]
    fn nothing_email_like_survives() {
        for text in [
            "a@b",
            "x a@b.c y",
            "<Jane.Doe+x@GMAIL.COM>",
            "first@a.example,second@b.example",
            "ünï@cödé.example",
            "a@b@c.example",
            "@@@ a@@b .@. trailing@",
            "quoted \"a b\"@example.com",
            "Email address is not verified. The following identities failed the check in region US-EAST-1: noreply@example.com, other@example.com",
        ] {
            let redacted = redact_addresses(text, &own(), "ab12cd34");
            assert!(!has_address(&redacted), "{text:?} → {redacted:?}");
        }
    }

    #[test]
    fn text_without_addresses_is_left_alone() {
        for text in [
            "Maximum sending rate exceeded.",
            "",
            "@",
            "a@",
            "@b",
            "user at example dot com",
        ] {
            assert_eq!(redact_addresses(text, &own(), "t"), text);
        }
    }

    #[test]
    fn the_tag_is_a_short_prefix_of_the_key() {
        assert_eq!(tag_of("0123456789abcdef"), "01234567");
        assert_eq!(tag_of("abc"), "abc");
    }
}
