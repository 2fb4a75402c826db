//! Hand-over: a gate in a pool whose region stays paused (its queue's head met a configuration
//! error twice in a row: SES says the template, the From identity, production access, the
//! account or the identity quota is broken there) hands each queued signup to the next region
//! of its mailbox's rendezvous order that takes it ([`Gate::hand_over_head`]); the taker keeps
//! it as a signup of its own ([`Gate::adopt`]). Status and confirmation of a handed-over signup
//! are answered `Moved` here, naming it where it is now.
//!
//! Invariants:
//! - an item leaves this queue only after the taker answered that it holds it (sent or durably
//!   queued: a gate answers only after its writes are durable), and in the same synchronous
//!   step its row records where it went, so nothing is lost;
//! - every region may decline a hand-over, and a paused one does: an item goes only to a region
//!   that is sending, never back and forth between paused ones (none takes it: it stays);
//! - the taker knows a hand-over by `<region>/<nonce>` and takes it once however often it is
//!   asked (this gate may restart between the taker's answer and its own record), answering
//!   from the state it is in, so nothing is sent twice;
//! - a credential made here leads only to its own signup: when the taker already had the
//!   mailbox queued (another request's signup), the item merges into it unnamed, and its row
//!   here says so (`handed_over`, no `moved_to`);
//! - the taker takes no budget for it (this gate took it when the signup came) but records the
//!   mailbox's send for its cooldown, as for any signup it sends.

use super::PoolAsk;
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
            // A row made before nonces, or forgotten: the item itself, by its key and time.
            _ => format!("{}/{}@{}", place.region, head.key, head.enqueued_at_ms),
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
        for region in &others {
            let request = SendRequest {
                email: head.email.clone(),
                request_id: request_id.clone(),
                presented: None,
                decoy: false,
                // Every region may decline: a paused one must not take a paused one's queue.
                may_decline: true,
                contested_elsewhere: row.as_ref().is_some_and(|row| row.contested),
                handed_from: Some(from.clone()),
            };
            match self.runtime.hand_over(&region.name, &request).await {
                Ok(Ok(accepted)) => {
                    let moved_to = accepted
                        .signup()
                        .cloned()
                        .map(|s| s.in_region(&region.name));
                    return match self.handed_over(head, row, moved_to, SignupState::Dropped) {
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
                // SES there refused the address: it is refused here too.
                // (The other region reports it, to the webhook too: not reported twice.)
                Ok(Err(ApiError::Rejected)) => {
                    return match self.handed_over(head, row, None, SignupState::Rejected) {
                        Ok(()) => true,
                        Err(e) => {
                            self.log_store_error(&e);
                            false
                        }
                    };
                }
                // A timeout there may have reached SES, and an answer lost on the way may hide
                // a signup kept there: asked again later, the same region answers from what
                // it kept (never a second region, never a second mail).
                Ok(Err(ApiError::UpstreamTimeout)) | Err(_) => {
                    self.runtime.log_error(log_line!({"event": "hand_over_failed", "to": region.name, "address": tag_of(&head.key)}));
                    return false;
                }
                // Busy, unavailable, misconfigured there: nothing was kept; the next region may
                // take it.
                Ok(Err(error)) => {
                    self.runtime.log_error(log_line!({"event": "hand_over_refused", "to": region.name, "code": error.code(), "address": tag_of(&head.key)}));
                }
            }
        }
        false
    }

    /// The head went to another region: out of the queue, and its row names where it is now
    /// (one synchronous step).
    /// (`state`: `Dropped`, reason `handed_over`; or `Rejected` when SES there refused it.) No
    /// webhook event here: the region that holds it reports it. Its identity record claims no
    /// send from here.
    fn handed_over(
        &self,
        head: &QueuedItem,
        row: Option<Signup>,
        moved_to: Option<signup_verify_domain::status_token::SignupRef>,
        state: SignupState,
    ) -> Result<(), StoreError> {
        let reason = match state {
            SignupState::Rejected => "rejected",
            _ => "handed_over",
        };
        if let Some(mut row) = row {
            row.state = state;
            row.reason = (state != SignupState::Rejected).then(|| reason.to_string());
            row.moved_to = moved_to;
            row.next_check_ms = None;
            self.put_signup(&head.key, &row)?;
            self.unsent_identity(&row)?;
        }
        self.store.remove(head.id)?;
        self.update(|g| {
            *g.counters.drops.entry(reason.into()).or_default() += 1;
        });
        Ok(())
    }

    /// Another region took a signup of this gate's mailbox while this gate was paused (see
    /// [`crate::messages::SpillNote`]): the mailbox's cooldown starts here, and unless a signup
    /// here still has work, a row with no credential of its own records where it went (it
    /// contests a later signup here for the link's life, and the cookie of the one that went
    /// holds it). Best effort: nothing is refused.
    pub fn note_spill(
        &self,
        email: &EmailAddress,
        landed: Option<&signup_verify_domain::status_token::SignupRef>,
    ) {
        let now = self.runtime.now_ms();
        let key = address_key(&self.address_secret, email);
        let result =
            (|| {
                match self.admit_address(&key, now) {
                    Ok(_) | Err(Refusal::Cooldown { .. }) => {}
                    Err(Refusal::Store(e)) => return Err(e),
                }
                let Some(landed) = landed else {
                    return Ok(());
                };
                // A signup here within its link's life (sent, verified and waiting for its
                // confirmation, or still to be checked) is never replaced by a record.
                let link_ttl = self.config.tracking.link_ttl_ms;
                if self.load_signup(&key)?.as_ref().is_some_and(|row| {
                    crate::store::has_work(row) || now < row.signed_up_ms + link_ttl
                }) {
                    return Ok(());
                }
                let mut row = Signup::queued(email, now, String::new());
                row.state = SignupState::Dropped;
                row.reason = Some("spilled".into());
                row.moved_to = Some(landed.clone());
                row.issued = self.config.tracking.status_token_secret.is_some();
                self.put_signup(&key, &row)
            })();
        if let Err(e) = result {
            self.log_store_error(&e);
        }
        self.save_state();
    }

    /// A signup handed over by the gate of another region (`from`: `<region>/<nonce>`): kept
    /// once, as a signup of this gate's own (sent or queued here), with the mailbox's cooldown
    /// but no budget count; answered with the signup it is here (none when it merged into one
    /// already queued here). `may_decline` as for a new signup.
    pub async fn adopt(
        &self,
        email: &EmailAddress,
        request_id: &RequestId,
        from: &str,
        pool: PoolAsk,
    ) -> SendReply {
        self.count(|g| g.cost.signups = g.cost.signups.saturating_add(1));
        let reply = self.take_over(email, request_id, from, pool).await;
        self.save_state();
        reply
    }

    async fn take_over(
        &self,
        email: &EmailAddress,
        request_id: &RequestId,
        from: &str,
        pool: PoolAsk,
    ) -> SendReply {
        let may_decline = pool.may_decline;
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
        // Asked again: answered from the state the first time left, nothing sent again (a row
        // that has moved on since is a new hand-over).
        if let Some(row) = existing
            .as_ref()
            .filter(|row| row.handed_from.as_deref() == Some(from) && row.moved_to.is_none())
        {
            let answer = match row.state {
                SignupState::Queued => {
                    let position = self.queued_position(&key, arrival).unwrap_or(1);
                    self.queued_reply(position, arrival)
                }
                SignupState::Sent | SignupState::Verified | SignupState::Expired => {
                    Ok(Accepted::Sent {
                        message_id: row.message_id.clone(),
                        signup: None,
                    })
                }
                SignupState::Rejected => Err(ApiError::Rejected),
                // Dropped here unsent: the giver keeps its item and sends it itself.
                SignupState::Dropped => Err(ApiError::Unavailable),
            };
            return answer.map(|a| a.made(Some(here(row))));
        }
        // Queued here already, for another request: one mail, and the item merges into that
        // signup without naming it (its credentials are that request's alone).
        if let Some(reply) = self.already_queued(to, arrival) {
            return reply;
        }
        if let Some(declined) = self.declined(may_decline, arrival, &key, None) {
            return declined;
        }
        // The row here that records this very signup leaving (handed over or spilled from
        // here): it is the signup's own, never a contest against it.
        let left_from_here = existing.as_ref().and_then(|row| {
            row.moved_to.as_ref().filter(|to| {
                from.split_once('/').is_some_and(|(region, nonce)| {
                    to.region.as_deref() == Some(region) && to.nonce == nonce
                })
            })
        });
        // Handed back to the gate it first left: the same signup again, under its first nonce
        // and time, so the credentials made here still name it.
        let returning = existing
            .as_ref()
            .filter(|row| left_from_here.is_some() && !row.nonce.is_empty());
        let nonce = match returning {
            Some(row) => row.nonce.clone(),
            None => self.fresh_nonce(request_id)?,
        };
        // The mailbox's cooldown starts here as for any send from here (no budget: the giver
        // took it). A cooldown already running here stands.
        let admission = match self.admit_address(&key, arrival) {
            Ok(admission) => admission,
            Err(Refusal::Cooldown { .. }) => None,
            Err(Refusal::Store(e)) => return self.unavailable(&e, to),
        };
        let tracked = match self.track_signup(
            &key,
            email,
            arrival,
            nonce,
            super::lifecycle::Came {
                presented: left_from_here,
                handed_from: Some(from),
                signed_up_ms: returning.map(|row| row.signed_up_ms),
                contested_elsewhere: pool.contested_elsewhere,
            },
        ) {
            Ok(tracked) => tracked,
            Err(e) => return self.unavailable(&e, to),
        };
        let made = tracked.signup_ref(&key);
        let reply = self.send_or_queue(to, arrival, may_decline).await;
        let follow_up_due = self.settle_signup(&key, tracked, &reply);
        if let (Err(error), Some(admission)) = (&reply, admission) {
            // Neither sent nor taken (a timeout may have reached SES: its cooldown stays).
            if *error != ApiError::UpstreamTimeout {
                self.take_back(admission);
            }
        }
        if let Some(at) = follow_up_due {
            self.alarm_by(at).await;
        }
        reply.map(|accepted| accepted.made(Some(made)))
    }
}
