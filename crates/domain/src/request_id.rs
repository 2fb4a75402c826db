//! The request id that ties one signup's log lines together across the Worker and `SesGate`
//! (and a queued signup's later send): Cloudflare's `cf-ray` header when it is there,
//! else 16 random hex digits.
//!
//! Invariant: a [`RequestId`] is 1 to 64 characters of `[0-9A-Za-z-]`, checked when it is made and
//! when it is read back from an RPC body or a queue row, so a forged header can put nothing else
//! into a log line.

use serde::{Deserialize, Deserializer, Serialize};

const MAX_LEN: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct RequestId(String);

impl RequestId {
    /// `text` if it is a well-formed id.
    pub fn parse(text: &str) -> Option<Self> {
        let well_formed = !text.is_empty()
            && text.len() <= MAX_LEN
            && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        well_formed.then(|| Self(text.to_string()))
    }

    /// The request's `cf-ray` if it is well formed, else a new id from `random`.
    pub fn from_ray_or_random(cf_ray: Option<&str>, random: impl FnMut() -> u32) -> Self {
        cf_ray
            .and_then(|ray| Self::parse(ray.trim()))
            .unwrap_or_else(|| Self::random(random))
    }

    fn random(mut random: impl FnMut() -> u32) -> Self {
        let bytes: Vec<u8> = (0..2).flat_map(|_| random().to_be_bytes()).collect();
        Self(hex::encode(bytes))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for RequestId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).ok_or_else(|| serde::de::Error::custom("not a request id"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_well_formed_cf_ray_is_the_request_id() {
        let id = RequestId::from_ray_or_random(Some("8f2c1a9b7d3e4f01-LHR"), || 7);
        assert_eq!(id.as_str(), "8f2c1a9b7d3e4f01-LHR");
    }

    #[test]
    fn without_a_usable_cf_ray_the_id_is_sixteen_random_hex_digits() {
        let mut words = [0xdead_beef_u32, 0x0102_0304].into_iter();
        let id = RequestId::from_ray_or_random(None, || words.next().unwrap_or(0));
        assert_eq!(id.as_str(), "deadbeef01020304");
        let long = "a".repeat(MAX_LEN + 1);
        for forged in [
            "",
            "abc\"def",
            "a b",
            "x\n{\"event\":\"forged\"}",
            long.as_str(),
        ] {
            let id = RequestId::from_ray_or_random(Some(forged), || 1);
            assert_eq!(id.as_str(), "0000000100000001", "{forged:?}");
        }
    }

    #[test]
    fn an_id_is_checked_again_when_read_from_json() {
        let id: RequestId = serde_json::from_str("\"abc-123\"").expect("well formed");
        assert_eq!(serde_json::to_string(&id).expect("json"), "\"abc-123\"");
        assert!(serde_json::from_str::<RequestId>("\"a;b\"").is_err());
        assert!(serde_json::from_str::<RequestId>("\"\"").is_err());
    }
}
