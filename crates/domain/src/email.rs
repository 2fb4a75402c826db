//! `EmailAddress`: a single deliverable-looking address, the only form in which a signup's address
//! travels past the HTTP layer. It can only be built by [`EmailAddress::parse`]; deserializing
//! (the internal RPC bodies, which carry it as a JSON string) goes through `parse` too.
//!
//! Invariants: an accepted address is at most 254 bytes, its local part at most 64, its domain
//! (in ASCII) at most 253 and each label at most 63. Every length is checked on the input, with
//! the fewest bytes it could take in ASCII ([`min_ascii_len`]), before any punycode runs, and
//! again on the encoded form: an input too long to be an address costs a linear scan and no
//! punycode work, and the bound never refuses an address that would fit once encoded.

use std::fmt;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

const MAX_LOCAL_BYTES: usize = 64;
const MAX_DOMAIN_BYTES: usize = 253;
const MAX_LABEL_BYTES: usize = 63;
const MAX_ADDRESS_BYTES: usize = 254;

/// A parsed address: the local part exactly as typed, the domain lowercased and in ASCII
/// (an internationalised domain becomes punycode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailAddress(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailError {
    /// Nothing but whitespace.
    Empty,
    /// Anything else that is not one plausible mailbox.
    Invalid,
}

impl EmailAddress {
    pub fn parse(input: &str) -> Result<Self, EmailError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(EmailError::Empty);
        }
        let (local, domain) = match trimmed.split_once('@') {
            Some((local, domain)) if !domain.contains('@') => (local, domain),
            _ => return Err(EmailError::Invalid),
        };
        if !is_dot_atom(local) || local.len() > MAX_LOCAL_BYTES {
            return Err(EmailError::Invalid);
        }
        // What the domain may take so that `local@domain` fits in the address's 254 bytes.
        let room = MAX_DOMAIN_BYTES.min(MAX_ADDRESS_BYTES.saturating_sub(local.len() + 1));
        let domain = parse_domain(domain, room).ok_or(EmailError::Invalid)?;
        let address = format!("{local}@{domain}");
        if address.len() > MAX_ADDRESS_BYTES {
            return Err(EmailError::Invalid);
        }
        Ok(Self(address))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part before the last `@`, as typed.
    pub fn local_part(&self) -> &str {
        self.0.rsplit_once('@').map_or("", |(local, _)| local)
    }

    /// The domain, lowercased ASCII (punycode for an internationalised one).
    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map_or("", |(_, domain)| domain)
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for EmailAddress {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for EmailAddress {
    /// The error never repeats the input: it may be an address, and errors reach logs.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(&raw).map_err(|_| de::Error::custom("not a valid email address"))
    }
}

/// RFC 5322 dot-atom in ASCII: atext runs separated by single dots. No quoted strings, no
/// comments, no whitespace or control characters, no leading, trailing or doubled dot.
fn is_dot_atom(local: &str) -> bool {
    const ATEXT_SYMBOLS: &[u8] = b"!#$%&'*+-/=?^_`{|}~";
    !local.is_empty()
        && local.split('.').all(|atom| {
            !atom.is_empty()
                && atom
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || ATEXT_SYMBOLS.contains(&b))
        })
}

/// `domain` in ASCII, label by label, lowercased. A label with letters beyond ASCII becomes
/// punycode (`xn--…`, RFC 3492, `idna::punycode`); an `xn--` label must be the punycode of such a
/// label. A Unicode label may hold only letters and digits (any script) and hyphens, composed
/// (NFC, as browsers send): anything else is refused, not mapped. UTS 46's mapping tables would
/// add 47 KB to the gzipped Worker for what no signup form needs.
fn domain_to_ascii(domain: &str) -> Option<String> {
    let labels: Option<Vec<String>> = domain.split('.').map(label_to_ascii).collect();
    labels.map(|labels| labels.join("."))
}

fn label_to_ascii(label: &str) -> Option<String> {
    if !label.is_ascii() {
        let lower: String = label.chars().flat_map(char::to_lowercase).collect();
        let encoded = punycode_encode(&lower)?;
        return is_unicode_label(&lower).then(|| format!("xn--{encoded}"));
    }
    let lower = label.to_ascii_lowercase();
    match lower.strip_prefix("xn--") {
        Some(encoded) => {
            let decoded = punycode_decode(encoded)?;
            let canonical = punycode_encode(&decoded)?;
            let lowercase = decoded
                .chars()
                .flat_map(char::to_lowercase)
                .eq(decoded.chars());
            (is_unicode_label(&decoded) && lowercase && canonical == encoded).then_some(lower)
        }
        // Hyphens in third and fourth place are reserved for such prefixes (RFC 5891 4.2.3.1).
        None if lower.get(2..4) == Some("--") => None,
        None => Some(lower),
    }
}

/// `idna::punycode::encode_str`; the tests count the calls (see [`min_ascii_len`]).
fn punycode_encode(label: &str) -> Option<String> {
    #[cfg(test)]
    tests::PUNYCODE_CALLS.with(|calls| calls.set(calls.get() + 1));
    idna::punycode::encode_str(label)
}

/// `idna::punycode::decode_to_string`, counted in the tests like [`punycode_encode`].
fn punycode_decode(encoded: &str) -> Option<String> {
    #[cfg(test)]
    tests::PUNYCODE_CALLS.with(|calls| calls.set(calls.get() + 1));
    idna::punycode::decode_to_string(encoded)
}

/// The fewest bytes `domain` can take in ASCII, or `None` when one of its labels cannot fit in 63
/// bytes however it is encoded. Linear in the input and no punycode: an ASCII label keeps its
/// length (lowercasing and `xn--` labels are byte for byte); a Unicode label becomes `xn--` and
/// at least one ASCII character for each of its characters after lowercasing (RFC 3492: a basic
/// code point is copied, every other one is at least one digit), and lowercasing never makes
/// fewer characters. So it never refuses a domain that fits once encoded, though the UTF-8 of a
/// valid domain, as typed, can be close to four times 253 bytes.
fn min_ascii_len(domain: &str) -> Option<usize> {
    let mut labels = 0;
    let mut total = 0;
    for label in domain.split('.') {
        let shortest = if label.is_ascii() {
            label.len()
        } else {
            "xn--".len() + label.chars().count()
        };
        if shortest > MAX_LABEL_BYTES {
            return None;
        }
        total += shortest;
        labels += 1;
    }
    // `split` yields at least one label; a dot between each two.
    Some(total + labels - 1)
}

/// A U-label worth encoding: not empty, not plain ASCII, letters, digits and hyphens only.
fn is_unicode_label(label: &str) -> bool {
    !label.is_ascii() && label.chars().all(|c| c.is_alphanumeric() || c == '-')
}

/// A DNS host name with at least two labels and at most `max_bytes` (253 or less), made ASCII
/// (punycode) and lowercase. The length is checked before any punycode, and again after.
fn parse_domain(domain: &str, max_bytes: usize) -> Option<String> {
    // Reject what UTS 46 mapping would quietly repair or strip, so the address sent is the one typed.
    if domain.is_empty()
        || domain.ends_with('.')
        || domain
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "[]\\\"()<>,;:@%".contains(c))
    {
        return None;
    }
    if min_ascii_len(domain)? > max_bytes {
        return None;
    }
    let ascii = domain_to_ascii(domain)?;
    if ascii.is_empty() || ascii.len() > max_bytes.min(MAX_DOMAIN_BYTES) {
        return None;
    }
    let labels: Vec<&str> = ascii.split('.').collect();
    let valid_labels = labels.iter().all(|label| {
        !label.is_empty()
            && label.len() <= MAX_LABEL_BYTES
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    let tld = labels.last()?;
    let plausible_tld = tld.len() >= 2 && !tld.bytes().all(|b| b.is_ascii_digit());
    (labels.len() >= 2 && valid_labels && plausible_tld).then(|| ascii.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    thread_local! {
        /// Punycode encodes and decodes on this test's thread.
        pub(super) static PUNYCODE_CALLS: Cell<usize> = const { Cell::new(0) };
    }

    /// `EmailAddress::parse(input)` and how many punycode calls it made.
    fn parse_counting(input: &str) -> (Result<EmailAddress, EmailError>, usize) {
        PUNYCODE_CALLS.with(|calls| calls.set(0));
        let parsed = EmailAddress::parse(input);
        (parsed, PUNYCODE_CALLS.with(Cell::get))
    }

    #[test]
    fn an_over_long_input_is_refused_before_any_punycode_and_one_that_fits_once_encoded_passes() {
        let long_label = "ü".repeat(2_000);
        let long_labels = vec!["ü".repeat(50); 40].join(".");
        let local_64 = "a".repeat(64);
        // 5 labels of `xn--` + 40 characters at least: 5 * 44 + 4 = 224 bytes, within 253 for a
        // domain but not beside a 64-byte local part (64 + 1 + 224 > 254).
        let unicode_224 = vec!["ü".repeat(40); 5].join(".");
        for input in [
            format!("x@{long_label}.de"),
            format!("x@{long_labels}.de"),
            format!("x@{}.de", "a".repeat(4_000)),
            format!("{local_64}@{unicode_224}"),
        ] {
            assert!(input.len() > 254, "{} bytes", input.len());
            let (parsed, calls) = parse_counting(&input);
            assert_eq!(parsed, Err(EmailError::Invalid), "{} bytes", input.len());
            assert_eq!(calls, 0, "punycode ran for a {}-byte input", input.len());
        }

        // Typed, this domain is 305 bytes of UTF-8; in ASCII, 3 * 56 + 5 = 173.
        let label = "ä".repeat(50);
        let domain = format!("{label}.{label}.{label}.de");
        assert_eq!(domain.len(), 305);
        let (parsed, calls) = parse_counting(&format!("x@{domain}"));
        let accepted = parsed.expect("fits once encoded");
        assert_eq!(accepted.as_str().len(), 2 + 173);
        assert_eq!(calls, 3, "one encode per Unicode label");

        // 59 characters pass the bound (4 + 59 = 63), and the encoded label (65 bytes) is
        // checked again.
        let (parsed, calls) = parse_counting(&format!("x@{}.de", "ä".repeat(59)));
        assert_eq!(parsed, Err(EmailError::Invalid));
        assert_eq!(calls, 1);
    }

    #[test]
    fn domains_become_lowercase_ascii_label_by_label_and_only_real_punycode_passes() {
        for (domain, ascii) in [
            ("Mail.Example.COM", Some("mail.example.com")),
            ("bücher.example", Some("xn--bcher-kva.example")),
            ("BÜCHER.example", Some("xn--bcher-kva.example")),
            ("XN--BCHER-KVA.example", Some("xn--bcher-kva.example")),
            ("straße.de", Some("xn--strae-oqa.de")),
            ("пример.рф", Some("xn--e1afmkfd.xn--p1ai")),
            ("ab--cd.com", None),
            ("xn--zz.example", None),
            // Punycode of plain ASCII, and of an uppercase letter: not how anyone writes a domain.
            ("xn--abc-.example", None),
            ("xn--bcher-kva-.example", None),
            // Decomposed (NFD) ü, a symbol, a full-width dot: refused, not mapped.
            ("bu\u{308}cher.example", None),
            ("☃.example", None),
            ("例え。テスト", None),
        ] {
            assert_eq!(domain_to_ascii(domain).as_deref(), ascii, "{domain}");
        }
    }

    fn accepted(input: &str) -> String {
        match EmailAddress::parse(input) {
            Ok(email) => email.as_str().to_string(),
            Err(e) => panic!("{input:?} should be accepted, got {e:?}"),
        }
    }

    #[test]
    fn plausible_addresses_are_accepted_with_the_domain_lowercased_and_the_local_part_kept() {
        let cases = [
            ("user@example.com", "user@example.com"),
            ("user+tag@example.com", "user+tag@example.com"),
            ("  padded@example.com\t", "padded@example.com"),
            ("\r\nuser@example.com\r\n", "user@example.com"),
            ("First.Last@Example.COM", "First.Last@example.com"),
            ("o'connor@example.ie", "o'connor@example.ie"),
            ("x@a.co", "x@a.co"),
            (
                "a!#$%&'*+-/=?^_`{|}~z@example.com",
                "a!#$%&'*+-/=?^_`{|}~z@example.com",
            ),
            (
                "user@sub.domain.example.co.uk",
                "user@sub.domain.example.co.uk",
            ),
            ("user@xn--mnchen-3ya.de", "user@xn--mnchen-3ya.de"),
            ("user@münchen.de", "user@xn--mnchen-3ya.de"),
            ("user@MÜNCHEN.de", "user@xn--mnchen-3ya.de"),
            ("user@例え.テスト", "user@xn--r8jz45g.xn--zckzah"),
            ("1234@example.com", "1234@example.com"),
            ("user@123.example.com", "user@123.example.com"),
            ("user@my-host.example", "user@my-host.example"),
        ];
        for (input, expected) in cases {
            assert_eq!(accepted(input), expected, "{input:?}");
        }
    }

    #[test]
    fn the_longest_allowed_parts_are_accepted() {
        let local = "a".repeat(64);
        accepted(&format!("{local}@example.com"));
        let label = "b".repeat(63);
        accepted(&format!("x@{label}.com"));
        // 254 bytes in total: 1 + 1 + 252.
        let domain = format!(
            "{}.{}.{}.{}",
            "c".repeat(63),
            "d".repeat(63),
            "e".repeat(63),
            "f".repeat(60)
        );
        assert_eq!(domain.len(), 252);
        assert_eq!(accepted(&format!("x@{domain}")).len(), 254);
    }

    #[test]
    fn blank_input_is_empty_not_invalid() {
        for input in ["", " ", "\t\r\n"] {
            assert_eq!(
                EmailAddress::parse(input),
                Err(EmailError::Empty),
                "{input:?}"
            );
        }
    }

    #[test]
    fn implausible_or_dangerous_addresses_are_rejected() {
        let long_local = format!("{}@example.com", "a".repeat(65));
        let long_label = format!("x@{}.com", "b".repeat(64));
        let long_total = format!(
            "{}@{}.{}.{}.{}",
            "a".repeat(10),
            "c".repeat(63),
            "d".repeat(63),
            "e".repeat(63),
            "f".repeat(60)
        );
        let rejected = [
            "plainaddress",
            "@example.com",
            "user@",
            "user@@example.com",
            "a@b@example.com",
            "user@localhost",
            "user@example",
            "user@example.c",
            "user@1.2.3.4",
            "user@[127.0.0.1]",
            "user@example.com.",
            "user@.example.com",
            "user@example..com",
            "user@-example.com",
            "user@example-.com",
            "user@exa_mple.com",
            ".user@example.com",
            "user.@example.com",
            "us..er@example.com",
            "us er@example.com",
            "user@exa mple.com",
            "\"quoted\"@example.com",
            "\"a@b\"@example.com",
            "user(comment)@example.com",
            "user@example.com (Name)",
            "Name <user@example.com>",
            "user@example.com,other@example.com",
            "user@example.com;other@example.com",
            "user@example.com\r\nBcc: victim@example.com",
            "user\r\n@example.com",
            "user\n@example.com",
            "user\u{0}@example.com",
            "user@exam\u{0}ple.com",
            "user\u{7f}@example.com",
            "üser@example.com",
            "user\u{200b}@example.com",
            "user@exa%mple.com",
            "user@example.com%0d%0a",
            "user@exam\\ple.com",
            "user@xn--.com",
            long_local.as_str(),
            long_label.as_str(),
            long_total.as_str(),
        ];
        for input in rejected {
            assert_eq!(
                EmailAddress::parse(input),
                Err(EmailError::Invalid),
                "{input:?}"
            );
        }
    }

    #[test]
    fn json_carries_the_address_as_a_string_and_reads_it_back_only_through_parse() {
        let email = EmailAddress::parse("Jane+news@Example.COM").expect("valid");
        let json = serde_json::to_string(&email).expect("json");
        assert_eq!(json, r#""Jane+news@example.com""#);
        assert_eq!(
            serde_json::from_str::<EmailAddress>(&json).expect("reads back"),
            email
        );
        let refused = serde_json::from_str::<EmailAddress>(r#""victim@@example.com""#)
            .expect_err("not an address");
        assert!(
            !refused.to_string().contains("victim"),
            "the error does not repeat the input: {refused}"
        );
        assert!(serde_json::from_str::<EmailAddress>("42").is_err());
    }
}
