//! DNS over HTTPS, JSON flavour (`application/dns-json`, as Cloudflare's and Google's resolvers
//! answer `GET ?name=…&type=…`): the query URL, and what an answer says about a domain's mail:
//! its MX hosts, a null MX (RFC 7505), no MX at all (then RFC 5321 §5.1 falls back to the
//! domain's A/AAAA), a name that does not exist, or nothing usable. Pure.
//!
//! Invariants: only records of the type asked for count (a CNAME on the way is not an answer);
//! anything this does not understand (another `Status`, a malformed body, a record it cannot
//! read) is [`Answer::Unusable`], which the caller treats as "cannot tell" and lets the signup go
//! on (fail open); a TTL is clamped to [`MIN_TTL_SECS`]..=[`MAX_TTL_SECS`].

use serde::Deserialize;
use url::Url;

/// The record types asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordType {
    Mx,
    A,
    Aaaa,
}

impl RecordType {
    fn code(self) -> u16 {
        match self {
            Self::Mx => 15,
            Self::A => 1,
            Self::Aaaa => 28,
        }
    }

    /// The type's name, as a query and a log line give it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Mx => "MX",
            Self::A => "A",
            Self::Aaaa => "AAAA",
        }
    }
}

/// An answer is kept at least this long (a flood of one domain asks once a minute at most)...
pub const MIN_TTL_SECS: u32 = 60;
/// ...and at most this long: a domain that starts taking mail (or a brief NXDOMAIN while its DNS
/// moves) is seen within five minutes, and a cached answer tells a prober about other people's
/// signups for no longer (docs/address-checks.md, "Limits").
pub const MAX_TTL_SECS: u32 = 300;

/// What one answer says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Records of the type asked: for MX, the mail hosts (lowercase, without the final dot, in
    /// the resolver's order: only which hosts, not their preference, matters here); for A/AAAA,
    /// the addresses.
    Records { data: Vec<String>, ttl_secs: u32 },
    /// A null MX (`0 .`, RFC 7505): the domain says it takes no mail.
    NullMx { ttl_secs: u32 },
    /// The name exists but has no record of the type asked.
    NoRecords { ttl_secs: u32 },
    /// `Status` 3, NXDOMAIN: the name does not exist.
    NoSuchName { ttl_secs: u32 },
    /// A failure (SERVFAIL, REFUSED…) or a body this cannot read: cannot tell.
    Unusable,
}

/// `<doh_url>?name=<domain>&type=<MX|A|AAAA>`.
pub fn query_url(doh_url: &Url, domain: &str, record: RecordType) -> String {
    let mut url = doh_url.clone();
    url.query_pairs_mut()
        .append_pair("name", domain)
        .append_pair("type", record.name());
    url.into()
}

#[derive(Deserialize)]
struct Reply {
    #[serde(rename = "Status")]
    status: u32,
    /// Truncated: the answer is not whole, so its silence proves nothing.
    #[serde(rename = "TC", default)]
    truncated: bool,
    #[serde(rename = "Answer", default)]
    answer: Vec<Record>,
    #[serde(rename = "Authority", default)]
    authority: Vec<Record>,
}

#[derive(Deserialize)]
struct Record {
    #[serde(rename = "type")]
    kind: u16,
    #[serde(rename = "TTL", default)]
    ttl: u32,
    #[serde(default)]
    data: String,
}

/// How long a negative answer holds: the SOA's TTL in `Authority` (RFC 2308), or the minimum.
fn negative_ttl(reply: &Reply) -> u32 {
    reply
        .authority
        .iter()
        .filter(|r| r.kind == 6)
        .map(|r| r.ttl)
        .min()
        .map_or(MIN_TTL_SECS, clamp_ttl)
}

fn clamp_ttl(ttl: u32) -> u32 {
    ttl.clamp(MIN_TTL_SECS, MAX_TTL_SECS)
}

/// Reads the resolver's JSON answer to a query of `record`.
pub fn parse_answer(body: &[u8], record: RecordType) -> Answer {
    // serde_json skips the fields it does not read without checking their bytes: a body that is
    // not UTF-8 throughout is not JSON, and proves nothing.
    let Ok(text) = std::str::from_utf8(body) else {
        return Answer::Unusable;
    };
    // serde would also read a struct from an array (`[3]` as `{"Status":3}`): only an object is
    // an answer (found by the fuzzer).
    if !text.trim_start().starts_with('{') {
        return Answer::Unusable;
    }
    let Ok(reply) = serde_json::from_str::<Reply>(text) else {
        return Answer::Unusable;
    };
    if reply.truncated {
        return Answer::Unusable;
    }
    match reply.status {
        0 => {}
        3 => {
            return Answer::NoSuchName {
                ttl_secs: negative_ttl(&reply),
            }
        }
        _ => return Answer::Unusable,
    }
    let records: Vec<&Record> = reply
        .answer
        .iter()
        .filter(|r| r.kind == record.code())
        .collect();
    let Some(ttl) = records.iter().map(|r| r.ttl).min() else {
        return Answer::NoRecords {
            ttl_secs: negative_ttl(&reply),
        };
    };
    let ttl_secs = clamp_ttl(ttl);
    if record != RecordType::Mx {
        let data = records.iter().map(|r| r.data.trim().to_string()).collect();
        return Answer::Records { data, ttl_secs };
    }
    let mut hosts = Vec::with_capacity(records.len());
    for r in &records {
        let mut parts = r.data.split_ascii_whitespace();
        let (Some(preference), Some(host), None) = (parts.next(), parts.next(), parts.next())
        else {
            return Answer::Unusable;
        };
        if preference.parse::<u16>().is_err() {
            return Answer::Unusable;
        }
        // RFC 7505: a null MX (`.`) is the domain's only MX. Mixed with real ones, it is ignored.
        let host = host.trim_end_matches('.');
        if !host.is_empty() {
            hosts.push(host.to_ascii_lowercase());
        }
    }
    if hosts.is_empty() {
        return Answer::NullMx { ttl_secs };
    }
    Answer::Records {
        data: hosts,
        ttl_secs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mx(body: &str) -> Answer {
        parse_answer(body.as_bytes(), RecordType::Mx)
    }

    #[test]
    fn the_query_names_the_domain_and_the_type() {
        let doh = Url::parse("https://cloudflare-dns.com/dns-query").expect("url");
        assert_eq!(
            query_url(&doh, "example.com", RecordType::Mx),
            "https://cloudflare-dns.com/dns-query?name=example.com&type=MX"
        );
        assert_eq!(
            query_url(&doh, "a&b=c.example", RecordType::Aaaa),
            "https://cloudflare-dns.com/dns-query?name=a%26b%3Dc.example&type=AAAA"
        );
    }

    #[test]
    fn mx_records_give_their_hosts_lowercase_and_the_shortest_ttl() {
        let body = r#"{"Status":0,"TC":false,"Question":[{"name":"example.com","type":15}],
            "Answer":[{"name":"example.com","type":15,"TTL":300,"data":"20 MX2.Example.com."},
                      {"name":"example.com","type":15,"TTL":120,"data":"10 mx1.example.com."}]}"#;
        assert_eq!(
            mx(body),
            Answer::Records {
                data: vec!["mx2.example.com".into(), "mx1.example.com".into()],
                ttl_secs: 120
            }
        );
    }

    #[test]
    fn a_name_that_does_not_exist_is_nxdomain_held_for_the_soa_ttl() {
        let body = r#"{"Status":3,"Question":[{"name":"gmial.com","type":15}],
            "Authority":[{"name":"com","type":6,"TTL":120,"data":"a.gtld-servers.net. nstld.verisign-grs.com. 1 1800 900 604800 86400"}]}"#;
        assert_eq!(mx(body), Answer::NoSuchName { ttl_secs: 120 });
        assert_eq!(
            mx(r#"{"Status":3}"#),
            Answer::NoSuchName {
                ttl_secs: MIN_TTL_SECS
            }
        );
    }

    #[test]
    fn a_single_null_mx_says_no_mail_and_one_beside_real_hosts_is_ignored() {
        let null =
            r#"{"Status":0,"Answer":[{"name":"example.com","type":15,"TTL":86400,"data":"0 ."}]}"#;
        assert_eq!(
            mx(null),
            Answer::NullMx {
                ttl_secs: MAX_TTL_SECS
            }
        );
        let mixed = r#"{"Status":0,"Answer":[{"type":15,"TTL":200,"data":"0 ."},{"type":15,"TTL":200,"data":"10 mx.example.com."}]}"#;
        assert_eq!(
            mx(mixed),
            Answer::Records {
                data: vec!["mx.example.com".into()],
                ttl_secs: 200
            }
        );
    }

    #[test]
    fn no_mx_is_no_records_and_then_an_a_record_is_an_address() {
        let no_mx = r#"{"Status":0,"Answer":[{"name":"www.example.com","type":5,"TTL":60,"data":"example.com."}],
            "Authority":[{"type":6,"TTL":1800,"data":"ns. host. 1 2 3 4 5"}]}"#;
        assert_eq!(
            mx(no_mx),
            Answer::NoRecords {
                ttl_secs: MAX_TTL_SECS
            },
            "clamped"
        );
        let a = r#"{"Status":0,"Answer":[{"name":"example.com","type":1,"TTL":30,"data":"192.0.2.1"}]}"#;
        assert_eq!(
            parse_answer(a.as_bytes(), RecordType::A),
            Answer::Records {
                data: vec!["192.0.2.1".into()],
                ttl_secs: MIN_TTL_SECS
            }
        );
        assert_eq!(
            parse_answer(a.as_bytes(), RecordType::Aaaa),
            Answer::NoRecords {
                ttl_secs: MIN_TTL_SECS
            }
        );
    }

    #[test]
    fn failures_and_malformed_bodies_are_unusable() {
        for body in [
            r#"{"Status":2}"#,
            r#"{"Status":5,"Answer":[]}"#,
            "",
            "not json",
            "[]",
            r#"{"Answer":[]}"#,
            r#"{"Status":"0"}"#,
            r#"{"Status":0,"Answer":[{"type":15,"TTL":60,"data":"mx.example.com."}]}"#,
            r#"{"Status":0,"Answer":[{"type":15,"TTL":60,"data":"ten mx.example.com."}]}"#,
            r#"{"Status":0,"Answer":[{"type":15,"TTL":60,"data":"10 mx.example.com. extra"}]}"#,
            r#"{"Status":0,"Answer":[{"type":15,"TTL":-1,"data":"10 mx.example.com."}]}"#,
            r#"{"Status":0,"TC":true}"#,
            "[3]",
            " [0, false]",
            r#"{"Status":3,"TC":true}"#,
        ] {
            assert_eq!(mx(body), Answer::Unusable, "{body}");
        }
        // Found by the fuzzer: bytes that are not UTF-8, in a field this does not even read.
        let not_utf8 = b"{\"Status\":3,\"Question\":[{\"name\":\"gmial.co\xfe\xffm\"}]}";
        assert_eq!(parse_answer(not_utf8, RecordType::Mx), Answer::Unusable);
    }
}
