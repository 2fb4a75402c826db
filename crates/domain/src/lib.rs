//! The signup domain, pure and free of the Workers runtime: what an address is ([`email`]), the
//! inbox it delivers to ([`mailbox`]), a signup's credentials ([`status_token`]), redaction for
//! log lines ([`redact`]) and the lines themselves ([`log_line`]), the request id
//! ([`request_id`]), every answer HTTP can give ([`error`]), what settings are made of
//! ([`settings`]) and lookups in the embedded tables ([`sorted_text`]).
//!
//! Invariant: nothing here reaches `worker`; time and randomness are passed in.

pub mod email;
pub mod error;
pub mod log_line;
pub mod mailbox;
pub mod redact;
pub mod request_id;
pub mod settings;
pub mod sorted_text;
pub mod status_token;
