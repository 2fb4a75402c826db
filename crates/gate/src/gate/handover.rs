//! Hand-over: a gate in a pool whose region stays paused (its queue's head met a configuration
//! error twice in a row: SES says the template, the From identity, production access, the
//! account or the identity quota is broken there) hands each queued signup to the next region
//! of its mailbox's rendezvous order that takes it ([`Gate::hand_over_head`]); the taker keeps
//! it as a signup of its own ([`Gate::adopt`]). Status and confirmation of a handed-over signup
//! are answered `Moved` here, naming it where it is now.
//!
//! Invariants: an item leaves this queue only after the taker answered that it holds it
//! (sent or durably queued: a gate answers only after its writes are durable), and in the same
//! synchronous step its row records where it went, so nothing is lost; the taker knows a
//! hand-over by `<region>/<nonce>` and takes it once however often it is asked (this gate may
//! restart between the taker's answer and its own record), so nothing is sent twice; the taker
//! takes no cooldown or budget for it (this gate took them when the signup came).

use super::*;
use crate::cooldown::address_key;
use crate::messages::{Accepted, Recipient, SendReply, SendRequest};
use crate::queue::QueuedItem;
use crate::tracking::SignupState;
use signup_verify_domain::email::EmailAddress;
use signup_verify_domain::error::ApiError;
use signup_verify_domain::mailbox::Mailbox;
use signup_verify_domain::request_id::RequestId;

/// From this many configuration errors in a row, a region "stays paused": the first may be a
/// template being replaced; the second came a whole pause later.
pub(crate) const HAND_OVER_AFTER_CONFIG_ERRORS: u32 = 2;

impl<S: GateStore, L: SenderLink, R: GateRuntime> Gate<S, L, R> {
    /// Whether the queue is handed over now rather than waiting out its pause.
    pub(super) fn hands_over(&self) -> bool {
        self.config.pool.is_some()
            && self.state.borrow().config_errors >= HAND_OVER_AFTER_CONFIG_ERRORS
    }

    /// Hands `head` to the next region of its mailbox's order that takes it. `true` when it
    /// left this queue; `false` when every other region declined or failed (it stays).
    pub(super) async fn hand_over_head(&self, head: &QueuedItem) -> bool {
        let Some(place) = &self.config.pool else {
            return false;
        };
        let row = match self.load_signup(&head.key) {
            Ok(row) => row,
            Err(e) => {
                self.log_store_error(&e);
                return false;
            }
        };
        let from = match &row {
            Some(row) if !row.nonce.is_empty() => format!("{}/{}", place.region, row.nonce),
            _ => format!("{}/queue-{}", place.region, head.id),
        };
        let mailbox = Mailbox::of(&head.email);
        let others: Vec<_> = place
            .regions
            .order(mailbox.as_str())
            .into_iter()
            .filter(|region| region.name != place.region)
            .collect();
        let request_id = head
            .request_id
            .clone()
            .unwrap_or_else(|| RequestId::from_ray_or_random(None, || self.runtime.random_u32()));
        for (i, region) in others.iter().enumerate() {
            let request = SendRequest {
                email: head.email.clone(),
                request_id: request_id.clone(),
                presented: None,
                decoy: false,
                may_decline: i + 1 < others.len(),
                handed_from: Some(from.clone()),
            };
            match self.runtime.hand_over(&region.name, &request).await {
                Ok(Ok(accepted)) => {
                    let moved_to = accepted
                        .signup()
                        .cloned()
                        .map(|s| s.in_region(&region.name));
                    return match self.handed_over(head, row, moved_to) {
                        Ok(()) => {
                            self.runtime.log_error(log_line!({"event": "handed_over", "to": region.name, "address": tag_of(&head.key), "request_id": head.request_id}));
                            true
                        }
                        Err(e) => {
                            // The taker holds it and will not take it twice: the next try
                            // records it.
                            self.log_store_error(&e);
                            false
                        }
                    };
                }
                Ok(Err(ApiError::RegionPaused { .. })) => continue,
                Ok(Err(error)) => {
                    self.runtime.log_error(log_line!({"event": "hand_over_refused", "to": region.name, "code": error.code(), "address": tag_of(&head.key)}));
                    return false;
                }
                Err(error) => {
                    self.runtime.log_error(
                        log_line!({"event": "hand_over_failed", "to": region.name, "error": error}),
                    );
                    return false;
                }
            }
        }
        false
    }

    /// The head went to another region: out of the queue, and its row names where it is now
    /// (one synchronous step).
    fn handed_over(
        &self,
        head: &QueuedItem,
        row: Option<Signup>,
        moved_to: Option<signup_verify_domain::status_token::SignupRef>,
    ) -> Result<(), StoreError> {
        if let Some(mut row) = row {
            row.state = SignupState::Dropped;
            row.reason = Some("handed_over".into());
            row.moved_to = moved_to;
            row.next_check_ms = None;
            self.put_signup(&head.key, &row)?;
        }
        self.store.remove(head.id)?;
        self.update(|g| {
            *g.counters.drops.entry("handed_over".into()).or_default() += 1;
        });
        Ok(())
    }

    /// A signup handed over by the gate of another region (`from`: `<region>/<nonce>`): kept
    /// once, as a signup of this gate's own (sent or queued here), without a cooldown or a
    /// budget count; answered with the signup it is here. `may_decline` as for a new signup.
    pub async fn adopt(
        &self,
        email: &EmailAddress,
        request_id: &RequestId,
        from: &str,
        may_decline: bool,
    ) -> SendReply {
        self.count(|g| g.cost.signups = g.cost.signups.saturating_add(1));
        let reply = self.take_over(email, request_id, from, may_decline).await;
        self.save_state();
        reply
    }

    async fn take_over(
        &self,
        email: &EmailAddress,
        request_id: &RequestId,
        from: &str,
        may_decline: bool,
    ) -> SendReply {
        let arrival = self.runtime.now_ms();
        let key = address_key(&self.address_secret, email);
        let to = Recipient {
            email,
            key: &key,
            request_id: Some(request_id),
        };
        let existing = match self.load_signup(&key) {
            Ok(existing) => existing,
            Err(e) => return self.unavailable(&e, to),
        };
        let here = |row: &Signup| signup_verify_domain::status_token::SignupRef {
            key: key.clone(),
            signed_up_ms: row.signed_up_ms,
            nonce: row.nonce.clone(),
            region: None,
        };
        // Asked again: answered as the first time, nothing sent again.
        if let Some(row) = existing
            .as_ref()
            .filter(|row| row.handed_from.as_deref() == Some(from))
        {
            let answer = match row.state {
                SignupState::Queued => {
                    let position = self.queued_position(&key, arrival).unwrap_or(1);
                    self.queued_reply(position, arrival)
                }
                _ => Ok(Accepted::Sent {
                    message_id: row.message_id.clone(),
                    signup: None,
                }),
            };
            return answer.map(|a| a.made(Some(here(row))));
        }
        // Queued here already (a new signup of the mailbox came here meanwhile): one mail.
        if let Some(reply) = self.already_queued(to, arrival) {
            return reply.map(|a| a.made(existing.as_ref().map(here)));
        }
        if let Some(declined) = self.declined(may_decline, arrival) {
            return declined;
        }
        let nonce = match self.fresh_nonce() {
            Ok(nonce) => nonce,
            Err(error) => {
                self.runtime.log_error(log_line!({"event": "random_source_failed", "error": error, "request_id": request_id}));
                return Err(ApiError::Unavailable);
            }
        };
        let tracked = match self.track_signup(&key, email, arrival, nonce, None, Some(from)) {
            Ok(tracked) => tracked,
            Err(e) => return self.unavailable(&e, to),
        };
        let made = tracked.signup_ref(&key);
        let reply = self.send_or_queue(to, arrival, may_decline).await;
        let follow_up_due = self.settle_signup(&key, tracked, &reply);
        if let Some(at) = follow_up_due {
            self.alarm_by(at).await;
        }
        reply.map(|accepted| accepted.made(Some(made)))
    }
}
