//! SES Query API reply bodies: the `<Action>Response` success envelope and the `ErrorResponse`
//! envelope, in SES's namespace, with every value XML-escaped.

pub const NAMESPACE: &str = "http://ses.amazonaws.com/doc/2010-12-01/";

pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// `<{action}Response>` with `<{action}Result>` holding `result_xml` (already escaped).
pub fn success(action: &str, result_xml: &str, request_id: &str) -> String {
    format!(
        "<{action}Response xmlns=\"{NAMESPACE}\">\n  <{action}Result>{result_xml}</{action}Result>\n  <ResponseMetadata>\n    <RequestId>{}</RequestId>\n  </ResponseMetadata>\n</{action}Response>\n",
        escape(request_id)
    )
}

pub fn error(kind: &str, code: &str, message: &str, request_id: &str) -> String {
    format!(
        "<ErrorResponse xmlns=\"{NAMESPACE}\">\n  <Error>\n    <Type>{}</Type>\n    <Code>{}</Code>\n    <Message>{}</Message>\n  </Error>\n  <RequestId>{}</RequestId>\n</ErrorResponse>\n",
        escape(kind),
        escape(code),
        escape(message),
        escape(request_id)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_so_an_address_cannot_inject_markup() {
        let body = error(
            "Sender",
            "InvalidParameterValue",
            "Invalid email address<a&b'\">.",
            "r-1",
        );
        assert!(
            body.contains("<Message>Invalid email address&lt;a&amp;b&apos;&quot;&gt;.</Message>")
        );
    }

    #[test]
    fn the_success_envelope_names_the_action_and_carries_the_request_id() {
        let body = success(
            "SendCustomVerificationEmail",
            "<MessageId>m</MessageId>",
            "r-2",
        );
        assert!(body.starts_with("<SendCustomVerificationEmailResponse xmlns=\"http://ses.amazonaws.com/doc/2010-12-01/\">"));
        assert!(body.contains("<SendCustomVerificationEmailResult><MessageId>m</MessageId></SendCustomVerificationEmailResult>"));
        assert!(body.contains("<RequestId>r-2</RequestId>"));
    }
}
