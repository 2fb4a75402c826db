//! The signup request and its answer, pure: which content types are accepted, how a body is
//! read under its limit ([`body_read`], [`LimitedBody`]), how a JSON object or urlencoded form
//! becomes one [`EmailAddress`], what the gate is asked ([`GateAsk`]: a honeypot hit is a
//! decoy), the signup's own credentials ([`credentials_for`]), and whether a plain HTML form
//! gets a `303` to a configured page or the caller gets JSON ([`signup_answer`]).
//!
//! Invariants: no body is held past [`MAX_BODY_BYTES`]; credentials are minted only for the
//! signup this request made (the gate names it), and a honeypot decoy gets credentials of the
//! same shape, told apart only by the secret's holder; a decoy never presents the browser's
//! earlier signup.

use percent_encoding::percent_decode;
use serde::Deserialize;

use signup_verify_domain::email::EmailAddress;
use signup_verify_domain::email::EmailError;
use signup_verify_domain::error::ApiError;
use signup_verify_domain::settings::Secret;
use signup_verify_domain::status_token;
use signup_verify_domain::status_token::Purpose;
use signup_verify_domain::status_token::SignupRef;
use signup_verify_gate::messages::Accepted;

use crate::browser::is_loopback_http;
use crate::browser::prefers_html;
use crate::browser::FormRedirects;
use crate::confirm::signup_cookie;
use crate::confirm::CookieSite;

/// Bodies larger than this are refused with 413 before they are read in full.
pub const MAX_BODY_BYTES: usize = 4096;

/// How a request body is read under [`MAX_BODY_BYTES`], by its `Content-Length`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyRead {
    /// A declared length within the limit: the runtime holds a body to its declared length, so
    /// it is read whole, in one call (and checked again by [`whole_body`]).
    Whole,
    /// No declared length (a chunked body): read as a stream, cut off as soon as it passes the
    /// limit ([`LimitedBody`]).
    Streamed,
}

/// How to read a body declared `content_length` long: a declared length over the limit is
/// `payload_too_large` before a byte is read, and one that is not a number `invalid_body`.
pub fn body_read(content_length: Option<&str>) -> Result<BodyRead, ApiError> {
    match content_length.map(|length| length.trim().parse::<u64>()) {
        None => Ok(BodyRead::Streamed),
        Some(Ok(length)) if length > MAX_BODY_BYTES as u64 => Err(ApiError::PayloadTooLarge),
        Some(Ok(_)) => Ok(BodyRead::Whole),
        Some(Err(_)) => Err(ApiError::InvalidBody),
    }
}

/// A body read whole: `payload_too_large` if it is over the limit after all.
pub fn whole_body(body: Vec<u8>) -> Result<Vec<u8>, ApiError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge);
    }
    Ok(body)
}

/// A streamed body so far, never more than [`MAX_BODY_BYTES`].
#[derive(Debug, Default)]
pub struct LimitedBody(Vec<u8>);

impl LimitedBody {
    /// Adds `chunk`, or `payload_too_large` (keeping nothing of it) if it would pass the limit.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), ApiError> {
        if self.0.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(ApiError::PayloadTooLarge);
        }
        self.0.extend_from_slice(chunk);
        Ok(())
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

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

/// What the gate is asked for a valid submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateAsk {
    pub email: EmailAddress,
    /// The signup this browser made before, if its cookie names one: a new signup of its own
    /// mailbox is then no stranger's.
    pub presented: Option<SignupRef>,
    /// A honeypot hit: the gate answers it as a signup (its limits, its key, credentials that
    /// `status` and `confirm` answer for as for a signup whose link is never opened) and sends
    /// nothing.
    pub decoy: bool,
}

impl Submission {
    /// The Turnstile token it carries, if any.
    pub fn turnstile_token(&self) -> Option<&str> {
        match self {
            Self::Signup {
                turnstile_token, ..
            }
            | Self::Honeypot {
                turnstile_token, ..
            } => turnstile_token.as_deref(),
        }
    }

    /// What the gate is asked, given the signup this browser's cookie names: a honeypot hit is
    /// a decoy and presents no earlier signup.
    pub fn gate_ask(self, cookie_signup: Option<SignupRef>) -> GateAsk {
        match self {
            Self::Signup { email, .. } => GateAsk {
                email,
                presented: cookie_signup,
                decoy: false,
            },
            Self::Honeypot { email, .. } => GateAsk {
                email,
                presented: None,
                decoy: true,
            },
        }
    }
}

/// The credentials of the signup a request made: its status token (for the JSON body) and the
/// `Set-Cookie` that carries its confirmation credential (never a body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub status_token: String,
    pub set_cookie: String,
}

/// The credentials a signup's answer carries: only with `STATUS_TOKEN_SECRET` set and for a
/// signup the gate says this request made. The Worker answers on `own_origin`; `cross_site`
/// when the caller is an origin granted credentials (its cookie is then partitioned).
pub fn credentials_for(
    result: &Result<Accepted, ApiError>,
    secret: Option<&Secret>,
    own_origin: &str,
    cross_site: bool,
) -> Option<Credentials> {
    let made = result.as_ref().ok()?.signup()?;
    let secret = secret?.expose().as_bytes();
    let site = CookieSite {
        loopback_http: is_loopback_http(own_origin),
        cross_site,
    };
    Some(Credentials {
        status_token: status_token::issue(secret, Purpose::Status, made),
        set_cookie: signup_cookie(&status_token::issue(secret, Purpose::Confirm, made), site),
    })
}

/// How a signup is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignupAnswer<'a> {
    /// A plain HTML form, with `SUCCESS_REDIRECT_URL` and `FAILURE_REDIRECT_URL` set: `303 See
    /// Other` to this page.
    SeeOther(String),
    /// The gate's answer, as JSON.
    Accepted(&'a Accepted),
    /// The error, as JSON.
    Refused(ApiError),
}

/// The answer to a signup that came to `result`: a form (`content_type` urlencoded) whose
/// browser prefers HTML (`accept`) goes back to a configured page, with the status or the error
/// code in its query; anything else gets JSON.
pub fn signup_answer<'a>(
    result: &'a Result<Accepted, ApiError>,
    redirects: Option<&FormRedirects>,
    content_type: Option<&str>,
    accept: Option<&str>,
    own_origin: &str,
) -> SignupAnswer<'a> {
    let is_form = parse_content_type(content_type) == Ok(BodyFormat::Form);
    let location = redirects
        .filter(|_| is_form && prefers_html(accept))
        .and_then(|pages| match result {
            Ok(accepted) => pages.success(own_origin, accepted.status()),
            Err(error) => pages.failure(own_origin, error),
        });
    match (location, result) {
        (Some(location), _) => SignupAnswer::SeeOther(location),
        (None, Ok(accepted)) => SignupAnswer::Accepted(accepted),
        (None, Err(error)) => SignupAnswer::Refused(error.clone()),
    }
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

    #[test]
    fn a_declared_length_over_the_limit_is_refused_unread_and_one_within_is_read_whole() {
        let limit = MAX_BODY_BYTES.to_string();
        let over = (MAX_BODY_BYTES + 1).to_string();
        assert_eq!(body_read(Some(&over)), Err(ApiError::PayloadTooLarge));
        assert_eq!(
            body_read(Some("99999999999999999999")),
            Err(ApiError::InvalidBody),
            "a length past u64 is no length"
        );
        assert_eq!(body_read(Some(&limit)), Ok(BodyRead::Whole));
        assert_eq!(body_read(Some(" 12 ")), Ok(BodyRead::Whole));
        assert_eq!(body_read(Some("0")), Ok(BodyRead::Whole));
        for junk in ["", "-1", "12abc", "0x10"] {
            assert_eq!(
                body_read(Some(junk)),
                Err(ApiError::InvalidBody),
                "{junk:?}"
            );
        }
        assert_eq!(body_read(None), Ok(BodyRead::Streamed));
    }

    #[test]
    fn a_whole_body_that_turns_out_larger_than_the_limit_is_refused() {
        assert_eq!(
            whole_body(vec![b'x'; MAX_BODY_BYTES]).map(|b| b.len()),
            Ok(MAX_BODY_BYTES)
        );
        assert_eq!(
            whole_body(vec![b'x'; MAX_BODY_BYTES + 1]),
            Err(ApiError::PayloadTooLarge)
        );
    }

    #[test]
    fn a_streamed_body_is_cut_off_at_the_chunk_that_passes_the_limit() {
        let mut body = LimitedBody::default();
        let chunk = [b'x'; 1000];
        for _ in 0..4 {
            assert_eq!(body.push(&chunk), Ok(()));
        }
        assert_eq!(body.push(&[b'y'; MAX_BODY_BYTES - 4000]), Ok(()));
        assert_eq!(body.push(b"z"), Err(ApiError::PayloadTooLarge));
        let bytes = body.into_bytes();
        assert_eq!(
            bytes.len(),
            MAX_BODY_BYTES,
            "nothing of the refused chunk is kept"
        );
        assert_eq!(LimitedBody::default().into_bytes(), Vec::<u8>::new());
    }

    fn earlier() -> SignupRef {
        SignupRef {
            key: "k".into(),
            signed_up_ms: 1_000,
            nonce: "00".repeat(16),
            region: None,
        }
    }

    #[test]
    fn a_honeypot_hit_asks_the_gate_for_a_decoy_and_never_presents_the_browsers_signup() {
        let bot =
            parse_signup(BodyFormat::Form, b"email=a%40b.io&website=x", "website").expect("valid");
        assert_eq!(
            bot.gate_ask(Some(earlier())),
            GateAsk {
                email: EmailAddress::parse("a@b.io").expect("valid"),
                presented: None,
                decoy: true,
            }
        );
        let person = parse_signup(BodyFormat::Form, b"email=a%40b.io", "website").expect("valid");
        assert_eq!(
            person.clone().gate_ask(Some(earlier())),
            GateAsk {
                email: EmailAddress::parse("a@b.io").expect("valid"),
                presented: Some(earlier()),
                decoy: false,
            }
        );
        assert_eq!(person.gate_ask(None).presented, None);
    }

    #[test]
    fn a_submissions_turnstile_token_is_read_whether_it_is_a_person_or_a_bot() {
        let body = b"email=a%40b.io&cf-turnstile-response=tok";
        let person = parse_signup(BodyFormat::Form, body, "website").expect("valid");
        assert_eq!(person.turnstile_token(), Some("tok"));
        let bot = parse_signup(
            BodyFormat::Form,
            b"email=a%40b.io&cf-turnstile-response=tok&website=x",
            "website",
        )
        .expect("valid");
        assert_eq!(bot.turnstile_token(), Some("tok"));
    }

    const SECRET: &str = "a status token secret of 32 bytes!";
    const OWN: &str = "https://signup.example";

    fn sent(signup: Option<SignupRef>) -> Result<Accepted, ApiError> {
        Ok(Accepted::Sent {
            message_id: Some("m-1".into()),
            signup,
        })
    }

    #[test]
    fn credentials_are_minted_only_for_a_signup_this_request_made_with_tokens_on() {
        let secret = Secret::from(SECRET.to_string());
        let minted =
            credentials_for(&sent(Some(earlier())), Some(&secret), OWN, false).expect("minted");
        let status = status_token::verify(
            SECRET.as_bytes(),
            Purpose::Status,
            &minted.status_token,
            2_000,
        )
        .expect("a status token for the signup");
        assert_eq!(status.signup, earlier());
        let cookie_value = minted
            .set_cookie
            .strip_prefix("__Host-sv_confirm=")
            .and_then(|rest| rest.split(';').next())
            .expect("the https cookie");
        assert_eq!(
            status_token::verify(SECRET.as_bytes(), Purpose::Confirm, cookie_value, 2_000)
                .expect("a confirmation credential")
                .signup,
            earlier()
        );
        assert!(
            status_token::verify(
                SECRET.as_bytes(),
                Purpose::Confirm,
                &minted.status_token,
                2_000
            )
            .is_err(),
            "the body's token cannot confirm"
        );
        assert_eq!(
            credentials_for(&sent(None), Some(&secret), OWN, false),
            None
        );
        assert_eq!(
            credentials_for(&sent(Some(earlier())), None, OWN, false),
            None
        );
        assert_eq!(
            credentials_for(
                &Err(ApiError::RateLimited {
                    retry_after_secs: 60
                }),
                Some(&secret),
                OWN,
                false
            ),
            None
        );
    }

    #[test]
    fn the_signup_cookie_is_partitioned_cross_site_and_plain_on_a_loopback_origin() {
        let secret = Secret::from(SECRET.to_string());
        let cookie = |own, cross_site| {
            credentials_for(&sent(Some(earlier())), Some(&secret), own, cross_site)
                .expect("minted")
                .set_cookie
        };
        assert!(cookie(OWN, true).ends_with("SameSite=None; Partitioned"));
        assert!(cookie(OWN, false).ends_with("Secure; HttpOnly; SameSite=Lax"));
        assert!(cookie("http://127.0.0.1:8787", false).starts_with("sv_confirm="));
    }

    fn pages() -> FormRedirects {
        FormRedirects {
            success: crate::browser::RedirectTarget::parse("/thanks").expect("valid"),
            failure: crate::browser::RedirectTarget::parse("https://site.example/oops")
                .expect("valid"),
        }
    }

    const FORM: Option<&str> = Some("application/x-www-form-urlencoded");
    const BROWSER: Option<&str> = Some("text/html,application/xhtml+xml,*/*;q=0.8");

    #[test]
    fn a_browsers_form_goes_back_to_the_configured_page_with_the_status_or_the_error_code() {
        let pages = pages();
        assert_eq!(
            signup_answer(&sent(None), Some(&pages), FORM, BROWSER, OWN),
            SignupAnswer::SeeOther("https://signup.example/thanks?status=sent".into())
        );
        let refused = Err(ApiError::InvalidEmail);
        assert_eq!(
            signup_answer(&refused, Some(&pages), FORM, BROWSER, OWN),
            SignupAnswer::SeeOther("https://site.example/oops?error=invalid_email".into())
        );
    }

    #[test]
    fn json_a_script_or_a_deployment_without_pages_gets_json() {
        let pages = pages();
        let result = sent(None);
        let accepted = result.as_ref().expect("sent");
        for (redirects, content_type, accept) in [
            (None, FORM, BROWSER),
            (Some(&pages), Some("application/json"), BROWSER),
            (Some(&pages), FORM, Some("application/json")),
            (Some(&pages), FORM, None),
        ] {
            assert_eq!(
                signup_answer(&result, redirects, content_type, accept, OWN),
                SignupAnswer::Accepted(accepted),
                "{content_type:?} {accept:?}"
            );
        }
        assert_eq!(
            signup_answer(&Err(ApiError::InvalidEmail), None, FORM, BROWSER, OWN),
            SignupAnswer::Refused(ApiError::InvalidEmail)
        );
    }
}
