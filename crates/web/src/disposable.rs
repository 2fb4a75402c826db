//! Throwaway email domains: the community list `disposable-email-domains` (CC0), vendored in
//! `crates/web/data/` with its provenance and refreshed by `make disposable-domains`, and the
//! match of a domain against it. A domain is throwaway when it, or any parent of it down to its
//! registrable domain (the Public Suffix List subset of [`registrable_domain`]), is on the list
//! and none of those is on the operator's allow list (`DISPOSABLE_ALLOW`). Pure.
//!
//! Invariants: the list is sorted bytewise, one lowercase ASCII domain per line (a test keeps it
//! so, and the refresh script refuses anything else), so a lookup is a binary search of the
//! embedded text (`signup_verify_domain::sorted_text`): no index is built; a parent above the
//! registrable domain (`com`, `co.uk`) is never matched, so no entry can block an ICANN public
//! suffix. Entries on shared hosting names the suffix table leaves out (`mooo.com`, `us.to`) do
//! block every name under them: the list means them so.

use signup_verify_domain::mailbox::registrable_domain;
use signup_verify_domain::sorted_text::find_line;

/// The vendored list: `disposable_email_blocklist.conf` of
/// github.com/disposable-email-domains/disposable-email-domains, as published (see
/// `crates/web/data/PROVENANCE.md`).
pub const BLOCKLIST: &str = include_str!("../data/disposable_email_blocklist.conf");

/// `DISPOSABLE_DOMAINS` and `DISPOSABLE_ALLOW`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisposablePolicy {
    /// `DISPOSABLE_DOMAINS=block` (the default); `off` lets every domain through.
    pub block: bool,
    /// `DISPOSABLE_ALLOW`: domains (and their subdomains) let through even when listed.
    pub allow: Vec<String>,
}

impl Default for DisposablePolicy {
    fn default() -> Self {
        Self {
            block: true,
            allow: Vec::new(),
        }
    }
}

impl DisposablePolicy {
    /// Parses `DISPOSABLE_ALLOW`: a comma list of domain names (letters, digits, `-` and `.`),
    /// lowercased; blank entries are skipped.
    pub fn parse_allow(raw: &str) -> Result<Vec<String>, &'static str> {
        raw.split(',')
            .map(|entry| entry.trim().trim_end_matches('.').to_ascii_lowercase())
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                let valid = entry.len() <= 253
                    && entry.contains('.')
                    && entry
                        .split('.')
                        .all(|label| !label.is_empty() && label.bytes().all(is_domain_byte));
                if valid {
                    Ok(entry)
                } else {
                    Err("must be a comma list of domain names such as example.com")
                }
            })
            .collect()
    }

    /// The list entry that makes `domain` throwaway, or `None` (also when blocking is off, or
    /// when the allow list covers it).
    pub fn blocked_entry<'a>(&self, domain: &'a str) -> Option<&'a str> {
        if !self.block {
            return None;
        }
        if self.allows(domain) {
            return None;
        }
        parents_to_registrable(domain.trim_end_matches('.')).find(|name| is_listed(name))
    }

    /// Whether `DISPOSABLE_ALLOW` covers `domain` (it, or a parent down to its registrable
    /// domain, is listed there).
    pub fn allows(&self, domain: &str) -> bool {
        parents_to_registrable(domain.trim_end_matches('.'))
            .any(|name| self.allow.iter().any(|a| a.eq_ignore_ascii_case(name)))
    }
}

fn is_domain_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'
}

/// `domain`, then each parent of it, down to and including its registrable domain.
fn parents_to_registrable(domain: &str) -> impl Iterator<Item = &str> {
    let floor = registrable_domain(domain).len();
    std::iter::successors(Some(domain), |name| {
        name.split_once('.').map(|(_, parent)| parent)
    })
    .take_while(move |name| name.len() >= floor)
}

/// Whether `name` is a line of [`BLOCKLIST`] (ASCII case ignored): a binary search of the
/// sorted text ([`find_line`]; a name holds no space, so the whole line is compared).
pub fn is_listed(name: &str) -> bool {
    if name.contains(' ') {
        return false;
    }
    let lowered;
    let name = if name.bytes().any(|b| b.is_ascii_uppercase()) {
        lowered = name.to_ascii_lowercase();
        lowered.as_str()
    } else {
        name
    };
    find_line(BLOCKLIST, name).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allow: &str) -> DisposablePolicy {
        DisposablePolicy {
            block: true,
            allow: DisposablePolicy::parse_allow(allow).expect("valid allow list"),
        }
    }

    #[test]
    fn the_vendored_list_is_sorted_unique_lowercase_ascii_one_domain_per_line() {
        let lines: Vec<&str> = BLOCKLIST.lines().collect();
        assert!(lines.len() > 5_000, "{} lines", lines.len());
        assert!(BLOCKLIST.ends_with('\n') && !BLOCKLIST.contains("\n\n"));
        for pair in lines.windows(2) {
            assert!(pair[0] < pair[1], "not sorted or repeated: {pair:?}");
        }
        for line in &lines {
            assert!(
                line.contains('.') && line.bytes().all(|b| is_domain_byte(b) || b == b'.'),
                "{line:?}"
            );
        }
    }

    #[test]
    fn the_vendored_list_is_the_one_its_provenance_names() {
        use sha2::{Digest, Sha256};
        let provenance = include_str!("../data/PROVENANCE.md");
        let recorded = provenance
            .lines()
            .find_map(|line| line.strip_prefix("- SHA-256: "))
            .expect("PROVENANCE.md records the list's SHA-256");
        assert_eq!(
            hex::encode(Sha256::digest(BLOCKLIST.as_bytes())),
            recorded,
            "the list changed without `make disposable-domains`"
        );
        let lines = format!("- Lines: {}", BLOCKLIST.lines().count());
        assert!(provenance.contains(&lines), "{lines}");
    }

    #[test]
    fn every_entry_of_the_list_is_found_and_near_misses_are_not() {
        let listed: std::collections::HashSet<&str> = BLOCKLIST.lines().collect();
        for line in BLOCKLIST.lines() {
            assert!(is_listed(line), "{line} not found");
            for near in [
                format!("{line}x"),
                line[1..].to_string(),
                format!("a{line}"),
            ] {
                assert_eq!(is_listed(&near), listed.contains(near.as_str()), "{near}");
            }
        }
        assert!(!is_listed(""));
        assert!(!is_listed("0"));
        assert!(!is_listed("zzzzzzzz.zz"));
        assert!(is_listed("MAILINATOR.com"), "ASCII case is ignored");
    }

    #[test]
    fn a_listed_domain_and_its_subdomains_are_blocked_and_its_parents_and_neighbours_are_not() {
        let p = DisposablePolicy::default();
        assert_eq!(p.blocked_entry("mailinator.com"), Some("mailinator.com"));
        assert_eq!(p.blocked_entry("x.mailinator.com"), Some("mailinator.com"));
        assert_eq!(
            p.blocked_entry("a.b.mailinator.com."),
            Some("mailinator.com")
        );
        assert_eq!(p.blocked_entry("xmailinator.com"), None);
        assert_eq!(p.blocked_entry("mailinator.com.example"), None);
        assert_eq!(p.blocked_entry("gmail.com"), None);
        assert_eq!(p.blocked_entry("com"), None);
        // An entry one level under a private public suffix (dynv6.net) and its subdomains.
        assert_eq!(
            p.blocked_entry("x.0-mailer.dynv6.net"),
            Some("0-mailer.dynv6.net")
        );
        assert_eq!(p.blocked_entry("other.dynv6.net"), None);
        // A listed shared name (free subdomains for anyone) blocks the names under it.
        assert_eq!(p.blocked_entry("jane.mooo.com"), Some("mooo.com"));
    }

    #[test]
    fn the_allow_list_lets_a_listed_domain_and_its_subdomains_through() {
        let p = policy(" Mailinator.com , ,example.org.");
        assert_eq!(p.allow, ["mailinator.com", "example.org"]);
        assert_eq!(p.blocked_entry("mailinator.com"), None);
        assert_eq!(p.blocked_entry("x.mailinator.com"), None);
        assert_eq!(p.blocked_entry("yopmail.com"), Some("yopmail.com"));
        // Allowing a subdomain does not allow its listed parent.
        let p = policy("team.yopmail.com");
        assert_eq!(p.blocked_entry("team.yopmail.com"), None);
        assert_eq!(p.blocked_entry("yopmail.com"), Some("yopmail.com"));
    }

    #[test]
    fn no_popular_mailbox_provider_or_mail_host_is_on_the_list() {
        // A refresh that listed one would refuse its users, or (as an MX host) every domain
        // hosted there.
        let hosts = [
            "amazonaws.com",
            "cloudflare.net",
            "google.com",
            "messagingengine.com",
            "mx.cloudflare.net",
            "outlook.com",
            "protonmail.ch",
            "registrar-servers.com",
            "yandex.net",
            "zoho.com",
        ];
        let popular = crate::typo::POPULAR.iter().copied();
        for domain in popular.chain(hosts) {
            assert!(!is_listed(domain), "{domain} is on the throwaway list");
        }
    }

    #[test]
    fn blocking_off_lets_every_domain_through() {
        let p = DisposablePolicy {
            block: false,
            allow: Vec::new(),
        };
        assert_eq!(p.blocked_entry("mailinator.com"), None);
    }

    #[test]
    fn an_allow_list_entry_that_is_not_a_domain_is_refused() {
        for bad in ["mailinator", "a b.com", "x@y.com", "a..com", "*.com"] {
            assert!(DisposablePolicy::parse_allow(bad).is_err(), "{bad}");
        }
        assert_eq!(
            DisposablePolicy::parse_allow("").expect("empty"),
            Vec::<String>::new()
        );
    }
}
