//! The address checks of `POST /signup` in the Worker: the throwaway list, then the questions
//! to the DNS-over-HTTPS resolver, asked in the order `signup_verify_web::address_check` decides,
//! under one deadline (`DOH_TIMEOUT_MS`), with the isolate's cache of verdicts.
//!
//! Invariants: a domain is asked about at most once at a time in an isolate (later signups of it
//! look for that answer on their own timers: nothing wakes one request from another's handler),
//! and then not again while its verdict holds; a resolver that fails,
//! answers nonsense or is too slow refuses nothing (logged, fail open); a refusal's log line
//! carries the address's keyed tag and the reason, never the address or its domain.

use std::cell::RefCell;
use std::time::Duration;

use signup_verify_domain::email::EmailAddress;
use signup_verify_domain::error::ApiError;
use signup_verify_domain::log_line;
use signup_verify_domain::redact::worker_tag;
use signup_verify_domain::request_id::RequestId;
use signup_verify_web::address_check::{
    disposable_refusal, refusal, AddressCheckConfig, Begin, MailLookup, MailVerdict, MxCheckConfig,
    Step, Ticket, VerdictCache,
};
use signup_verify_web::dns_answer::{parse_answer, query_url, Answer, RecordType};

use worker::Delay;

use crate::outbound::Outbound;
use crate::outbound::OutboundError;
use crate::runtime::now_ms;

/// How often a signup whose domain another signup is asking about looks for the answer.
const WAIT_POLL_MS: u64 = 10;
/// How much longer than `DOH_TIMEOUT_MS` a question is left to its asker before another signup
/// takes it over (the asker's own timer ends it first).
const ASKING_SLACK_MS: u64 = 250;

thread_local! {
    /// Verdicts by domain for this isolate, and the domains being asked about now.
    static VERDICTS: RefCell<VerdictCache> = RefCell::default();
}

/// `Ok` when the address may go on to the gate; the refusal otherwise. `log_key` keys the
/// refusal's log tag (`STATUS_TOKEN_SECRET`; without it the line has no tag).
pub async fn check(
    config: &AddressCheckConfig,
    email: &EmailAddress,
    log_key: Option<&[u8]>,
    request_id: &RequestId,
) -> Result<(), ApiError> {
    let refused = match disposable_refusal(&config.disposable, email) {
        Some(refused) => Some(refused),
        None => match &config.mx {
            Some(mx) => {
                let verdict = verdict(mx, email.domain(), request_id).await;
                refusal(&config.disposable, email, &verdict)
            }
            None => None,
        },
    };
    match refused {
        None => Ok(()),
        Some(error) => {
            crate::log::info(|| {
                let tag = log_key.map(|key| worker_tag(key, email));
                log_line!({"event": "address_refused", "reason": error.code(), "address": tag, "suggested": error.suggestion().is_some(), "request_id": request_id})
            });
            Err(error)
        }
    }
}

/// The cached verdict for `domain`, the one another signup is asking for now (looked for on this
/// request's own timer), or a fresh one; all within this signup's `DOH_TIMEOUT_MS`, whichever
/// way it goes (a waiter that takes a question over asks within what is left of its own).
async fn verdict(mx: &MxCheckConfig, domain: &str, request_id: &RequestId) -> MailVerdict {
    let started = now_ms();
    let deadline = started.saturating_add(mx.timeout_ms);
    let ticket = loop {
        let now = now_ms();
        if now >= deadline {
            // Waited out this signup's own time: it goes on unchecked, and caches nothing.
            return MailVerdict::Unknown;
        }
        // The mark lasts as long as this signup may ask, and a little more.
        let asking_ms = deadline.saturating_sub(now) + ASKING_SLACK_MS;
        match VERDICTS.with(|v| v.borrow_mut().begin(domain, now, asking_ms)) {
            Begin::Known(verdict) => return verdict,
            Begin::Ask(ticket) => break ticket,
            Begin::Wait => Delay::from(Duration::from_millis(WAIT_POLL_MS)).await,
        }
    };
    // A signup that took a question over after waiting has less than the whole timeout: if it
    // learns nothing, that says nothing about the resolver, and is not kept for others.
    let whole_time = now_ms().saturating_sub(started) < WAIT_POLL_MS;
    let mut asking = Asking(Some((domain, ticket)));
    let (verdict, ttl_secs) = lookup(mx, domain, deadline, request_id).await;
    if verdict == MailVerdict::Unknown && !whole_time {
        // The guard abandons the question as it goes.
        return verdict;
    }
    // Answered: `finish` ends the question, not the guard.
    asking.0 = None;
    VERDICTS.with(|v| {
        v.borrow_mut()
            .finish(domain, verdict.clone(), ttl_secs, now_ms())
    });
    verdict
}

/// The mark that this signup is asking about a domain: dropped before the answer (a cancelled
/// request), it ends the question, and the next signup of the domain asks.
struct Asking<'a>(Option<(&'a str, Ticket)>);

impl Drop for Asking<'_> {
    fn drop(&mut self) {
        if let Some((domain, ticket)) = self.0 {
            VERDICTS.with(|v| v.borrow_mut().abandon(domain, ticket));
        }
    }
}

/// Asks the questions `MailLookup` asks, all before `deadline`.
async fn lookup(
    mx: &MxCheckConfig,
    domain: &str,
    deadline: u64,
    request_id: &RequestId,
) -> (MailVerdict, u32) {
    let (mut lookup, mut step) = MailLookup::start();
    loop {
        match step {
            Step::Done { verdict, ttl_secs } => return (verdict, ttl_secs),
            Step::Ask(record) => {
                let left = deadline.saturating_sub(now_ms());
                let answer = ask(mx, domain, record, left, request_id).await;
                step = lookup.on_answer(answer);
            }
        }
    }
}

/// One question, within `left_ms`; `None` (logged) when there is no usable answer.
async fn ask(
    mx: &MxCheckConfig,
    domain: &str,
    record: RecordType,
    left_ms: u64,
    request_id: &RequestId,
) -> Option<Answer> {
    let failed = |problem: String| {
        crate::log::error(
            log_line!({"event": "doh_failed", "type": record.name(), "problem": problem, "request_id": request_id}),
        );
        None
    };
    if left_ms == 0 {
        return failed(format!("no time left of DOH_TIMEOUT_MS={}", mx.timeout_ms));
    }
    let url = query_url(&mx.doh_url, domain, record);
    let request = Outbound::get(&url).and_then(|r| r.with_header("accept", "application/dns-json"));
    // What went wrong, by kind: a runtime's message could quote the URL, which names the domain.
    let answer = match request {
        Ok(request) => request.send(left_ms, &|| ()).await,
        Err(_) => return failed("the request could not be built".into()),
    };
    match answer {
        Ok(response) if response.status == 200 => match parse_answer(&response.body, record) {
            Answer::Unusable => failed("an answer that is not a usable DNS JSON reply".into()),
            answer => Some(answer),
        },
        Ok(response) => failed(format!("HTTP {}", response.status)),
        Err(OutboundError::TimedOut { timeout_ms }) => {
            failed(format!("no answer within {timeout_ms} ms"))
        }
        Err(OutboundError::Unreachable(_) | OutboundError::BadRequest(_)) => {
            failed("unreachable".into())
        }
        Err(OutboundError::BodyUnreadable { status, .. }) => {
            failed(format!("HTTP {status} with an unreadable body"))
        }
    }
}
