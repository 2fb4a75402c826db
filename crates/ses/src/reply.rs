//! The SES Query XML replies to the gate's calls (`SendCustomVerificationEmail`,
//! `GetIdentityVerificationAttributes`, `DeleteIdentity`, `ListIdentities`), parsed with quick-xml into a typed
//! [`Reply`]. Anything that is not a well-formed success or error document for one of these
//! actions is [`Unparseable`], never a success. DTDs are refused outright, so no entity is ever expanded
//! beyond XML's five predefined ones and character references.

use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::Event;
use quick_xml::Reader;

/// The most nested elements a reply may have; SES uses four.
const MAX_DEPTH: usize = 16;
/// The most elements a reply may have in all (100 identities' statuses take about 410; a
/// `ListIdentities` page of 1,000 about 1,006).
const MAX_ELEMENTS: usize = 1100;

/// What SES answered, once the XML made sense.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Sent {
        message_id: String,
        request_id: Option<String>,
    },
    /// `GetIdentityVerificationAttributes`: the status of each identity SES knows, as
    /// `(identity, VerificationStatus)`. Identities SES does not know are left out.
    Checked {
        statuses: Vec<(String, String)>,
        request_id: Option<String>,
    },
    /// `DeleteIdentity` succeeded (SES also says so for an identity it never had).
    Deleted {
        request_id: Option<String>,
    },
    /// One `ListIdentities` page: the identities, and the token for the next page if any.
    Listed {
        identities: Vec<String>,
        next_token: Option<String>,
        request_id: Option<String>,
    },
    Failed(SesError),
}

/// An `ErrorResponse`. Only `code` drives behaviour; the rest is for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SesError {
    /// `Sender` or `Receiver`, when given.
    pub kind: Option<String>,
    pub code: String,
    pub message: Option<String>,
    pub request_id: Option<String>,
}

/// Why a body is not a reply we can trust. The reason is for the log only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unparseable(pub &'static str);

impl std::fmt::Display for Unparseable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unparseable SES reply: {}", self.0)
    }
}

/// Parses a reply body. `header_request_id` is the `x-amzn-RequestId` header, used when the body
/// carries no request id of its own.
pub fn parse_reply(body: &[u8], header_request_id: Option<&str>) -> Result<Reply, Unparseable> {
    let root = parse_tree(body)?;
    let header_request_id = header_request_id.map(str::trim).filter(|s| !s.is_empty());
    let request_id = root
        .child_text("RequestId")
        .or_else(|| root.child_text("RequestID"))
        .or_else(|| {
            root.child("ResponseMetadata")
                .and_then(|m| m.child_text("RequestId"))
        })
        .or(header_request_id)
        .map(str::to_string);

    let error = if root.name == "ErrorResponse" {
        Some(
            root.child("Error")
                .ok_or(Unparseable("ErrorResponse without an Error"))?,
        )
    } else {
        root.child("Errors")
            .and_then(|errors| errors.child("Error"))
    };
    if let Some(error) = error {
        let code = error
            .child_text("Code")
            .ok_or(Unparseable("error without a Code"))?;
        return Ok(Reply::Failed(SesError {
            kind: error.child_text("Type").map(str::to_string),
            code: code.to_string(),
            message: error.child_text("Message").map(str::to_string),
            request_id,
        }));
    }
    match root.name.as_str() {
        "SendCustomVerificationEmailResponse" => {
            let message_id = root
                .child("SendCustomVerificationEmailResult")
                .and_then(|result| result.child_text("MessageId"))
                .ok_or(Unparseable("success without a MessageId"))?;
            Ok(Reply::Sent {
                message_id: message_id.to_string(),
                request_id,
            })
        }
        "GetIdentityVerificationAttributesResponse" => {
            let entries = root
                .child("GetIdentityVerificationAttributesResult")
                .and_then(|result| result.child("VerificationAttributes"))
                .ok_or(Unparseable("success without VerificationAttributes"))?;
            let statuses = entries
                .children
                .iter()
                .filter(|entry| entry.name == "entry")
                .map(|entry| {
                    let identity = entry.child_text("key");
                    let status = entry
                        .child("value")
                        .and_then(|value| value.child_text("VerificationStatus"));
                    match (identity, status) {
                        (Some(identity), Some(status)) => {
                            Ok((identity.to_string(), status.to_string()))
                        }
                        _ => Err(Unparseable("an entry without a key or a status")),
                    }
                })
                .collect::<Result<_, _>>()?;
            Ok(Reply::Checked {
                statuses,
                request_id,
            })
        }
        "DeleteIdentityResponse" => Ok(Reply::Deleted { request_id }),
        "ListIdentitiesResponse" => {
            let result = root
                .child("ListIdentitiesResult")
                .ok_or(Unparseable("success without ListIdentitiesResult"))?;
            let identities = result
                .child("Identities")
                .ok_or(Unparseable("success without Identities"))?
                .children
                .iter()
                .filter(|member| member.name == "member")
                .map(|member| member.text.trim().to_string())
                .filter(|identity| !identity.is_empty())
                .collect();
            Ok(Reply::Listed {
                identities,
                next_token: result.child_text("NextToken").map(str::to_string),
                request_id,
            })
        }
        _ => Err(Unparseable(
            "the root element is not a response to any call the gate makes",
        )),
    }
}

/// One element: its local name (namespace prefix dropped), its own text and its children.
#[derive(Debug, Default)]
struct Element {
    name: String,
    text: String,
    children: Vec<Element>,
}

impl Element {
    fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// A direct child's trimmed text, if it has any.
    fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name)
            .map(|c| c.text.trim())
            .filter(|t| !t.is_empty())
    }
}

/// The trimmed text of every element called `name` in an SES reply, in document order, for the
/// calls other tools make (`ses-setup`); with the same limits and refusals as [`parse_reply`].
pub fn element_texts(body: &[u8], name: &str) -> Result<Vec<String>, Unparseable> {
    fn collect(element: &Element, name: &str, found: &mut Vec<String>) {
        if element.name == name {
            found.push(element.text.trim().to_string());
        }
        for child in &element.children {
            collect(child, name, found);
        }
    }
    let root = parse_tree(body)?;
    let mut found = Vec::new();
    collect(&root, name, &mut found);
    Ok(found)
}

fn parse_tree(body: &[u8]) -> Result<Element, Unparseable> {
    let text = std::str::from_utf8(body).map_err(|_| Unparseable("not UTF-8"))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = Reader::from_str(text);
    let mut open: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut count = 0usize;

    loop {
        let event = reader
            .read_event()
            .map_err(|_| Unparseable("malformed XML"))?;
        match event {
            Event::Start(ref start) | Event::Empty(ref start) => {
                count += 1;
                if root.is_some() {
                    return Err(Unparseable("content after the root element"));
                }
                if open.len() >= MAX_DEPTH || count > MAX_ELEMENTS {
                    return Err(Unparseable("too deep or too large"));
                }
                let element = Element {
                    name: start.local_name().into_inner().to_string(),
                    ..Element::default()
                };
                if matches!(event, Event::Start(_)) {
                    open.push(element);
                } else {
                    close(element, &mut open, &mut root);
                }
            }
            Event::End(_) => {
                let element = open.pop().ok_or(Unparseable("unmatched end tag"))?;
                close(element, &mut open, &mut root);
            }
            Event::Text(t) => append_text(&mut open, &t.xml10_content())?,
            Event::CData(c) => append_text(&mut open, &c.xml10_content())?,
            Event::GeneralRef(r) => {
                let resolved = if r.is_char_ref() {
                    r.resolve_char_ref()
                        .ok()
                        .flatten()
                        .map(String::from)
                        .ok_or(Unparseable("bad character reference"))?
                } else {
                    resolve_predefined_entity(&r)
                        .ok_or(Unparseable("undefined entity"))?
                        .to_string()
                };
                append_text(&mut open, &resolved)?;
            }
            Event::DocType(_) => return Err(Unparseable("a DTD (refused, never expanded)")),
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if !open.is_empty() {
        return Err(Unparseable("truncated: elements left open"));
    }
    root.ok_or(Unparseable("no root element"))
}

fn close(element: Element, open: &mut [Element], root: &mut Option<Element>) {
    match open.last_mut() {
        Some(parent) => parent.children.push(element),
        None => *root = Some(element),
    }
}

/// Text belongs to the innermost open element; outside the root only whitespace is allowed.
fn append_text(open: &mut [Element], text: &str) -> Result<(), Unparseable> {
    match open.last_mut() {
        Some(element) => {
            element.text.push_str(text);
            Ok(())
        }
        None if text.trim().is_empty() => Ok(()),
        None => Err(Unparseable("text outside the root element")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn fixtures_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/ses-xml")
    }

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(fixtures_dir().join(name)).expect("fixture exists")
    }

    fn failed(body: &[u8]) -> SesError {
        match parse_reply(body, None) {
            Ok(Reply::Failed(e)) => e,
            other => panic!("expected an SES error, got {other:?}"),
        }
    }

    /// Expectations for the fixtures that are successes of the non-sending calls.
    const DELETED: &str = "<deleted>";
    const CHECKED: &str = "<checked>";

    #[test]
    fn a_status_check_gives_every_listed_identity_with_its_status() {
        let reply = parse_reply(
            &fixture("handwritten__get-identity-verification-attributes.200.xml"),
            None,
        );
        assert_eq!(
            reply,
            Ok(Reply::Checked {
                statuses: vec![
                    ("domain.com".into(), "Pending".into()),
                    ("user@domain.com".into(), "Success".into()),
                ],
                request_id: Some("1d0c29f1-9bf3-11e1-8ee7-c98a0037a2b6".into()),
            })
        );
        let empty = br#"<GetIdentityVerificationAttributesResponse><GetIdentityVerificationAttributesResult><VerificationAttributes/></GetIdentityVerificationAttributesResult></GetIdentityVerificationAttributesResponse>"#;
        assert!(
            matches!(parse_reply(empty, None), Ok(Reply::Checked { statuses, .. }) if statuses.is_empty())
        );
        let no_status = br#"<GetIdentityVerificationAttributesResponse><GetIdentityVerificationAttributesResult><VerificationAttributes><entry><key>a@b.io</key><value/></entry></VerificationAttributes></GetIdentityVerificationAttributesResult></GetIdentityVerificationAttributesResponse>"#;
        assert!(parse_reply(no_status, None).is_err());
        let no_result = br#"<GetIdentityVerificationAttributesResponse/>"#;
        assert!(parse_reply(no_result, None).is_err());
    }

    #[test]
    fn a_list_page_gives_its_identities_and_the_next_token_and_a_full_page_fits_the_limits() {
        let members: String = (0..1000)
            .map(|n| format!("<member>u{n}@example.com</member>"))
            .collect();
        let page = format!(
            r#"<ListIdentitiesResponse xmlns="http://ses.amazonaws.com/doc/2010-12-01/"><ListIdentitiesResult><Identities>{members}</Identities><NextToken>u999@example.com</NextToken></ListIdentitiesResult><ResponseMetadata><RequestId>r-1</RequestId></ResponseMetadata></ListIdentitiesResponse>"#
        );
        match parse_reply(page.as_bytes(), None) {
            Ok(Reply::Listed {
                identities,
                next_token,
                request_id,
            }) => {
                assert_eq!(identities.len(), 1000);
                assert_eq!(identities[0], "u0@example.com");
                assert_eq!(next_token.as_deref(), Some("u999@example.com"));
                assert_eq!(request_id.as_deref(), Some("r-1"));
            }
            other => panic!("{other:?}"),
        }
        let last = br#"<ListIdentitiesResponse><ListIdentitiesResult><Identities/></ListIdentitiesResult></ListIdentitiesResponse>"#;
        assert_eq!(
            parse_reply(last, None),
            Ok(Reply::Listed {
                identities: vec![],
                next_token: None,
                request_id: None
            })
        );
        let no_identities =
            br#"<ListIdentitiesResponse><ListIdentitiesResult/></ListIdentitiesResponse>"#;
        assert!(parse_reply(no_identities, None).is_err());
    }

    #[test]
    fn every_shared_fixture_parses_to_the_expected_reply() {
        // (file, expected code or None for "not a reply to this action")
        let expected: &[(&str, Option<&str>)] = &[
            (
                "botocore__ses-delete-identity-error.400.xml",
                Some("InvalidParameterValue"),
            ),
            ("botocore__ses-delete-identity.200.xml", Some(DELETED)),
            ("botocore__ses-get-send-quota.200.xml", None),
            ("botocore__ses-send-email.200.xml", None),
            (
                "botocore__sts-get-session-token-error.403.xml",
                Some("AccessDenied"),
            ),
            (
                "err_address_not_specified.400.xml",
                Some("InvalidParameterValue"),
            ),
            (
                "err_configset_missing.400.xml",
                Some("ConfigurationSetDoesNotExist"),
            ),
            (
                "err_errors_wrapper_ec2.400.xml",
                Some("InvalidInstanceID.NotFound"),
            ),
            ("err_errors_wrapper_sdb.500.xml", Some("1")),
            ("err_extra_fields.400.xml", Some("MessageRejected")),
            (
                "err_from_not_verified.400.xml",
                Some("FromEmailAddressNotVerified"),
            ),
            ("err_invalid_address.400.xml", Some("InvalidParameterValue")),
            ("err_message_rejected.400.xml", Some("MessageRejected")),
            (
                "err_mws_request_expired_decl.400.xml",
                Some("RequestExpired"),
            ),
            ("err_no_message.400.xml", Some("InvalidParameterValue")),
            (
                "err_no_namespace.400.xml",
                Some("CustomVerificationEmailTemplateDoesNotExist"),
            ),
            (
                "err_signature_expired.403.xml",
                Some("SignatureDoesNotMatch"),
            ),
            (
                "err_signature_multiline_message.403.xml",
                Some("SignatureDoesNotMatch"),
            ),
            ("err_smithy_customized_402.402.xml", Some("Customized")),
            (
                "err_smithy_invalid_greeting.400.xml",
                Some("InvalidGreeting"),
            ),
            (
                "err_template_missing.400.xml",
                Some("CustomVerificationEmailTemplateDoesNotExist"),
            ),
            (
                "handwritten__get-identity-verification-attributes.200.xml",
                Some(CHECKED),
            ),
        ];
        let on_disk: Vec<String> = std::fs::read_dir(fixtures_dir())
            .expect("fixtures dir")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".xml"))
            .collect();
        assert_eq!(
            on_disk.len(),
            expected.len(),
            "a fixture was added without an expectation"
        );
        for (file, code) in expected {
            let result = parse_reply(&fixture(file), None);
            match (code, result) {
                (Some(DELETED), Ok(Reply::Deleted { request_id })) => {
                    assert!(request_id.is_some(), "{file}")
                }
                (Some(CHECKED), Ok(Reply::Checked { statuses, .. })) => {
                    assert_eq!(statuses.len(), 2, "{file}")
                }
                (Some(code), Ok(Reply::Failed(e))) => assert_eq!(e.code, *code, "{file}"),
                (None, Err(Unparseable(_))) => {}
                (_, other) => panic!("{file}: unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn error_fields_come_from_the_error_element_with_entities_decoded() {
        let e = failed(&fixture("err_configset_missing.400.xml"));
        assert_eq!(e.kind.as_deref(), Some("Sender"));
        assert_eq!(
            e.message.as_deref(),
            Some("Configuration set <signup-events> does not exist.")
        );
        assert_eq!(
            e.request_id.as_deref(),
            Some("8f7c2f0e-3c1a-4b7e-9d2c-1a2b3c4d5e6f")
        );
    }

    #[test]
    fn a_nested_decoy_code_does_not_replace_the_real_one() {
        let e = failed(&fixture("err_extra_fields.400.xml"));
        assert_eq!(
            (e.code.as_str(), e.message.as_deref()),
            ("MessageRejected", Some("Hi"))
        );
    }

    #[test]
    fn request_ids_are_found_under_every_spelling_and_fall_back_to_the_header() {
        assert_eq!(
            failed(&fixture("err_mws_request_expired_decl.400.xml"))
                .request_id
                .as_deref(),
            Some("cc980489-5f56-4f50-ab65-ca7027d52c75")
        );
        assert_eq!(
            failed(&fixture("err_errors_wrapper_ec2.400.xml"))
                .request_id
                .as_deref(),
            Some("06f382b0-d521-4bb6-988c-ca49d5ae6070")
        );
        let in_metadata = b"<ErrorResponse><Error><Code>Throttling</Code></Error>\
            <ResponseMetadata><RequestId>meta-id</RequestId></ResponseMetadata></ErrorResponse>";
        assert_eq!(failed(in_metadata).request_id.as_deref(), Some("meta-id"));
        let without = b"<ErrorResponse><Error><Code>Throttling</Code></Error></ErrorResponse>";
        let Ok(Reply::Failed(e)) = parse_reply(without, Some(" header-id ")) else {
            panic!("expected an error");
        };
        assert_eq!(e.request_id.as_deref(), Some("header-id"));
        assert_eq!(failed(without).request_id, None);
    }

    #[test]
    fn a_missing_message_is_none_and_a_multiline_one_is_kept_whole() {
        assert_eq!(failed(&fixture("err_no_message.400.xml")).message, None);
        let multiline = failed(&fixture("err_signature_multiline_message.403.xml"));
        let message = multiline.message.expect("message");
        assert!(message.starts_with("The request signature we calculated"));
        assert!(message.contains("'POST\n/\n"));
    }

    const SUCCESS: &str = r#"<SendCustomVerificationEmailResponse xmlns="http://ses.amazonaws.com/doc/2010-12-01/">
  <SendCustomVerificationEmailResult>
    <MessageId>0100017a-msg</MessageId>
  </SendCustomVerificationEmailResult>
  <ResponseMetadata>
    <RequestId>req-1</RequestId>
  </ResponseMetadata>
</SendCustomVerificationEmailResponse>"#;

    fn sent(body: &str) -> (String, Option<String>) {
        match parse_reply(body.as_bytes(), None) {
            Ok(Reply::Sent {
                message_id,
                request_id,
            }) => (message_id, request_id),
            other => panic!("expected success for {body:?}, got {other:?}"),
        }
    }

    #[test]
    fn a_success_gives_the_message_id_and_request_id() {
        assert_eq!(sent(SUCCESS), ("0100017a-msg".into(), Some("req-1".into())));
    }

    #[test]
    fn success_survives_bom_declaration_prefixes_cdata_references_comments_and_unknown_elements() {
        let variants = [
            format!("\u{feff}<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{SUCCESS}\n"),
            SUCCESS
                .replace(
                    "SendCustomVerificationEmailResponse xmlns=",
                    "ses:SendCustomVerificationEmailResponse xmlns:ses=",
                )
                .replace(
                    "</SendCustomVerificationEmailResponse>",
                    "</ses:SendCustomVerificationEmailResponse>",
                ),
            SUCCESS.replace("0100017a-msg", "<![CDATA[0100017a-msg]]>"),
            SUCCESS.replace("0100017a-msg", "0100017a&#45;msg"),
            SUCCESS.replace("0100017a-msg", "0100017a&#x2d;msg"),
            SUCCESS.replace("0100017a-msg", "<!-- a comment -->0100017a-msg"),
            SUCCESS.replace(
                "<ResponseMetadata>",
                "<Unknown a=\"1\"><Deep/></Unknown><ResponseMetadata>",
            ),
            SUCCESS.replace(
                "<MessageId>0100017a-msg</MessageId>",
                "<Extra/>\n\t <MessageId>\n  0100017a-msg\r\n</MessageId>",
            ),
        ];
        for body in variants {
            assert_eq!(sent(&body).0, "0100017a-msg", "{body}");
        }
    }

    fn unparseable(body: &[u8]) -> Unparseable {
        match parse_reply(body, Some("hdr")) {
            Err(e) => e,
            Ok(reply) => panic!(
                "{:?} should be unparseable, got {reply:?}",
                String::from_utf8_lossy(body)
            ),
        }
    }

    #[test]
    fn html_json_empty_and_truncated_bodies_are_never_a_success() {
        let truncated = &SUCCESS[..SUCCESS.len() - 20];
        let cut_in_message_id = &SUCCESS[..SUCCESS.find("msg").expect("msg")];
        let bodies: Vec<&[u8]> = vec![
            b"",
            b"   \n",
            b"<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1></body></html>",
            b"<html><head><title>503</title></head><body>Service Unavailable</body></html>",
            b"<html><body>Bad<br>Gateway</body></html>",
            br#"{"message":"Internal server error"}"#,
            b"Service Unavailable",
            truncated.as_bytes(),
            cut_in_message_id.as_bytes(),
            b"<SendCustomVerificationEmailResponse><SendCustomVerificationEmailResult></SendCustomVerificationEmailResult></SendCustomVerificationEmailResponse>",
            b"<SendCustomVerificationEmailResponse><SendCustomVerificationEmailResult><MessageId>  </MessageId></SendCustomVerificationEmailResult></SendCustomVerificationEmailResponse>",
            b"<SendCustomVerificationEmailResponse><MessageId>top-level</MessageId></SendCustomVerificationEmailResponse>",
            b"<ErrorResponse><RequestId>x</RequestId></ErrorResponse>",
            b"<ErrorResponse><Error><Message>no code</Message></Error></ErrorResponse>",
            b"<ErrorResponse><Error><Code>A</Code></Error></ErrorResponse><ErrorResponse/>",
            b"<ErrorResponse><Error><Code>A</Code></Error></ErrorResponse>trailing",
            b"<ErrorResponse><Error><Code>A</Code></Wrong></ErrorResponse>",
            b"<ErrorResponse><Error><Code>A &bogus; B</Code></Error></ErrorResponse>",
            b"<ErrorResponse><Error><Code>A & B</Code></Error></ErrorResponse>",
            b"<ErrorResponse><Error><Code>A&#0;</Code></Error></ErrorResponse>",
            b"<ErrorResponse><Error><Code>\xff\xfe</Code></Error></ErrorResponse>",
        ];
        for body in bodies {
            unparseable(body);
        }
    }

    #[test]
    fn a_dtd_is_refused_and_its_entities_never_expanded() {
        let xxe = br#"<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<SendCustomVerificationEmailResponse><SendCustomVerificationEmailResult><MessageId>&xxe;</MessageId></SendCustomVerificationEmailResult></SendCustomVerificationEmailResponse>"#;
        assert_eq!(
            unparseable(xxe),
            Unparseable("a DTD (refused, never expanded)")
        );
        let laughs = br#"<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]><ErrorResponse><Error><Code>&lol2;</Code></Error></ErrorResponse>"#;
        unparseable(laughs);
    }

    #[test]
    fn absurdly_deep_or_wide_documents_are_refused() {
        let deep = format!("{}{}", "<a>".repeat(100), "</a>".repeat(100));
        assert_eq!(
            unparseable(deep.as_bytes()),
            Unparseable("too deep or too large")
        );
        let wide = format!(
            "<ErrorResponse>{}<Error><Code>A</Code></Error></ErrorResponse>",
            "<x/>".repeat(2000)
        );
        assert_eq!(
            unparseable(wide.as_bytes()),
            Unparseable("too deep or too large")
        );
    }
}
