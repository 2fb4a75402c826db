//! One structured log line, written straight into its text: `{"event":"…","key":value,…}`.
//! [`log_line!`](crate::log_line!) takes the flat-object syntax of `serde_json::json!` but builds
//! no `Value` tree: each field is serialized once, in place, through code shared by every line
//! (a `json!` tree is inlined at each of the Worker's 46 log sites and then serialized again).
//! Keys are written in the order given, `event` first (a `json!` object sorts them).
//!
//! Invariant: the text is always one valid JSON object whose first key is `event`; a value that
//! cannot be serialized is written as `null` rather than dropped or breaking the object.

use std::fmt;

use serde::Serialize;

/// A log line under construction; `Display` writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine(Vec<u8>);

impl LogLine {
    /// A line naming its `event`.
    pub fn new(event: &str) -> Self {
        let mut line = Self(Vec::with_capacity(128));
        line.0.push(b'{');
        line.put("event", event);
        line
    }

    /// Adds `key: value` (keys are escaped like values).
    #[must_use]
    pub fn field<T: Serialize + ?Sized>(mut self, key: &str, value: &T) -> Self {
        self.0.push(b',');
        self.put(key, value);
        self
    }

    fn put<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) {
        write_json(&mut self.0, key);
        self.0.push(b':');
        write_json(&mut self.0, value);
    }
}

/// Appends `value` as JSON, or `null` (never half a value) when it cannot be serialized.
fn write_json<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    let start = out.len();
    if serde_json::to_writer(&mut *out, value).is_err() {
        out.truncate(start);
        out.extend_from_slice(b"null");
    }
}

/// The finished line: the fields written so far and the closing brace.
impl fmt::Display for LogLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Only serde_json output and ASCII punctuation are ever pushed, so this always holds.
        f.write_str(std::str::from_utf8(&self.0).unwrap_or("{\"event\":\"log_line_not_utf8\""))?;
        f.write_str("}")
    }
}

/// `log_line!({"event": "name", "key": value, …})`: a [`LogLine`] with the syntax of a flat
/// `json!` object whose first key is `"event"`. Values are borrowed and serialized in place.
#[macro_export]
macro_rules! log_line {
    ({ "event": $event:expr $(, $key:literal : $value:expr)* $(,)? }) => {
        $crate::log_line::LogLine::new($event)$(.field($key, &$value))*
    };
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    fn parsed(line: &LogLine) -> Value {
        serde_json::from_str(&line.to_string()).expect("a log line is JSON")
    }

    #[test]
    fn a_line_is_the_same_json_object_as_the_json_macro_would_build() {
        let request_id = "req-1".to_string();
        let attempts: u32 = 3;
        let missing: Option<u64> = None;
        let line = crate::log_line!({"event": "queue_send", "attempts": attempts, "request_id": request_id, "waited": missing, "codes": ["a", "b"]});
        assert_eq!(
            parsed(&line),
            json!({"event": "queue_send", "attempts": 3, "request_id": "req-1", "waited": null, "codes": ["a", "b"]})
        );
        assert!(line.to_string().starts_with("{\"event\":\"queue_send\","));
    }

    #[test]
    fn quotes_and_control_characters_in_keys_and_values_stay_inside_their_strings() {
        let hostile = "x\",\"event\":\"forged\"}\n{";
        let line = LogLine::new(hostile).field(hostile, hostile);
        let value = parsed(&line);
        assert_eq!(value["event"], hostile);
        assert_eq!(value[hostile], hostile);
        assert_eq!(line.to_string().lines().count(), 1);
    }

    #[test]
    fn a_value_that_cannot_be_serialized_is_written_as_null_and_the_line_stays_json() {
        use std::collections::BTreeMap;
        // serde_json refuses a map whose keys are not strings.
        let bad: BTreeMap<(u8, u8), u8> = [((1, 2), 3)].into_iter().collect();
        let line = LogLine::new("e").field("bad", &bad).field("after", &1);
        assert_eq!(
            parsed(&line),
            json!({"event": "e", "bad": null, "after": 1})
        );
    }
}
