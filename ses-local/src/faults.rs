//! Fault injection: behaviours queued for the next N calls of an action, so a client's
//! reliability can be tested against throttling, server errors, junk bodies, delays and hangs,
//! and against the two that hurt most: SES took the call (the mail is sent) but the answer is
//! unreadable or never comes.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};

/// One injected behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `Throttling` (400), as SES answers over its rate.
    Throttle,
    /// `status:500` (`InternalFailure`) or `status:503` (`ServiceUnavailable`).
    Status(u16),
    /// A proxy's HTML error page (502).
    Html,
    /// 200 with an empty body.
    Empty,
    /// 200 with the success XML cut off halfway.
    Truncated,
    /// Wait this long, then answer normally.
    DelayMs(u64),
    /// Never answer.
    Hang,
    /// Run the call (the mail is in the outbox), then answer 200 with the XML cut off halfway.
    DeliverTruncated,
    /// Run the call (the mail is in the outbox), then never answer.
    DeliverHang,
    /// `InvalidParameterValue` echoing the address, as SES words it: "Invalid email address<…>."
    RejectAddress,
}

impl Fault {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.split_once(':') {
            None => match text {
                "throttle" => Ok(Self::Throttle),
                "html" => Ok(Self::Html),
                "empty" => Ok(Self::Empty),
                "truncated" => Ok(Self::Truncated),
                "hang" => Ok(Self::Hang),
                "deliver_truncated" => Ok(Self::DeliverTruncated),
                "deliver_hang" => Ok(Self::DeliverHang),
                "reject_address" => Ok(Self::RejectAddress),
                _ => Err(format!("unknown fault {text:?}")),
            },
            Some(("status", "500")) => Ok(Self::Status(500)),
            Some(("status", "503")) => Ok(Self::Status(503)),
            Some(("delay_ms", ms)) => ms
                .parse()
                .ok()
                .filter(|ms| *ms <= 600_000)
                .map(Self::DelayMs)
                .ok_or_else(|| format!("delay_ms needs 0..=600000, not {ms:?}")),
            _ => Err(format!("unknown fault {text:?}")),
        }
    }

    pub fn name(&self) -> String {
        match self {
            Self::Throttle => "throttle".into(),
            Self::Status(code) => format!("status:{code}"),
            Self::Html => "html".into(),
            Self::Empty => "empty".into(),
            Self::Truncated => "truncated".into(),
            Self::DelayMs(ms) => format!("delay_ms:{ms}"),
            Self::Hang => "hang".into(),
            Self::DeliverTruncated => "deliver_truncated".into(),
            Self::DeliverHang => "deliver_hang".into(),
            Self::RejectAddress => "reject_address".into(),
        }
    }
}

/// `POST /_faults` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRequest {
    pub action: String,
    pub fault: String,
    #[serde(default = "one")]
    pub count: u32,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Serialize)]
pub struct QueuedFault {
    pub action: String,
    pub fault: String,
}

#[derive(Default)]
pub struct Faults {
    queues: HashMap<String, VecDeque<Fault>>,
}

impl Faults {
    pub fn add(&mut self, request: &FaultRequest) -> Result<(), String> {
        let fault = Fault::parse(&request.fault)?;
        if request.count == 0 || request.count > 10_000 {
            return Err("count must be 1..=10000".into());
        }
        let queue = self.queues.entry(request.action.clone()).or_default();
        queue.extend(std::iter::repeat_n(fault, request.count as usize));
        Ok(())
    }

    /// The next behaviour for a call of `action`, if one is queued.
    pub fn next(&mut self, action: &str) -> Option<Fault> {
        self.queues.get_mut(action)?.pop_front()
    }

    pub fn clear(&mut self) {
        self.queues.clear();
    }

    pub fn list(&self) -> Vec<QueuedFault> {
        let mut all: Vec<QueuedFault> = self
            .queues
            .iter()
            .flat_map(|(action, queue)| {
                queue.iter().map(move |f| QueuedFault {
                    action: action.clone(),
                    fault: f.name(),
                })
            })
            .collect();
        all.sort_by(|a, b| a.action.cmp(&b.action));
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_fault_parses_and_names_itself_back() {
        for text in [
            "throttle",
            "status:500",
            "status:503",
            "html",
            "empty",
            "truncated",
            "delay_ms:250",
            "hang",
        ] {
            assert_eq!(Fault::parse(text).expect(text).name(), text);
        }
        for bad in ["status:404", "delay_ms:-1", "delay_ms:x", "explode", ""] {
            assert!(Fault::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn faults_apply_to_the_next_calls_of_their_action_in_order() {
        let mut faults = Faults::default();
        let request = |fault: &str, count| FaultRequest {
            action: "A".into(),
            fault: fault.into(),
            count,
        };
        faults.add(&request("throttle", 2)).expect("add");
        faults.add(&request("status:503", 1)).expect("add");
        assert_eq!(faults.next("B"), None);
        assert_eq!(faults.next("A"), Some(Fault::Throttle));
        assert_eq!(faults.next("A"), Some(Fault::Throttle));
        assert_eq!(faults.next("A"), Some(Fault::Status(503)));
        assert_eq!(faults.next("A"), None);
        assert!(faults.add(&request("throttle", 0)).is_err());
    }
}
