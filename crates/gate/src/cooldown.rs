//! Per-address limits, so the endpoint cannot be used to mail-bomb a third party: one send per
//! `EMAIL_COOLDOWN_SECONDS`, at most `EMAIL_DAILY_MAX` per 24 hours. Records are keyed by an
//! HMAC of the normalised address under a key that never leaves the gate, not by the address.
//! Pure: time and the key are passed in.

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::config::AddressLimits;
use signup_verify_domain::email::EmailAddress;
use signup_verify_domain::error::retry_after_secs;
use signup_verify_domain::mailbox::Mailbox;

pub const DAY_MS: u64 = 24 * 60 * 60 * 1000;
/// The purpose label of the mailbox key (the gate's key also makes identity keys).
const MAILBOX_KEY_LABEL: &[u8] = b"signup-verify/v2/mailbox-key\0";

impl AddressLimits {
    /// How long a record must be kept to still matter.
    pub fn retention_ms(&self) -> u64 {
        if self.daily_max > 0 {
            DAY_MS.max(self.cooldown_ms)
        } else {
            self.cooldown_ms
        }
    }
}

/// What is remembered about one (hashed) address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressRecord {
    /// The last admitted signup.
    pub last_ms: u64,
    /// Start of the current 24-hour window and the signups admitted in it.
    pub window_start_ms: u64,
    pub count: u32,
}

/// The record key: hex HMAC-SHA256, under a purpose label, of the canonical [`Mailbox`], so `Jane.Doe+x@gmail.com` and
/// `janedoe@gmail.com` share limits and a queue place. (Only for this key: the address sent to
/// SES stays as typed.)
pub fn address_key(secret: &[u8], email: &EmailAddress) -> String {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(MAILBOX_KEY_LABEL);
    mac.update(Mailbox::of(email).as_str().as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Admits a signup, returning the record to store, or refuses it with the seconds until a
/// retry can succeed.
pub fn admit(
    record: Option<&AddressRecord>,
    now_ms: u64,
    limits: AddressLimits,
) -> Result<AddressRecord, u64> {
    let Some(record) = record else {
        return Ok(AddressRecord {
            last_ms: now_ms,
            window_start_ms: now_ms,
            count: 1,
        });
    };
    // The refusals' Retry-After is coarse on purpose: the exact second would tell a prober when
    // the address was last submitted. A cooldown answers its whole window; the daily cap the time
    // left, rounded up to a whole hour.
    if limits.cooldown_ms > 0 && now_ms < record.last_ms + limits.cooldown_ms {
        return Err(retry_after_secs(limits.cooldown_ms));
    }
    let window_over = now_ms >= record.window_start_ms + DAY_MS;
    if limits.daily_max > 0 && !window_over && record.count >= limits.daily_max {
        let left = retry_after_secs(record.window_start_ms + DAY_MS - now_ms);
        return Err(left.div_ceil(3600) * 3600);
    }
    Ok(if window_over {
        AddressRecord {
            last_ms: now_ms,
            window_start_ms: now_ms,
            count: 1,
        }
    } else {
        AddressRecord {
            last_ms: now_ms,
            count: record.count + 1,
            ..*record
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: AddressLimits = AddressLimits {
        cooldown_ms: 60_000,
        daily_max: 5,
    };

    fn email(s: &str) -> EmailAddress {
        EmailAddress::parse(s).expect("valid")
    }

    #[test]
    fn the_key_is_the_mailbox_not_the_string_and_depends_on_the_secret() {
        let key = address_key(b"secret", &email("Foo.Bar@Example.com"));
        assert_eq!(key, address_key(b"secret", &email("foo.bar@example.com")));
        assert_eq!(
            key,
            address_key(b"secret", &email("FOO.BAR+news@example.com"))
        );
        assert_ne!(key, address_key(b"secret", &email("foo.baz@example.com")));
        assert_ne!(key, address_key(b"other", &email("foo.bar@example.com")));
        assert_eq!(key.len(), 64);
        assert!(!key.contains("foo"), "the key is not the plaintext");
    }

    #[test]
    fn a_second_signup_within_the_cooldown_is_refused_until_it_ends() {
        let first = admit(None, 1_000, LIMITS).expect("first");
        assert_eq!(admit(Some(&first), 1_500, LIMITS), Err(60));
        assert_eq!(
            admit(Some(&first), 60_999, LIMITS),
            Err(60),
            "the whole window, not the second it ends: that would date the last signup"
        );
        let second = admit(Some(&first), 61_000, LIMITS).expect("after the cooldown");
        assert_eq!(second.count, 2);
    }

    #[test]
    fn the_daily_cap_holds_until_the_window_started_by_the_first_signup_ends() {
        let mut record = admit(None, 0, LIMITS).expect("first");
        for i in 1..5 {
            record = admit(Some(&record), i * 60_000, LIMITS).expect("within the cap");
        }
        assert_eq!(record.count, 5);
        let refused = admit(Some(&record), 10 * 60_000, LIMITS);
        assert_eq!(
            refused,
            Err(DAY_MS / 1000),
            "the time left, rounded up to an hour"
        );
        assert_eq!(admit(Some(&record), DAY_MS - 3_600_001, LIMITS), Err(7_200));
        let next_day = admit(Some(&record), DAY_MS, LIMITS).expect("a new window");
        assert_eq!((next_day.window_start_ms, next_day.count), (DAY_MS, 1));
    }

    #[test]
    fn zero_switches_each_limit_off() {
        let no_cooldown = AddressLimits {
            cooldown_ms: 0,
            daily_max: 2,
        };
        let r = admit(None, 0, no_cooldown).expect("first");
        let r = admit(Some(&r), 1, no_cooldown).expect("no cooldown");
        assert!(
            admit(Some(&r), 2, no_cooldown).is_err(),
            "but the cap holds"
        );
        let no_cap = AddressLimits {
            cooldown_ms: 10,
            daily_max: 0,
        };
        let mut r = admit(None, 0, no_cap).expect("first");
        for i in 1..100 {
            r = admit(Some(&r), i * 10, no_cap).expect("no cap");
        }
        assert!(AddressLimits {
            cooldown_ms: 0,
            daily_max: 0
        }
        .is_off());
    }

    #[test]
    fn records_are_kept_as_long_as_the_longer_limit_needs_them() {
        assert_eq!(LIMITS.retention_ms(), DAY_MS);
        assert_eq!(
            AddressLimits {
                cooldown_ms: 5_000,
                daily_max: 0
            }
            .retention_ms(),
            5_000
        );
    }
}
