//! The DNS-over-HTTPS answer parser and the lookup that reads its answers: what a resolver (or
//! anything answering at `DOH_URL`) sent, to a verdict about a domain's mail.
//!
//! Input: one byte picks the record type asked (MX, A, AAAA); the rest is the answer's body.
//!
//! Properties:
//! - the parser never panics and its TTLs are always within the clamp;
//! - an answer is only ever read as "no such name" when the body's `Status` is 3;
//! - MX hosts are lowercase, never empty and never end with a dot;
//! - fed to the lookup as the answer to each of its questions in turn, the body always ends it
//!   in at most three questions, and anything unusable ends it as "cannot tell" (fail open).

use signup_verify_web::address_check::{MailLookup, MailVerdict, Step, UNKNOWN_TTL_SECS};
use signup_verify_web::dns_answer::{parse_answer, Answer, RecordType, MAX_TTL_SECS, MIN_TTL_SECS};

pub fn check(data: &[u8]) {
    let [pick, body @ ..] = data else {
        return;
    };
    let record = match pick % 3 {
        0 => RecordType::Mx,
        1 => RecordType::A,
        _ => RecordType::Aaaa,
    };
    let text = String::from_utf8_lossy(body);
    let answer = parse_answer(body, record);
    if answer != Answer::Unusable {
        // Only a UTF-8 JSON object is ever read as an answer (its unread fields may hold any
        // number, so it is read as an object of anything, not as `Value`).
        assert!(
            std::str::from_utf8(body).is_ok(),
            "an answer from bytes that are not UTF-8"
        );
        let object = serde_json::from_slice::<
            std::collections::BTreeMap<String, serde::de::IgnoredAny>,
        >(body);
        assert!(
            object.is_ok(),
            "an answer from something that is not an object: {text:?}"
        );
    }
    let in_clamp = |ttl: &u32| (MIN_TTL_SECS..=MAX_TTL_SECS).contains(ttl);
    match &answer {
        Answer::Records { data, ttl_secs } => {
            assert!(in_clamp(ttl_secs), "a TTL outside the clamp: {ttl_secs}");
            assert!(!data.is_empty(), "records without data");
            if record == RecordType::Mx {
                for host in data {
                    assert!(!host.is_empty() && !host.ends_with('.'), "host {host:?}");
                    assert_eq!(host, &host.to_ascii_lowercase(), "host {host:?}");
                }
            }
        }
        Answer::NoSuchName { ttl_secs } => {
            assert!(in_clamp(ttl_secs));
            // The answer's own `Status`, read on its own (fields it does not read are skipped
            // as the parser skips them: a huge number there is no reason to doubt `Status`).
            #[derive(serde::Deserialize)]
            struct StatusOnly {
                #[serde(rename = "Status")]
                status: u64,
            }
            let status = serde_json::from_slice::<StatusOnly>(body)
                .map(|s| s.status)
                .ok();
            assert_eq!(status, Some(3), "NXDOMAIN from {text:?}");
        }
        Answer::NullMx { ttl_secs } | Answer::NoRecords { ttl_secs } => {
            assert!(in_clamp(ttl_secs));
        }
        Answer::Unusable => {}
    }
    // The lookup, with this body as the answer to every question it asks.
    let (mut lookup, mut step) = MailLookup::start();
    let mut asked = 0;
    let (verdict, ttl_secs) = loop {
        match step {
            Step::Ask(asked_type) => {
                asked += 1;
                assert!(asked <= 3, "more than three questions");
                step = lookup.on_answer(Some(parse_answer(body, asked_type)));
            }
            Step::Done { verdict, ttl_secs } => break (verdict, ttl_secs),
        }
    };
    if parse_answer(body, RecordType::Mx) == Answer::Unusable {
        assert_eq!(
            verdict,
            MailVerdict::Unknown,
            "an unusable answer refused something"
        );
    }
    if verdict == MailVerdict::Unknown {
        assert_eq!(ttl_secs, UNKNOWN_TTL_SECS);
    } else {
        assert!(in_clamp(&ttl_secs), "a verdict held {ttl_secs} s");
    }
}
