//! The outbox: webhook events delivered at least once, in the Standard Webhooks format, with the
//! retry schedule of `webhook`; an event leaves only on a 2xx or when its retry window ended,
//! and then releases its identity's clean-up.

use super::*;
use crate::config::WebhookConfig;
use crate::messages::SenderLink;
use crate::store::GateStore;
use crate::store::OutboxEvent;
use crate::store::StoreError;
use crate::webhook;
use signup_verify_domain::log_line;
use signup_verify_ses::time::rfc3339_utc;

impl<S: GateStore, L: SenderLink, R: GateRuntime> Gate<S, L, R> {
    /// One delivery attempt of `event`.
    pub(super) async fn deliver(
        &self,
        webhook: &WebhookConfig,
        event: OutboxEvent,
    ) -> Result<(), StoreError> {
        let now = self.runtime.now_ms();
        // The config stores the key as hex it made itself; should it ever not decode, nothing
        // is signed with an empty key: the delivery waits (and the log says why).
        let Ok(key) = hex::decode(webhook.key.expose()) else {
            self.runtime
                .log_error(log_line!({"event": "webhook_key_unreadable"}));
            return self
                .store
                .reschedule_event(&event.id, event.attempts, now + RETRY_LATER_MS);
        };
        let headers = webhook::headers(&key, &event.id, now, &event.body);
        self.save_state();
        let answer = self
            .runtime
            .post_webhook(webhook.url.as_str(), &headers, &event.body)
            .await;
        let now = self.runtime.now_ms();
        let attempts = event.attempts + 1;
        if matches!(answer, Ok(status) if webhook::delivered(status)) {
            self.store.remove_event(&event.id)?;
            self.update(|g| g.tracking.webhooks_delivered += 1);
            self.runtime.log_info(
                || log_line!({"event": "webhook_delivered", "id": event.id, "attempts": attempts}),
            );
            return self.release_cleanup(&event);
        }
        self.update(|g| g.tracking.webhook_attempts_failed += 1);
        let answer = match answer {
            Ok(status) => format!("HTTP {status}"),
            Err(error) => error,
        };
        match webhook::next_attempt_ms(event.created_ms, attempts, now) {
            Some(next) => {
                self.runtime.log_error(log_line!({"event": "webhook_failed", "id": event.id, "attempts": attempts, "answer": answer, "next_attempt": rfc3339_utc(next)}));
                self.store.reschedule_event(&event.id, attempts, next)
            }
            None => {
                self.runtime.log_error(log_line!({"event": "webhook_given_up", "id": event.id, "attempts": attempts, "answer": answer}));
                self.update(|g| g.tracking.webhooks_given_up += 1);
                self.store.remove_event(&event.id)?;
                // The event is lost either way; the identity must not stay forever.
                self.release_cleanup(&event)
            }
        }
    }

    pub(super) fn release_cleanup(&self, event: &OutboxEvent) -> Result<(), StoreError> {
        if !event.releases_cleanup {
            return Ok(());
        }
        if let Some(mut identity) = self.store.load_identity(&event.key)? {
            if identity.release(self.runtime.now_ms()) {
                self.store.store_identity(&event.key, &identity)?;
            }
        }
        Ok(())
    }
}
