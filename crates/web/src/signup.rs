//! The signup request body: which content types are accepted, how big a body may be, and how a
//! JSON object or urlencoded form becomes one [`EmailAddress`].

use percent_encoding::percent_decode;
use serde::Deserialize;

use signup_verify_domain::email::EmailAddress;
use signup_verify_domain::email::EmailError;
use signup_verify_domain::error::ApiError;

/// Bodies larger than this are refused with 413 before they are read in full.
pub const MAX_BODY_BYTES: usize = 4096;

/// The two body encodings a signup may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    Json,
    Form,
}

/// Reads a `Content-Type` header: the media type, case-insensitive, with an optional
/// `charset=utf-8` parameter. Anything else (another charset, another type, none) is 415.
pub fn parse_content_type(header: Option<&str>) -> Result<BodyFormat, ApiError> {
    let header = header.ok_or(ApiError::UnsupportedMediaType)?;
    let mut parts = header.split(';');
    let media_type = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    let format = match media_type.as_str() {
        "application/json" => BodyFormat::Json,
        "application/x-www-form-urlencoded" => BodyFormat::Form,
        _ => return Err(ApiError::UnsupportedMediaType),
    };
    for param in parts {
        let param = param.trim();
        if param.is_empty() {
            continue;
        }
        let (name, value) = param
            .split_once('=')
            .ok_or(ApiError::UnsupportedMediaType)?;
        let value = value.trim().trim_matches('"');
        let is_utf8_charset = name.trim().eq_ignore_ascii_case("charset")
            && (value.eq_ignore_ascii_case("utf-8") || value.eq_ignore_ascii_case("utf8"));
        if !is_utf8_charset {
            return Err(ApiError::UnsupportedMediaType);
        }
    }
    Ok(format)
}

/// Turnstile's form field, as its widget adds it to a form.
pub const TURNSTILE_FORM_FIELD: &str = "cf-turnstile-response";
/// The same token in a JSON body.
pub const TURNSTILE_JSON_FIELD: &str = "turnstileToken";

/// What a valid body asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submission {
    Signup {
        email: EmailAddress,
        turnstile_token: Option<String>,
    },
    /// The hidden honeypot field was filled in: a bot. Its address is checked as any other
    /// (so its errors are everyone's), it goes through the same Turnstile check, then gets the
    /// normal success answer and nothing is sent.
    Honeypot {
        email: EmailAddress,
        turnstile_token: Option<String>,
    },
}

/// The fields a signup may carry, before validation.
#[derive(Default)]
struct Fields {
    email: Option<String>,
    turnstile_token: Option<String>,
    honeypot: bool,
}

/// Turns a body of at most [`MAX_BODY_BYTES`] into a submission. `honeypot_field` names the
/// hidden field that people leave empty.
pub fn parse_signup(
    format: BodyFormat,
    body: &[u8],
    honeypot_field: &str,
) -> Result<Submission, ApiError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge);
    }
    let fields = match format {
        BodyFormat::Json => fields_from_json(body, honeypot_field)?,
        BodyFormat::Form => fields_from_form(body, honeypot_field)?,
    };
    let email =
        EmailAddress::parse(&fields.email.ok_or(ApiError::MissingEmail)?).map_err(|e| match e {
            EmailError::Empty => ApiError::MissingEmail,
            EmailError::Invalid => ApiError::InvalidEmail,
        })?;
    let turnstile_token = fields.turnstile_token.filter(|t| !t.trim().is_empty());
    Ok(if fields.honeypot {
        Submission::Honeypot {
            email,
            turnstile_token,
        }
    } else {
        Submission::Signup {
            email,
            turnstile_token,
        }
    })
}

/// The JSON shape: an object whose `email` (and `turnstileToken`, if any) is a string. Other
/// fields are ignored except the honeypot; a duplicated `email` key is refused, not guessed at.
#[derive(Deserialize)]
struct JsonSignup {
    email: Option<serde_json::Value>,
    #[serde(rename = "turnstileToken")]
    turnstile_token: Option<serde_json::Value>,
    #[serde(flatten)]
    rest: serde_json::Map<String, serde_json::Value>,
}

fn optional_string(value: Option<serde_json::Value>) -> Result<Option<String>, ApiError> {
    match value {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ApiError::InvalidBody),
    }
}

fn fields_from_json(body: &[u8], honeypot_field: &str) -> Result<Fields, ApiError> {
    // serde would also fill the struct from an array (`["a@b.io"]`): only an object will do.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::InvalidBody);
    }
    let parsed: JsonSignup = serde_json::from_slice(body).map_err(|_| ApiError::InvalidBody)?;
    let honeypot = match parsed.rest.get(honeypot_field) {
        None | Some(serde_json::Value::Null) => false,
        Some(serde_json::Value::String(s)) => !s.trim().is_empty(),
        Some(_) => true,
    };
    Ok(Fields {
        email: optional_string(parsed.email)?,
        turnstile_token: optional_string(parsed.turnstile_token)?,
        honeypot,
    })
}

fn fields_from_form(body: &[u8], honeypot_field: &str) -> Result<Fields, ApiError> {
    let mut fields = Fields::default();
    for pair in body.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        let (name, value) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &[][..]),
        };
        let name = decode_form_component(name)?;
        let slot = match name.as_str() {
            "email" => &mut fields.email,
            TURNSTILE_FORM_FIELD => &mut fields.turnstile_token,
            _ if name == honeypot_field => {
                fields.honeypot |= !decode_form_component(value)?.trim().is_empty();
                continue;
            }
            _ => continue,
        };
        if slot.replace(decode_form_component(value)?).is_some() {
            return Err(ApiError::InvalidBody);
        }
    }
    Ok(fields)
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` a byte, and the bytes must
/// be UTF-8 (a lossy decode could turn garbage into a different, valid-looking address).
fn decode_form_component(raw: &[u8]) -> Result<String, ApiError> {
    let spaced: Vec<u8> = raw
        .iter()
        .map(|&b| if b == b'+' { b' ' } else { b })
        .collect();
    percent_decode(&spaced)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| ApiError::InvalidBody)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email_of(submission: Result<Submission, ApiError>) -> Result<String, ApiError> {
        match submission? {
            Submission::Signup { email, .. } => Ok(email.to_string()),
            Submission::Honeypot { .. } => Ok("<honeypot>".into()),
        }
    }

    fn json(body: &str) -> Result<String, ApiError> {
        email_of(parse_signup(BodyFormat::Json, body.as_bytes(), "website"))
    }

    fn form(body: &[u8]) -> Result<String, ApiError> {
        email_of(parse_signup(BodyFormat::Form, body, "website"))
    }

    #[test]
    fn json_and_form_content_types_are_recognised_with_or_without_a_utf8_charset() {
        for (header, format) in [
            ("application/json", BodyFormat::Json),
            ("Application/JSON; charset=UTF-8", BodyFormat::Json),
            ("application/json;charset=\"utf-8\"", BodyFormat::Json),
            ("application/x-www-form-urlencoded", BodyFormat::Form),
            (
                "application/x-www-form-urlencoded; charset=utf-8",
                BodyFormat::Form,
            ),
        ] {
            assert_eq!(parse_content_type(Some(header)), Ok(format), "{header}");
        }
    }

    #[test]
    fn other_content_types_and_charsets_are_unsupported() {
        for header in [
            None,
            Some(""),
            Some("text/plain"),
            Some("multipart/form-data; boundary=x"),
            Some("application/json; charset=latin1"),
            Some("application/json; boundary=x"),
            Some("application/jsonx"),
            Some("application/json-patch+json"),
        ] {
            assert_eq!(
                parse_content_type(header),
                Err(ApiError::UnsupportedMediaType),
                "{header:?}"
            );
        }
    }

    #[test]
    fn a_json_object_with_an_email_string_gives_the_address() {
        assert_eq!(
            json(r#"{"email":"user+tag@Example.com"}"#),
            Ok("user+tag@example.com".into())
        );
        assert_eq!(
            json(r#" {"name":"x","email":" a@b.io "} "#),
            Ok("a@b.io".into())
        );
        assert_eq!(
            json(r#"{"email":"\u0075ser@example.com"}"#),
            Ok("user@example.com".into())
        );
    }

    #[test]
    fn malformed_or_wrongly_shaped_json_is_an_invalid_body() {
        for body in [
            "",
            "{",
            "not json",
            "[]",
            r#"["email","a@b.io"]"#,
            r#"["a@b.io"]"#,
            r#" [ "a@b.io" ] "#,
            r#""a@b.io""#,
            "null",
            r#"{"email":42}"#,
            r#"{"email":true}"#,
            r#"{"email":["a@b.io"]}"#,
            r#"{"email":{"address":"a@b.io"}}"#,
            r#"{"email":"a@b.io","email":"c@d.io"}"#,
            r#"{"email":"a@b.io"} trailing"#,
            "\u{feff}{\"email\":\"a@b.io\"}",
        ] {
            assert_eq!(json(body), Err(ApiError::InvalidBody), "{body:?}");
        }
        assert_eq!(
            parse_signup(BodyFormat::Json, b"{\"email\":\"a\xff@b.io\"}", "website"),
            Err(ApiError::InvalidBody)
        );
    }

    #[test]
    fn absent_null_or_blank_json_email_is_missing() {
        for body in [
            "{}",
            r#"{"mail":"a@b.io"}"#,
            r#"{"email":null}"#,
            r#"{"email":""}"#,
            r#"{"email":"  "}"#,
        ] {
            assert_eq!(json(body), Err(ApiError::MissingEmail), "{body:?}");
        }
    }

    #[test]
    fn a_json_email_that_is_not_an_address_is_invalid() {
        assert_eq!(json(r#"{"email":"nobody"}"#), Err(ApiError::InvalidEmail));
        assert_eq!(
            json(r#"{"email":"a@b.io\r\nBcc: c@d.io"}"#),
            Err(ApiError::InvalidEmail)
        );
    }

    #[test]
    fn a_form_field_is_decoded_with_plus_as_space_and_percent_escapes() {
        assert_eq!(
            form(b"email=user%2Btag%40example.com"),
            Ok("user+tag@example.com".into())
        );
        assert_eq!(form(b"name=x&email=a%40b.io&website="), Ok("a@b.io".into()));
        assert_eq!(form(b"email=+a@b.io+"), Ok("a@b.io".into()));
        assert_eq!(form(b"&&email=a@b.io&"), Ok("a@b.io".into()));
        assert_eq!(form(b"e%6Dail=a@b.io"), Ok("a@b.io".into()));
    }

    #[test]
    fn a_literal_plus_in_a_form_is_a_space_and_so_not_an_address() {
        // A browser always sends `+` as %2B; a bare `+` means a space.
        assert_eq!(
            form(b"email=user+tag@example.com"),
            Err(ApiError::InvalidEmail)
        );
    }

    #[test]
    fn form_edge_cases_map_to_the_right_error() {
        assert_eq!(form(b""), Err(ApiError::MissingEmail));
        assert_eq!(form(b"email="), Err(ApiError::MissingEmail));
        assert_eq!(form(b"email"), Err(ApiError::MissingEmail));
        assert_eq!(form(b"emails=a@b.io"), Err(ApiError::MissingEmail));
        assert_eq!(form(b"email[]=a@b.io"), Err(ApiError::MissingEmail));
        assert_eq!(
            form(b"email=a@b.io&email=c@d.io"),
            Err(ApiError::InvalidBody)
        );
        assert_eq!(form(b"email=a%FF@b.io"), Err(ApiError::InvalidBody));
        assert_eq!(form(b"email=\xff"), Err(ApiError::InvalidBody));
        assert_eq!(
            form(b"email=a%40b.io%0D%0ABcc:%20x@y.io"),
            Err(ApiError::InvalidEmail)
        );
        assert_eq!(form(b"email=not-an-address"), Err(ApiError::InvalidEmail));
    }

    #[test]
    fn bodies_over_the_limit_are_too_large_whatever_they_hold() {
        let mut body = b"email=a@b.io&pad=".to_vec();
        body.resize(MAX_BODY_BYTES + 1, b'x');
        assert_eq!(form(&body), Err(ApiError::PayloadTooLarge));
        body.truncate(MAX_BODY_BYTES);
        assert_eq!(form(&body), Ok("a@b.io".into()));
    }

    #[test]
    fn a_turnstile_token_is_read_from_either_shape() {
        let token = |submission: Result<Submission, ApiError>| match submission {
            Ok(Submission::Signup {
                turnstile_token, ..
            }) => turnstile_token,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            token(parse_signup(
                BodyFormat::Form,
                b"email=a%40b.io&cf-turnstile-response=XXXX.DUMMY",
                "website"
            )),
            Some("XXXX.DUMMY".into())
        );
        assert_eq!(
            token(parse_signup(
                BodyFormat::Json,
                br#"{"email":"a@b.io","turnstileToken":"tok"}"#,
                "website"
            )),
            Some("tok".into())
        );
        assert_eq!(
            token(parse_signup(
                BodyFormat::Json,
                br#"{"email":"a@b.io","turnstileToken":""}"#,
                "website"
            )),
            None
        );
        assert_eq!(
            json(r#"{"email":"a@b.io","turnstileToken":7}"#),
            Err(ApiError::InvalidBody)
        );
        assert_eq!(
            form(b"email=a%40b.io&cf-turnstile-response=a&cf-turnstile-response=b"),
            Err(ApiError::InvalidBody)
        );
    }

    #[test]
    fn a_filled_honeypot_is_a_bot_whose_address_errors_are_everyones() {
        assert_eq!(
            form(b"email=a%40b.io&website=http%3A%2F%2Fspam.example"),
            Ok("<honeypot>".into())
        );
        // Told apart by nothing: a bad address is refused as it is for a person.
        assert_eq!(
            form(b"email=not-an-address&website=x"),
            Err(ApiError::InvalidEmail)
        );
        assert_eq!(form(b"website=x"), Err(ApiError::MissingEmail));
        assert_eq!(
            json(r#"{"email":"a@b.io","website":"x"}"#),
            Ok("<honeypot>".into())
        );
        assert_eq!(
            json(r#"{"email":"a@b.io","website":1}"#),
            Ok("<honeypot>".into())
        );
        assert_eq!(
            form(b"email=a%40b.io&website="),
            Ok("a@b.io".into()),
            "an empty honeypot is a person"
        );
        assert_eq!(form(b"email=a%40b.io&website=+"), Ok("a@b.io".into()));
        assert_eq!(
            json(r#"{"email":"a@b.io","website":null}"#),
            Ok("a@b.io".into())
        );
        assert_eq!(
            email_of(parse_signup(
                BodyFormat::Form,
                b"email=a%40b.io&url=x",
                "url"
            )),
            Ok("<honeypot>".into()),
            "the field name is configurable"
        );
    }
}
