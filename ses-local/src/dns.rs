//! A stand-in for a DNS-over-HTTPS resolver's JSON API, for local development and tests:
//! `GET /dns-query?name=<domain>&type=MX|A|AAAA` with `accept: application/dns-json` answers like
//! Cloudflare's resolver, from the `[[dns]]` zone of the config file. A name the zone does not
//! list takes mail (one MX, `10 mx.<name>.`), so every address that worked before still does;
//! the zone lists the names that do not exist, that take no mail, that send mail to a throwaway
//! host, or whose resolver fails, hangs or answers garbage. `GET /_dns-queries` lists what was
//! asked, for tests.
//!
//! Invariant: answers follow the JSON API's shape (`Status`, `Question`, `Answer`, `Authority`),
//! record types by number (MX 15, A 1, AAAA 28, SOA 6), names with their final dot.

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// One name of the zone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneEntry {
    pub name: String,
    /// The name does not exist (`Status` 3).
    #[serde(default)]
    pub nxdomain: bool,
    /// MX records as `"<preference> <host>."`; `["0 ."]` is a null MX (RFC 7505).
    #[serde(default)]
    pub mx: Vec<String>,
    #[serde(default)]
    pub a: Vec<String>,
    #[serde(default)]
    pub aaaa: Vec<String>,
    /// A resolver failure instead of an answer (2 SERVFAIL, 5 REFUSED).
    pub status: Option<u32>,
    /// Waits this long before answering: a slow or hanging resolver.
    pub delay_ms: Option<u64>,
    /// Answers this text (not JSON) with a 200.
    pub garbage: Option<String>,
}

/// A question that reached the resolver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Asked {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
}

/// What the HTTP side sends back.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub delay: Option<Duration>,
}

#[derive(Debug, Default)]
pub struct Resolver {
    zone: HashMap<String, ZoneEntry>,
    asked: Vec<Asked>,
}

const TTL: u32 = 300;
const NEGATIVE_TTL: u32 = 60;

impl Resolver {
    pub fn new(zone: &[ZoneEntry]) -> Self {
        Self {
            zone: zone.iter().map(|e| (normal(&e.name), e.clone())).collect(),
            asked: Vec::new(),
        }
    }

    /// The questions asked so far, oldest first.
    pub fn asked(&self) -> &[Asked] {
        &self.asked
    }

    /// Answers one query: its `name` and `type` parameters and whether it accepts JSON.
    pub fn answer(&mut self, name: Option<&str>, kind: Option<&str>, wants_json: bool) -> Reply {
        let bad = |message: &str| Reply {
            status: 400,
            body: json!({"error": message}).to_string(),
            delay: None,
        };
        if !wants_json {
            return bad(
                "send accept: application/dns-json (this stand-in speaks only the JSON API)",
            );
        }
        let (Some(name), Some(kind)) = (name.filter(|n| !n.is_empty()), kind) else {
            return bad("name and type are required");
        };
        let Some((code, kind)) = record_type(kind) else {
            return bad("type must be MX, A or AAAA");
        };
        let name = normal(name);
        self.asked.push(Asked {
            name: name.clone(),
            kind: kind.to_string(),
        });
        let synthetic;
        let entry = match self.zone.get(&name) {
            Some(entry) => entry,
            None => {
                synthetic = ZoneEntry {
                    name: name.clone(),
                    mx: vec![format!("10 mx.{name}.")],
                    ..ZoneEntry::default()
                };
                &synthetic
            }
        };
        let delay = entry.delay_ms.map(Duration::from_millis);
        if let Some(garbage) = &entry.garbage {
            return Reply {
                status: 200,
                body: garbage.clone(),
                delay,
            };
        }
        let fqdn = format!("{name}.");
        let question = json!([{"name": fqdn, "type": code}]);
        let soa = json!([{"name": fqdn, "type": 6, "TTL": NEGATIVE_TTL,
            "data": "ns.ses-local.test. hostmaster.ses-local.test. 1 3600 600 86400 60"}]);
        let body = if let Some(status) = entry.status {
            json!({"Status": status, "Question": question})
        } else if entry.nxdomain {
            json!({"Status": 3, "Question": question, "Authority": soa})
        } else {
            let data = match kind {
                "MX" => &entry.mx,
                "A" => &entry.a,
                _ => &entry.aaaa,
            };
            let answer: Vec<Value> = data
                .iter()
                .map(|d| json!({"name": fqdn, "type": code, "TTL": TTL, "data": d}))
                .collect();
            if answer.is_empty() {
                json!({"Status": 0, "Question": question, "Authority": soa})
            } else {
                json!({"Status": 0, "Question": question, "Answer": answer})
            }
        };
        Reply {
            status: 200,
            body: body.to_string(),
            delay,
        }
    }
}

fn normal(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn record_type(kind: &str) -> Option<(u16, &'static str)> {
    match kind.to_ascii_uppercase().as_str() {
        "MX" | "15" => Some((15, "MX")),
        "A" | "1" => Some((1, "A")),
        "AAAA" | "28" => Some((28, "AAAA")),
        _ => None,
    }
}

/// Whether an `accept` header (or the `ct` parameter) asks for the JSON API.
pub fn wants_json(accept: Option<&str>, ct: Option<&str>) -> bool {
    let json = |v: &str| v.to_ascii_lowercase().contains("application/dns-json");
    accept.is_some_and(json) || ct.is_some_and(json)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone() -> Resolver {
        let entry = |name: &str| ZoneEntry {
            name: name.into(),
            ..ZoneEntry::default()
        };
        Resolver::new(&[
            ZoneEntry {
                nxdomain: true,
                ..entry("hotnail.com")
            },
            ZoneEntry {
                mx: vec!["0 .".into()],
                ..entry("no-mail.test")
            },
            ZoneEntry {
                a: vec!["192.0.2.1".into()],
                ..entry("a-only.test")
            },
            ZoneEntry {
                status: Some(2),
                ..entry("servfail.test")
            },
            ZoneEntry {
                garbage: Some("<html>".into()),
                delay_ms: Some(5),
                ..entry("garbage.test")
            },
        ])
    }

    fn json_of(reply: &Reply) -> Value {
        serde_json::from_str(&reply.body).expect("json")
    }

    #[test]
    fn an_unlisted_name_takes_mail_at_its_own_mx() {
        let reply = zone().answer(Some("Example.COM."), Some("MX"), true);
        let body = json_of(&reply);
        assert_eq!(body["Status"], 0);
        assert_eq!(body["Answer"][0]["type"], 15);
        assert_eq!(body["Answer"][0]["data"], "10 mx.example.com.");
    }

    #[test]
    fn the_zone_gives_nxdomain_null_mx_addresses_failures_and_garbage() {
        let mut z = zone();
        assert_eq!(
            json_of(&z.answer(Some("hotnail.com"), Some("MX"), true))["Status"],
            3
        );
        assert_eq!(
            json_of(&z.answer(Some("no-mail.test"), Some("MX"), true))["Answer"][0]["data"],
            "0 ."
        );
        let no_mx = json_of(&z.answer(Some("a-only.test"), Some("MX"), true));
        assert_eq!(
            (no_mx["Status"].clone(), no_mx.get("Answer")),
            (json!(0), None)
        );
        assert_eq!(
            json_of(&z.answer(Some("a-only.test"), Some("1"), true))["Answer"][0]["data"],
            "192.0.2.1"
        );
        assert_eq!(
            json_of(&z.answer(Some("servfail.test"), Some("MX"), true))["Status"],
            2
        );
        let garbage = z.answer(Some("garbage.test"), Some("MX"), true);
        assert_eq!(
            (garbage.body.as_str(), garbage.delay),
            ("<html>", Some(Duration::from_millis(5)))
        );
        assert_eq!(z.asked().len(), 6);
        assert_eq!(
            z.asked()[0],
            Asked {
                name: "hotnail.com".into(),
                kind: "MX".into()
            }
        );
    }

    #[test]
    fn a_query_without_the_json_accept_or_a_name_or_a_known_type_is_a_400() {
        let mut z = zone();
        assert_eq!(z.answer(Some("example.com"), Some("MX"), false).status, 400);
        assert_eq!(z.answer(None, Some("MX"), true).status, 400);
        assert_eq!(z.answer(Some("example.com"), Some("TXT"), true).status, 400);
        assert!(z.asked().is_empty());
        assert!(wants_json(Some("application/dns-json"), None));
        assert!(wants_json(None, Some("application/dns-json")));
        assert!(!wants_json(Some("application/dns-message"), None));
    }
}
