//! The address checks a signup passes before it may spend one of SES's calls: a throwaway domain
//! ([`crate::disposable`]), then a domain that takes no mail, asked of a DNS-over-HTTPS resolver
//! ([`crate::dns_answer`]), with a typo suggestion for a refused domain ([`crate::typo`]). This
//! module owns the settings (`DISPOSABLE_DOMAINS`, `DISPOSABLE_ALLOW`, `MX_CHECK`, `DOH_URL`,
//! `DOH_TIMEOUT_MS`), the order of the DNS questions ([`MailLookup`]: MX, then A, then AAAA),
//! the verdicts' cache with the questions in flight ([`VerdictCache`]) and the refusal a verdict
//! earns ([`refusal`]). Pure: the Worker asks the questions and keeps the cache.
//!
//! Invariants: every failure to learn (timeout, resolver error, an answer that cannot be read)
//! is [`MailVerdict::Unknown`], which refuses nothing (fail open); a suggestion comes only with
//! a refusal, never for a domain that is let through; one question per domain is in flight at a
//! time in an isolate, and the others wait for its answer (or take over once its asker is gone); the cache holds at most [`CACHE_CAPACITY`]
//! verdicts, each no longer than its answer's TTL (clamped by `dns_answer`), an unknown verdict
//! only [`UNKNOWN_TTL_SECS`].

use std::collections::HashMap;

use url::Url;

use signup_verify_domain::email::EmailAddress;
use signup_verify_domain::error::ApiError;
use signup_verify_domain::settings::{parse_service_url, ConfigError, Vars};

use crate::disposable::DisposablePolicy;
use crate::dns_answer::{Answer, RecordType};
use crate::typo;

/// Cloudflare's public resolver, JSON API.
pub const DEFAULT_DOH_URL: &str = "https://cloudflare-dns.com/dns-query";
/// `DOH_TIMEOUT_MS`' default: the whole check (up to three questions) within this.
pub const DEFAULT_DOH_TIMEOUT_MS: u64 = 1_500;
/// How many domains' verdicts one Worker isolate keeps.
pub const CACHE_CAPACITY: usize = 4_096;
/// How long "cannot tell" is kept: a resolver that is down is asked again this often, and
/// meanwhile signups go on unchecked instead of each waiting for its timeout.
pub const UNKNOWN_TTL_SECS: u32 = 30;

/// Every address-check setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressCheckConfig {
    pub disposable: DisposablePolicy,
    /// `MX_CHECK=on` (the default): the resolver and the time the check may take.
    pub mx: Option<MxCheckConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MxCheckConfig {
    /// `DOH_URL`: `https://`, or `http://` to a loopback host only.
    pub doh_url: Url,
    /// `DOH_TIMEOUT_MS`.
    pub timeout_ms: u64,
}

impl AddressCheckConfig {
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let block = match vars.get("DISPOSABLE_DOMAINS").as_deref() {
            None | Some("block") => true,
            Some("off") => false,
            Some(_) => {
                return Err(ConfigError {
                    variable: "DISPOSABLE_DOMAINS",
                    problem: "must be block or off",
                })
            }
        };
        let allow =
            DisposablePolicy::parse_allow(&vars.get("DISPOSABLE_ALLOW").unwrap_or_default())
                .map_err(|problem| ConfigError {
                    variable: "DISPOSABLE_ALLOW",
                    problem,
                })?;
        let mx = if vars.flag("MX_CHECK", true)? {
            Some(MxCheckConfig {
                doh_url: match vars.get("DOH_URL") {
                    None => Url::parse(DEFAULT_DOH_URL).map_err(|_| ConfigError {
                        variable: "DOH_URL",
                        problem: "default is not a URL",
                    })?,
                    Some(raw) => parse_service_url("DOH_URL", &raw)?,
                },
                timeout_ms: vars.number("DOH_TIMEOUT_MS", DEFAULT_DOH_TIMEOUT_MS, 100..=10_000)?,
            })
        } else {
            None
        };
        Ok(Self {
            disposable: DisposablePolicy { block, allow },
            mx,
        })
    }
}

/// What DNS says about a domain's mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailVerdict {
    /// It takes mail: at these MX hosts (none when only an A/AAAA record stands in for one).
    TakesMail { mx_hosts: Vec<String> },
    /// The name does not exist (NXDOMAIN).
    NoSuchDomain,
    /// A null MX, or no MX and no address.
    AcceptsNoMail,
    /// The resolver could not say in time: the signup goes on.
    Unknown,
}

/// The next thing to do in a lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Ask(RecordType),
    Done { verdict: MailVerdict, ttl_secs: u32 },
}

/// The questions about one domain, in order: MX; without MX, A; without A, AAAA (RFC 5321 §5.1).
#[derive(Debug)]
pub struct MailLookup {
    asking: RecordType,
    /// The shortest TTL of the answers so far: the verdict holds no longer than any of them.
    ttl_secs: u32,
}

impl MailLookup {
    /// The lookup and its first question.
    pub fn start() -> (Self, Step) {
        let lookup = Self {
            asking: RecordType::Mx,
            ttl_secs: u32::MAX,
        };
        (lookup, Step::Ask(RecordType::Mx))
    }

    /// Takes the answer to the last question; `None` (the question failed or timed out) is
    /// [`Answer::Unusable`].
    pub fn on_answer(&mut self, answer: Option<Answer>) -> Step {
        let done = |verdict, ttl_secs| Step::Done { verdict, ttl_secs };
        let answer = answer.unwrap_or(Answer::Unusable);
        let ttl = match &answer {
            Answer::Records { ttl_secs, .. }
            | Answer::NullMx { ttl_secs }
            | Answer::NoRecords { ttl_secs }
            | Answer::NoSuchName { ttl_secs } => *ttl_secs,
            Answer::Unusable => UNKNOWN_TTL_SECS,
        };
        self.ttl_secs = self.ttl_secs.min(ttl);
        let ttl_secs = self.ttl_secs;
        match (self.asking, answer) {
            (_, Answer::Unusable) => done(MailVerdict::Unknown, UNKNOWN_TTL_SECS),
            (RecordType::Mx, Answer::Records { data, .. }) => {
                done(MailVerdict::TakesMail { mx_hosts: data }, ttl_secs)
            }
            (_, Answer::Records { .. }) => done(
                MailVerdict::TakesMail {
                    mx_hosts: Vec::new(),
                },
                ttl_secs,
            ),
            (_, Answer::NoSuchName { .. }) => done(MailVerdict::NoSuchDomain, ttl_secs),
            (_, Answer::NullMx { .. }) | (RecordType::Aaaa, Answer::NoRecords { .. }) => {
                done(MailVerdict::AcceptsNoMail, ttl_secs)
            }
            (RecordType::Mx, Answer::NoRecords { .. }) => self.ask(RecordType::A),
            (RecordType::A, Answer::NoRecords { .. }) => self.ask(RecordType::Aaaa),
        }
    }

    fn ask(&mut self, record: RecordType) -> Step {
        self.asking = record;
        Step::Ask(record)
    }
}

/// Why a signup is refused before the gate, or `None`.
pub fn disposable_refusal(policy: &DisposablePolicy, email: &EmailAddress) -> Option<ApiError> {
    policy
        .blocked_entry(email.domain())
        .map(|_| ApiError::DisposableDomain {
            suggestion: typo::listed_suggestion(email),
        })
}

/// The refusal the DNS verdict earns: a domain that does not exist or takes no mail, or one whose
/// mail goes to a throwaway host, each with a suggestion when the domain is a near miss of a
/// popular one; `None` lets the signup go on, and never with a suggestion.
pub fn refusal(
    policy: &DisposablePolicy,
    email: &EmailAddress,
    verdict: &MailVerdict,
) -> Option<ApiError> {
    match verdict {
        MailVerdict::TakesMail { mx_hosts } => {
            let allowed = policy.allows(email.domain());
            let throwaway = |host: &String| policy.blocked_entry(host).is_some();
            (!allowed && mx_hosts.iter().any(throwaway)).then(|| ApiError::DisposableDomain {
                suggestion: typo::listed_suggestion(email),
            })
        }
        MailVerdict::NoSuchDomain => Some(ApiError::DomainNotFound {
            suggestion: typo::suggestion(email),
        }),
        MailVerdict::AcceptsNoMail => Some(ApiError::DomainAcceptsNoMail {
            suggestion: typo::suggestion(email),
        }),
        MailVerdict::Unknown => None,
    }
}

/// Verdicts by domain, each until its TTL runs out, and the domains being asked about now. At
/// most [`CACHE_CAPACITY`] verdicts; a domain being asked is never evicted. A signup that finds
/// its domain being asked waits and looks again (the Worker polls on its own timer: a promise
/// resolved from another request's handler is an I/O error in Workers).
#[derive(Debug, Default)]
pub struct VerdictCache {
    entries: HashMap<String, Slot>,
    /// The ticket the next asker gets.
    next_ticket: u64,
}

#[derive(Debug)]
enum Slot {
    Known {
        verdict: MailVerdict,
        expires_ms: u64,
    },
    /// Being asked, by the signup holding `ticket`, which gives up by `until_ms` at the latest.
    Asking { until_ms: u64, ticket: Ticket },
}

/// Which signup asks about a domain: only it can [`VerdictCache::abandon`] the question.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket(u64);

/// What a signup does about its domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    /// The verdict holds: use it.
    Known(MailVerdict),
    /// Nobody is asking: this signup asks, then [`VerdictCache::finish`]es (or
    /// [`VerdictCache::abandon`]s with its ticket).
    Ask(Ticket),
    /// Another signup is asking: look again shortly.
    Wait,
}

impl VerdictCache {
    /// The verdict for `domain` at `now_ms`, or whether to ask or to wait. `Ask` marks the
    /// domain as being asked for `asking_ms`; a mark older than that (its asker vanished) is
    /// taken over.
    pub fn begin(&mut self, domain: &str, now_ms: u64, asking_ms: u64) -> Begin {
        match self.entries.get(domain) {
            Some(Slot::Known {
                verdict,
                expires_ms,
            }) if now_ms < *expires_ms => Begin::Known(verdict.clone()),
            Some(Slot::Asking { until_ms, .. }) if now_ms < *until_ms => Begin::Wait,
            _ => {
                self.make_room(domain, now_ms);
                let until_ms = now_ms.saturating_add(asking_ms);
                let ticket = Ticket(self.next_ticket);
                self.next_ticket = self.next_ticket.wrapping_add(1);
                self.entries
                    .insert(domain.to_string(), Slot::Asking { until_ms, ticket });
                Begin::Ask(ticket)
            }
        }
    }

    /// Keeps the answer about `domain` for `ttl_secs`.
    pub fn finish(&mut self, domain: &str, verdict: MailVerdict, ttl_secs: u32, now_ms: u64) {
        let expires_ms = now_ms.saturating_add(u64::from(ttl_secs) * 1_000);
        self.make_room(domain, now_ms);
        self.entries.insert(
            domain.to_string(),
            Slot::Known {
                verdict,
                expires_ms,
            },
        );
    }

    /// The asker holding `ticket` went away without an answer: `domain` is no longer being asked
    /// by it (a verdict, or another asker's question, stays).
    pub fn abandon(&mut self, domain: &str, ticket: Ticket) {
        let mine = matches!(
            self.entries.get(domain),
            Some(Slot::Asking { ticket: t, .. }) if *t == ticket
        );
        if mine {
            self.entries.remove(domain);
        }
    }

    /// Before a new domain goes in when the table is full: expired verdicts and stale marks go,
    /// then the verdicts that would expire soonest; domains being asked stay.
    fn make_room(&mut self, domain: &str, now_ms: u64) {
        if self.entries.len() < CACHE_CAPACITY || self.entries.contains_key(domain) {
            return;
        }
        self.entries.retain(|_, slot| match slot {
            Slot::Known { expires_ms, .. } => now_ms < *expires_ms,
            Slot::Asking { until_ms, .. } => now_ms < *until_ms,
        });
        while self.entries.len() >= CACHE_CAPACITY {
            let soonest = self
                .entries
                .iter()
                .filter_map(|(name, slot)| match slot {
                    Slot::Known { expires_ms, .. } => Some((*expires_ms, name)),
                    Slot::Asking { .. } => None,
                })
                .min()
                .map(|(_, name)| name.clone());
            let Some(soonest) = soonest else { break };
            self.entries.remove(&soonest);
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email(s: &str) -> EmailAddress {
        EmailAddress::parse(s).expect("valid")
    }

    fn config(pairs: &[(&str, &str)]) -> Result<AddressCheckConfig, ConfigError> {
        let lookup = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        };
        AddressCheckConfig::from_vars(&Vars::new(&lookup))
    }

    fn records(data: &[&str], ttl_secs: u32) -> Option<Answer> {
        Some(Answer::Records {
            data: data.iter().map(|d| d.to_string()).collect(),
            ttl_secs,
        })
    }

    /// Runs a lookup on canned answers: the questions it asked and its verdict.
    fn run(answers: Vec<Option<Answer>>) -> (Vec<RecordType>, MailVerdict, u32) {
        let (mut lookup, mut step) = MailLookup::start();
        let mut asked = Vec::new();
        let mut answers = answers.into_iter();
        loop {
            match step {
                Step::Ask(record) => {
                    asked.push(record);
                    step = lookup.on_answer(answers.next().expect("an answer for each question"));
                }
                Step::Done { verdict, ttl_secs } => return (asked, verdict, ttl_secs),
            }
        }
    }

    #[test]
    fn the_defaults_block_throwaway_domains_and_ask_cloudflare_within_1500_ms() {
        let c = config(&[]).expect("defaults");
        assert_eq!(c.disposable, DisposablePolicy::default());
        let mx = c.mx.expect("on by default");
        assert_eq!(mx.doh_url.as_str(), DEFAULT_DOH_URL);
        assert_eq!(mx.timeout_ms, 1_500);
    }

    #[test]
    fn each_bad_setting_names_its_variable() {
        for (pairs, variable) in [
            (&[("DISPOSABLE_DOMAINS", "warn")][..], "DISPOSABLE_DOMAINS"),
            (&[("DISPOSABLE_ALLOW", "not a domain")], "DISPOSABLE_ALLOW"),
            (&[("MX_CHECK", "maybe")], "MX_CHECK"),
            (
                &[("DOH_URL", "http://resolver.example/dns-query")],
                "DOH_URL",
            ),
            (&[("DOH_URL", "ftp://127.0.0.1/")], "DOH_URL"),
            (&[("DOH_TIMEOUT_MS", "0")], "DOH_TIMEOUT_MS"),
            (&[("DOH_TIMEOUT_MS", "60000")], "DOH_TIMEOUT_MS"),
        ] {
            assert_eq!(config(pairs).expect_err("refused").variable, variable);
        }
        let off = config(&[
            ("MX_CHECK", "off"),
            ("DISPOSABLE_DOMAINS", "off"),
            ("DOH_URL", "http://127.0.0.1:4579/dns-query"),
        ])
        .expect("valid");
        assert_eq!(off.mx, None);
        assert!(!off.disposable.block);
    }

    #[test]
    fn mx_hosts_mean_mail_and_are_the_only_question() {
        let (asked, verdict, ttl) = run(vec![records(&["mx.example.com"], 300)]);
        assert_eq!(asked, [RecordType::Mx]);
        assert_eq!(
            verdict,
            MailVerdict::TakesMail {
                mx_hosts: vec!["mx.example.com".into()]
            }
        );
        assert_eq!(ttl, 300);
    }

    #[test]
    fn without_mx_an_a_or_aaaa_record_means_mail_and_neither_means_none() {
        let no = || Some(Answer::NoRecords { ttl_secs: 200 });
        let (asked, verdict, ttl) = run(vec![no(), records(&["192.0.2.1"], 120)]);
        assert_eq!(asked, [RecordType::Mx, RecordType::A]);
        assert_eq!(verdict, MailVerdict::TakesMail { mx_hosts: vec![] });
        assert_eq!(ttl, 120, "the shortest TTL of the answers");
        let (asked, verdict, _) = run(vec![no(), no(), records(&["2001:db8::1"], 200)]);
        assert_eq!(asked, [RecordType::Mx, RecordType::A, RecordType::Aaaa]);
        assert_eq!(verdict, MailVerdict::TakesMail { mx_hosts: vec![] });
        let (_, verdict, ttl) = run(vec![no(), no(), no()]);
        assert_eq!((verdict, ttl), (MailVerdict::AcceptsNoMail, 200));
    }

    #[test]
    fn nxdomain_and_a_null_mx_end_the_lookup_at_once() {
        let (asked, verdict, _) = run(vec![Some(Answer::NoSuchName { ttl_secs: 900 })]);
        assert_eq!((asked.len(), verdict), (1, MailVerdict::NoSuchDomain));
        let (asked, verdict, _) = run(vec![Some(Answer::NullMx { ttl_secs: 900 })]);
        assert_eq!((asked.len(), verdict), (1, MailVerdict::AcceptsNoMail));
    }

    #[test]
    fn a_failed_or_unreadable_answer_at_any_question_is_unknown_and_held_briefly() {
        let no = || Some(Answer::NoRecords { ttl_secs: 200 });
        for answers in [
            vec![None],
            vec![Some(Answer::Unusable)],
            vec![no(), None],
            vec![no(), no(), Some(Answer::Unusable)],
        ] {
            let (_, verdict, ttl) = run(answers);
            assert_eq!((verdict, ttl), (MailVerdict::Unknown, UNKNOWN_TTL_SECS));
        }
    }

    #[test]
    fn refusals_suggest_only_for_a_domain_that_takes_no_mail() {
        let policy = DisposablePolicy::default();
        // gmial.com is itself on the throwaway list: refused before DNS, with the suggestion.
        assert_eq!(
            disposable_refusal(&policy, &email("jane@gmial.com")),
            Some(ApiError::DisposableDomain {
                suggestion: Some("jane@gmail.com".into())
            })
        );
        let typo = email("jane@hotnail.com");
        assert_eq!(
            refusal(&policy, &typo, &MailVerdict::NoSuchDomain),
            Some(ApiError::DomainNotFound {
                suggestion: Some("jane@hotmail.com".into())
            })
        );
        assert_eq!(
            refusal(&policy, &typo, &MailVerdict::AcceptsNoMail),
            Some(ApiError::DomainAcceptsNoMail {
                suggestion: Some("jane@hotmail.com".into())
            })
        );
        // The same near miss, when it takes mail, goes on with no suggestion and no refusal.
        let takes = MailVerdict::TakesMail {
            mx_hosts: vec!["mx.hotnail.com".into()],
        };
        assert_eq!(refusal(&policy, &typo, &takes), None);
        assert_eq!(refusal(&policy, &typo, &MailVerdict::Unknown), None);
        assert_eq!(
            refusal(
                &policy,
                &email("a@nowhere.example"),
                &MailVerdict::NoSuchDomain
            ),
            Some(ApiError::DomainNotFound { suggestion: None })
        );
    }

    #[test]
    fn a_domain_whose_mail_goes_to_a_throwaway_host_is_throwaway_unless_allowed() {
        let takes = MailVerdict::TakesMail {
            mx_hosts: vec!["mx.example.net".into(), "mail.mailinator.com".into()],
        };
        let fresh = email("bot@fresh-burner.example");
        assert_eq!(
            refusal(&DisposablePolicy::default(), &fresh, &takes),
            Some(ApiError::DisposableDomain { suggestion: None })
        );
        let allowed = DisposablePolicy {
            block: true,
            allow: vec!["fresh-burner.example".into()],
        };
        assert_eq!(refusal(&allowed, &fresh, &takes), None);
        let off = DisposablePolicy {
            block: false,
            allow: vec![],
        };
        assert_eq!(refusal(&off, &fresh, &takes), None);
        assert_eq!(
            disposable_refusal(&DisposablePolicy::default(), &email("a@x.yopmail.com")),
            Some(ApiError::DisposableDomain { suggestion: None })
        );
    }

    /// The ticket when `begin` says to ask; panics otherwise.
    fn ask(cache: &mut VerdictCache, domain: &str, now_ms: u64) -> Ticket {
        match cache.begin(domain, now_ms, 2_000) {
            Begin::Ask(ticket) => ticket,
            other => panic!("{domain} at {now_ms}: {other:?}, not Ask"),
        }
    }

    #[test]
    fn the_cache_holds_a_verdict_until_its_ttl_and_stays_bounded() {
        let mut cache = VerdictCache::default();
        ask(&mut cache, "a.example", 1_000);
        cache.finish("a.example", MailVerdict::NoSuchDomain, 60, 1_000);
        assert_eq!(
            cache.begin("a.example", 60_999, 2_000),
            Begin::Known(MailVerdict::NoSuchDomain)
        );
        ask(&mut cache, "a.example", 61_000);
        let mut cache = VerdictCache::default();
        for i in 0..CACHE_CAPACITY + 10 {
            // Later entries live longer; the soonest to expire make room.
            let name = format!("d{i}.example");
            ask(&mut cache, &name, 0);
            cache.finish(&name, MailVerdict::Unknown, 60 + i as u32, 0);
        }
        assert_eq!(cache.len(), CACHE_CAPACITY);
        ask(&mut cache, "d0.example", 0);
        let last = format!("d{}.example", CACHE_CAPACITY + 9);
        assert_eq!(
            cache.begin(&last, 0, 2_000),
            Begin::Known(MailVerdict::Unknown)
        );
        // Expired entries are dropped first, all at once.
        ask(&mut cache, "new.example", 10_000_000);
        assert!(cache.len() <= 2, "{}", cache.len());
    }

    #[test]
    fn one_signup_asks_and_the_others_wait_until_its_answer_is_kept() {
        let mut cache = VerdictCache::default();
        ask(&mut cache, "flood.example", 0);
        for now in [0, 10, 1_999] {
            assert_eq!(cache.begin("flood.example", now, 2_000), Begin::Wait);
        }
        cache.finish("flood.example", MailVerdict::AcceptsNoMail, 60, 500);
        assert_eq!(
            cache.begin("flood.example", 510, 2_000),
            Begin::Known(MailVerdict::AcceptsNoMail)
        );
    }

    #[test]
    fn an_abandoned_or_stale_question_is_asked_again_and_only_its_asker_can_abandon_it() {
        let mut cache = VerdictCache::default();
        let first = ask(&mut cache, "x.example", 0);
        cache.abandon("x.example", first);
        let second = ask(&mut cache, "x.example", 0);
        assert_ne!(first, second);
        // Its asker vanished without dropping its mark: taken over once the mark is stale.
        assert_eq!(cache.begin("x.example", 1_999, 2_000), Begin::Wait);
        let third = ask(&mut cache, "x.example", 2_000);
        // The vanished asker's late abandon leaves the new question alone.
        cache.abandon("x.example", second);
        assert_eq!(cache.begin("x.example", 2_001, 2_000), Begin::Wait);
        // Abandoning a domain that has a verdict keeps the verdict.
        cache.finish("x.example", MailVerdict::NoSuchDomain, 60, 2_000);
        cache.abandon("x.example", third);
        assert_eq!(
            cache.begin("x.example", 2_000, 2_000),
            Begin::Known(MailVerdict::NoSuchDomain)
        );
    }

    #[test]
    fn a_domain_being_asked_is_never_evicted_to_make_room() {
        let mut cache = VerdictCache::default();
        ask(&mut cache, "asking.example", 0);
        for i in 0..CACHE_CAPACITY + 5 {
            let name = format!("d{i}.example");
            ask(&mut cache, &name, 0);
            cache.finish(&name, MailVerdict::Unknown, 60, 0);
        }
        assert_eq!(cache.begin("asking.example", 0, 2_000), Begin::Wait);
    }
}
