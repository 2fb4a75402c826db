//! The address checks of `POST /signup` in the Worker: the throwaway list, then the questions
//! to the DNS-over-HTTPS resolver, asked in the order `signup_verify_web::address_check` decides,
//! under one deadline (`DOH_TIMEOUT_MS`), with the isolate's cache of verdicts.
//!
//! Invariants: a domain is asked about at most once at a time in an isolate (later signups of it
//! wait for that answer), and then not again while its verdict holds; a resolver that fails,
//! answers nonsense or is too slow refuses nothing (logged, fail open); a refusal's log line
//! carries the address's keyed tag and the reason, never the address or its domain.

use std::cell::RefCell;
use std::collections::HashMap;

use futures_channel::oneshot;
use signup_verify_domain::email::EmailAddress;
use signup_verify_domain::error::ApiError;
use signup_verify_domain::log_line;
use signup_verify_domain::redact::worker_tag;
use signup_verify_domain::request_id::RequestId;
use signup_verify_web::address_check::{
    disposable_refusal, refusal, AddressCheckConfig, MailLookup, MailVerdict, MxCheckConfig, Step,
    VerdictCache,
};
use signup_verify_web::dns_answer::{parse_answer, query_url, Answer, RecordType};

use crate::outbound::Outbound;
use crate::outbound::OutboundError;
use crate::runtime::now_ms;

thread_local! {
    /// Verdicts by domain, for this isolate.
    static VERDICTS: RefCell<VerdictCache> = RefCell::default();
    /// Domains being asked about now, with the signups waiting for the answer.
    static ASKING: RefCell<HashMap<String, Vec<oneshot::Sender<MailVerdict>>>> = RefCell::default();
}

/// `Ok` when the address may go on to the gate; the refusal otherwise. `log_key` keys the
/// refusal's log tag.
pub async fn check(
    config: &AddressCheckConfig,
    email: &EmailAddress,
    log_key: &[u8],
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
            crate::log::info(
                || log_line!({"event": "address_refused", "reason": error.code(), "address": worker_tag(log_key, email), "suggested": error.suggestion().is_some(), "request_id": request_id}),
            );
            Err(error)
        }
    }
}

/// The cached verdict for `domain`, the one another signup is asking for now, or a fresh one.
async fn verdict(mx: &MxCheckConfig, domain: &str, request_id: &RequestId) -> MailVerdict {
    if let Some(cached) = VERDICTS.with(|v| v.borrow().get(domain, now_ms()).cloned()) {
        return cached;
    }
    let waiting = ASKING.with(|asking| {
        let mut asking = asking.borrow_mut();
        match asking.get_mut(domain) {
            Some(waiters) => {
                let (tell, told) = oneshot::channel();
                waiters.push(tell);
                Some(told)
            }
            None => {
                asking.insert(domain.to_string(), Vec::new());
                None
            }
        }
    });
    if let Some(told) = waiting {
        // The asker went away without an answer (its request was cancelled): cannot tell.
        return told.await.unwrap_or(MailVerdict::Unknown);
    }
    let asking = Asking(domain);
    let (verdict, ttl_secs) = lookup(mx, domain, request_id).await;
    VERDICTS.with(|v| {
        v.borrow_mut()
            .put(domain, verdict.clone(), ttl_secs, now_ms())
    });
    for waiter in asking.finish() {
        let _ = waiter.send(verdict.clone());
    }
    verdict
}

/// The mark that `domain` is being asked about; dropped unfinished (a cancelled request), it
/// lets its waiters go with "cannot tell".
struct Asking<'a>(&'a str);

impl Asking<'_> {
    fn finish(self) -> Vec<oneshot::Sender<MailVerdict>> {
        ASKING.with(|asking| asking.borrow_mut().remove(self.0).unwrap_or_default())
    }
}

impl Drop for Asking<'_> {
    fn drop(&mut self) {
        ASKING.with(|asking| asking.borrow_mut().remove(self.0));
    }
}

/// Asks the questions `MailLookup` asks, all within `DOH_TIMEOUT_MS`.
async fn lookup(mx: &MxCheckConfig, domain: &str, request_id: &RequestId) -> (MailVerdict, u32) {
    let deadline = now_ms().saturating_add(mx.timeout_ms);
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
