//! Scanner-safe confirmation and the status endpoint's inputs, pure: the signup cookie (which
//! carries the signing-up browser's confirmation credential) and the signup it names, the
//! bearer status token, whom a confirmation is for ([`confirm_for`]), and how `/confirm`
//! answers: its pages, JSON, or a `303` ([`confirm_answer`]).
//!
//! Invariants:
//! - the confirmation credential lives only in an HttpOnly cookie, never in a body: page
//!   scripts cannot read it, and a status token (the JSON body's) cannot confirm;
//! - the cookie is `__Host-` and `Secure` (no other host or path can set or read it), except on
//!   a plain-http loopback origin (`make dev`), where browsers other than Chromium refuse
//!   `Secure`; there it is `sv_confirm`, and only there is that name read;
//! - it is `SameSite=Lax` unless the signup came from an allowlisted other origin with
//!   credentials (a `fetch` integration), where it is `SameSite=None; Partitioned`: kept only
//!   under that site, for that site's own confirmation call (CHIPS); `POST /confirm` checks the
//!   origin either way;
//! - a GET of `/confirm` only shows a button (a link scanner changes nothing); nothing here
//!   ever shows or logs an address.

use crate::browser::prefers_html;
use crate::browser::RedirectTarget;
use crate::demo::escape;
use crate::demo::page;
use crate::demo::turnstile_tags;
use signup_verify_domain::error::ApiError;
use signup_verify_domain::settings::Secret;
use signup_verify_domain::status_token;
use signup_verify_domain::status_token::Purpose;
use signup_verify_domain::status_token::SignupRef;
use signup_verify_domain::status_token::TokenError;
use signup_verify_domain::status_token::MAX_TOKEN_LEN;
use signup_verify_domain::status_token::TOKEN_LIFETIME_MS;
use signup_verify_gate::messages::SignupStatus;

/// The cookie the signup answer sets, on an https origin.
pub const SIGNUP_COOKIE: &str = "__Host-sv_confirm";
/// Its name on a plain-http loopback origin (`make dev`).
pub const LOOPBACK_SIGNUP_COOKIE: &str = "sv_confirm";

/// Where the Worker answers, for the cookie's attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CookieSite {
    /// The Worker's own origin is `http://` on a loopback host.
    pub loopback_http: bool,
    /// The signup came from an allowlisted other origin (a `fetch` with credentials).
    pub cross_site: bool,
}

/// `Set-Cookie` for a signup's confirmation credential.
pub fn signup_cookie(credential: &str, site: CookieSite) -> String {
    let max_age = TOKEN_LIFETIME_MS / 1000;
    if site.cross_site {
        // SameSite=None needs Secure; Chromium takes it on a loopback origin too.
        return format!(
            "{SIGNUP_COOKIE}={credential}; Max-Age={max_age}; Path=/; Secure; HttpOnly; SameSite=None; Partitioned"
        );
    }
    if site.loopback_http {
        return format!(
            "{LOOPBACK_SIGNUP_COOKIE}={credential}; Max-Age={max_age}; Path=/; HttpOnly; SameSite=Lax"
        );
    }
    format!(
        "{SIGNUP_COOKIE}={credential}; Max-Age={max_age}; Path=/; Secure; HttpOnly; SameSite=Lax"
    )
}

/// The confirmation credential in a `Cookie` header: the `__Host-` cookie, or on a plain-http
/// loopback origin also the loopback one.
pub fn credential_from_cookies(cookie_header: Option<&str>, loopback_http: bool) -> Option<&str> {
    let cookies = || {
        cookie_header
            .unwrap_or_default()
            .split(';')
            .filter_map(|pair| pair.trim().split_once('='))
    };
    let named = |wanted: &str| {
        cookies()
            .find(|(name, _)| *name == wanted)
            .map(|(_, value)| value.trim())
            .filter(|value| !value.is_empty() && value.len() <= MAX_TOKEN_LEN)
    };
    named(SIGNUP_COOKIE).or_else(|| {
        loopback_http
            .then(|| named(LOOPBACK_SIGNUP_COOKIE))
            .flatten()
    })
}

/// The signup this browser's cookie names at `now_ms`, checked against `secret`
/// (`STATUS_TOKEN_SECRET`): `None` without a cookie, an error for a credential that is not
/// genuine and current.
fn cookie_claim(
    secret: &Secret,
    cookie_header: Option<&str>,
    loopback_http: bool,
    now_ms: u64,
) -> Option<Result<SignupRef, TokenError>> {
    let credential = credential_from_cookies(cookie_header, loopback_http)?;
    Some(
        status_token::verify(
            secret.expose().as_bytes(),
            Purpose::Confirm,
            credential,
            now_ms,
        )
        .map(|claim| claim.signup),
    )
}

/// The signup this browser made before, if its cookie holds a genuine, current credential.
pub fn cookie_signup(
    secret: &Secret,
    cookie_header: Option<&str>,
    loopback_http: bool,
    now_ms: u64,
) -> Option<SignupRef> {
    cookie_claim(secret, cookie_header, loopback_http, now_ms)?.ok()
}

/// What a confirmation came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirmation {
    /// Recorded (or recorded before): the signup's status.
    Confirmed(SignupStatus),
    /// This browser sent no signup cookie (another device, cookies cleared).
    NoSignup,
    /// Its cookie names no current signup: replaced by a newer one, forgotten, or not ours.
    Replaced,
}

/// Whom a confirmation is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfirmFor {
    /// Nobody the gate knows: the answer is given here.
    Answered(Result<Confirmation, ApiError>),
    /// The signup the cookie names: the gate records the confirmation.
    Signup(SignupRef),
}

/// Whom this browser's confirmation is for: nothing without a cookie, `Replaced` for a
/// credential that is not genuine and current, `not_verified` for a honeypot decoy (its link is
/// never opened, as a real signup's that nobody clicks), else the signup the cookie names.
pub fn confirm_for(
    secret: &Secret,
    cookie_header: Option<&str>,
    loopback_http: bool,
    now_ms: u64,
) -> ConfirmFor {
    match cookie_claim(secret, cookie_header, loopback_http, now_ms) {
        None => ConfirmFor::Answered(Ok(Confirmation::NoSignup)),
        Some(Err(_)) => ConfirmFor::Answered(Ok(Confirmation::Replaced)),
        Some(Ok(signup)) if status_token::is_decoy(secret.expose().as_bytes(), &signup) => {
            ConfirmFor::Answered(Err(ApiError::NotVerified))
        }
        Some(Ok(signup)) => ConfirmFor::Signup(signup),
    }
}

/// What the gate's answer to a confirmation means: a signup it does not know was replaced.
pub fn confirmation(gate: Result<SignupStatus, ApiError>) -> Result<Confirmation, ApiError> {
    match gate {
        Ok(status) => Ok(Confirmation::Confirmed(status)),
        Err(ApiError::UnknownSignup) => Ok(Confirmation::Replaced),
        Err(error) => Err(error),
    }
}

/// How `POST /confirm` is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfirmAnswer<'a> {
    /// `200`, the signup's status as JSON.
    Json(&'a SignupStatus),
    /// The error, as JSON.
    Error(ApiError),
    /// An HTML page with its status.
    Page { status: u16, html: String },
    /// `303 See Other` to `VERIFIED_REDIRECT_URL`.
    SeeOther(String),
}

/// The answer to a confirmation that came to `outcome`. A caller that prefers HTML (`accept`:
/// a browser's form) gets pages, and only a recorded confirmation leads on to
/// `verified_redirect` (resolved on `own_origin`); anything else gets JSON, where a browser
/// without a current signup is `unknown_signup`. `site_key` is the Turnstile widget's.
pub fn confirm_answer<'a>(
    outcome: &'a Result<Confirmation, ApiError>,
    accept: Option<&str>,
    site_key: Option<&str>,
    verified_redirect: Option<&RedirectTarget>,
    own_origin: &str,
) -> ConfirmAnswer<'a> {
    let page = |status, which| ConfirmAnswer::Page {
        status,
        html: render(which),
    };
    match (outcome, prefers_html(accept)) {
        (Ok(Confirmation::Confirmed(status)), false) => ConfirmAnswer::Json(status),
        (Ok(Confirmation::NoSignup | Confirmation::Replaced), false) => {
            ConfirmAnswer::Error(ApiError::UnknownSignup)
        }
        (Err(error), false) => ConfirmAnswer::Error(error.clone()),
        (Err(ApiError::NotVerified), true) => page(409, ConfirmPage::NotYet { site_key }),
        (Err(error), true) => page(
            error.status(),
            ConfirmPage::Error {
                message: error.message(),
            },
        ),
        (Ok(Confirmation::Replaced), true) => page(404, ConfirmPage::Replaced),
        (Ok(Confirmation::NoSignup), true) => page(200, ConfirmPage::Thanks),
        (Ok(Confirmation::Confirmed(status)), true) => {
            match verified_redirect.and_then(|target| target.resolve(own_origin)) {
                Some(target) => ConfirmAnswer::SeeOther(target.to_string()),
                None => page(200, ConfirmPage::Confirmed(status)),
            }
        }
    }
}

/// A status token from `Authorization: Bearer <token>` (the only place it is read: a query
/// string ends up in logs and histories).
pub fn bearer_token(authorization: Option<&str>) -> Option<&str> {
    authorization
        .and_then(|value| {
            let (scheme, token) = value.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .filter(|token| !token.is_empty() && token.len() <= MAX_TOKEN_LEN)
}

/// What `/confirm` shows.
pub enum ConfirmPage<'a> {
    /// GET: the question and the button.
    Ask { site_key: Option<&'a str> },
    /// After the button, for the signup this browser made, now confirmed.
    Confirmed(&'a SignupStatus),
    /// After the button, in a browser that holds no signup (another device, cookies cleared):
    /// nothing recorded, and nothing claimed.
    Thanks,
    /// After the button, before the link in the email was opened (or SES has not said so yet).
    NotYet { site_key: Option<&'a str> },
    /// After the button, in a browser whose cookie names a signup that is no longer current
    /// (a newer signup of the address replaced it, or it was forgotten).
    Replaced,
    /// After the button, an error's sentence (a form gets a page, not JSON).
    Error { message: &'a str },
}

pub fn render(which: ConfirmPage) -> String {
    let (head, body) = match which {
        ConfirmPage::Ask { site_key } => {
            let (script, widget) = turnstile_tags(site_key);
            let body = format!(
                r#"<h1>Your address is verified — confirm it's you</h1>
<p>You opened the link in our email. Press the button to tell us it was you, not a program scanning your mail.</p>
<form method="post" action="/confirm">
{widget}<button type="submit">Yes, it's me</button>
</form>"#
            );
            (script, body)
        }
        ConfirmPage::Confirmed(status) => {
            // Only a verified signup is ever confirmed.
            let body = format!(
                r#"<h1>Thank you</h1><p id="confirmed" data-status="{}">Your address is verified and confirmed. You can close this page.</p>"#,
                escape(&status.status)
            );
            (String::new(), body)
        }
        ConfirmPage::NotYet { site_key } => {
            let (script, widget) = turnstile_tags(site_key);
            let body = format!(
                r#"<h1>Not verified yet</h1>
<p id="not-yet">We have not seen the link in your email opened yet. Open the link in the email we sent you, then press the button again.</p>
<form method="post" action="/confirm">
{widget}<button type="submit">Try again</button>
</form>"#
            );
            (script, body)
        }
        ConfirmPage::Replaced => (
            String::new(),
            r#"<h1>This signup is no longer current</h1><p id="replaced">A newer signup of this address replaced the one this browser made, or it expired. Use the link in the most recent email we sent, or sign up again.</p>"#.to_string(),
        ),
        ConfirmPage::Error { message } => (
            String::new(),
            format!(r#"<h1>Something went wrong</h1><p id="error">{}</p>"#, escape(message)),
        ),
        ConfirmPage::Thanks => (String::new(), r#"<h1>Nothing recorded in this browser</h1><p id="thanks">This browser holds no signup, so nothing was recorded: the confirmation is recorded only in the browser you signed up with. Open the link in our email there, or sign up again here.</p>"#.to_string()),
    };
    page("Confirm your address", "", &head, &body, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_a_host_only_secure_http_only_lax_cookie_for_a_week() {
        let https = CookieSite {
            loopback_http: false,
            cross_site: false,
        };
        assert_eq!(
            signup_cookie("c.k", https),
            "__Host-sv_confirm=c.k; Max-Age=604800; Path=/; Secure; HttpOnly; SameSite=Lax"
        );
        let dev = CookieSite {
            loopback_http: true,
            cross_site: false,
        };
        assert_eq!(
            signup_cookie("c.k", dev),
            "sv_confirm=c.k; Max-Age=604800; Path=/; HttpOnly; SameSite=Lax"
        );
        for loopback_http in [false, true] {
            let fetch = CookieSite {
                loopback_http,
                cross_site: true,
            };
            assert_eq!(
                signup_cookie("c.k", fetch),
                "__Host-sv_confirm=c.k; Max-Age=604800; Path=/; Secure; HttpOnly; SameSite=None; Partitioned"
            );
        }
    }

    #[test]
    fn the_credential_is_read_from_the_host_cookie_and_the_plain_name_only_on_loopback() {
        assert_eq!(
            credential_from_cookies(Some("a=1; __Host-sv_confirm=abc.def ; b=2"), false),
            Some("abc.def")
        );
        assert_eq!(credential_from_cookies(Some("sv_confirm=abc"), false), None);
        assert_eq!(
            credential_from_cookies(Some("sv_confirm=abc"), true),
            Some("abc")
        );
        assert_eq!(
            credential_from_cookies(Some("x__Host-sv_confirm=abc; __Host-sv_confirmx=def"), true),
            None
        );
        assert_eq!(
            credential_from_cookies(Some("__Host-sv_confirm="), false),
            None
        );
        assert_eq!(credential_from_cookies(None, true), None);
        let long = format!("__Host-sv_confirm={}", "a".repeat(600));
        assert_eq!(credential_from_cookies(Some(&long), false), None);
    }

    #[test]
    fn a_status_token_comes_only_from_a_bearer_header() {
        assert_eq!(bearer_token(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer_token(Some("bearer  abc ")), Some("abc"));
        assert_eq!(bearer_token(Some("Basic abc")), None);
        assert_eq!(bearer_token(Some("Bearer")), None);
        assert_eq!(
            bearer_token(Some(&format!("Bearer {}", "a".repeat(600)))),
            None
        );
        assert_eq!(bearer_token(None), None);
    }

    const SECRET: &str = "a status token secret of 32 bytes!";

    fn secret() -> Secret {
        Secret::from(SECRET.to_string())
    }

    fn made(nonce: String) -> SignupRef {
        SignupRef {
            key: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
            signed_up_ms: 1_000,
            nonce,
            region: None,
        }
    }

    fn real() -> SignupRef {
        made("00112233445566778899aabbccddeeff".into())
    }

    fn cookie_for(signup: &SignupRef, purpose: Purpose) -> String {
        format!(
            "a=1; {SIGNUP_COOKIE}={}",
            status_token::issue(SECRET.as_bytes(), purpose, signup)
        )
    }

    #[test]
    fn a_confirmation_is_for_the_signup_a_genuine_current_cookie_names() {
        let cookie = cookie_for(&real(), Purpose::Confirm);
        assert_eq!(
            confirm_for(&secret(), Some(&cookie), false, 2_000),
            ConfirmFor::Signup(real())
        );
        assert_eq!(
            cookie_signup(&secret(), Some(&cookie), false, 2_000),
            Some(real())
        );
    }

    #[test]
    fn without_a_cookie_nothing_is_confirmed_and_a_stale_or_forged_one_names_a_replaced_signup() {
        assert_eq!(
            confirm_for(&secret(), Some("a=1"), false, 2_000),
            ConfirmFor::Answered(Ok(Confirmation::NoSignup))
        );
        let expired = cookie_for(&real(), Purpose::Confirm);
        let status_token = cookie_for(&real(), Purpose::Status);
        let forged = format!("{SIGNUP_COOKIE}=bm90.aXQ");
        for cookie in [&status_token, &forged] {
            assert_eq!(
                confirm_for(&secret(), Some(cookie), false, 2_000),
                ConfirmFor::Answered(Ok(Confirmation::Replaced)),
                "{cookie}"
            );
            assert_eq!(cookie_signup(&secret(), Some(cookie), false, 2_000), None);
        }
        assert_eq!(
            confirm_for(&secret(), Some(&expired), false, 1_000 + TOKEN_LIFETIME_MS),
            ConfirmFor::Answered(Ok(Confirmation::Replaced))
        );
        assert_eq!(cookie_signup(&secret(), None, false, 2_000), None);
    }

    #[test]
    fn a_decoys_confirmation_is_never_verified_and_never_reaches_the_gate() {
        let decoy = made(status_token::decoy_nonce(
            SECRET.as_bytes(),
            &real().key,
            [7; 8],
        ));
        let cookie = cookie_for(&decoy, Purpose::Confirm);
        assert_eq!(
            confirm_for(&secret(), Some(&cookie), false, 2_000),
            ConfirmFor::Answered(Err(ApiError::NotVerified))
        );
        assert_eq!(
            cookie_signup(&secret(), Some(&cookie), false, 2_000),
            Some(decoy),
            "a new signup may present it: the gate knows it for what it is"
        );
    }

    #[test]
    fn a_signup_the_gate_does_not_know_was_replaced_and_other_errors_stay_errors() {
        assert_eq!(
            confirmation(Err(ApiError::UnknownSignup)),
            Ok(Confirmation::Replaced)
        );
        assert_eq!(
            confirmation(Err(ApiError::NotVerified)),
            Err(ApiError::NotVerified)
        );
        assert_eq!(
            confirmation(Ok(verified())),
            Ok(Confirmation::Confirmed(verified()))
        );
    }

    fn verified() -> SignupStatus {
        SignupStatus {
            status: "verified".into(),
            verified: true,
            confirmed: true,
            contested: false,
            position: None,
            estimated_send_at: None,
            sent_at: None,
            verified_at: None,
            reason: None,
        }
    }

    const OWN: &str = "https://signup.example";
    const FORM: Option<&str> = Some("text/html,application/xhtml+xml,*/*;q=0.8");

    fn status_of(answer: ConfirmAnswer) -> u16 {
        match answer {
            ConfirmAnswer::Page { status, .. } => status,
            other => panic!("not a page: {other:?}"),
        }
    }

    #[test]
    fn a_script_gets_the_status_as_json_and_unknown_signup_without_a_current_signup() {
        let confirmed = Ok(Confirmation::Confirmed(verified()));
        let status = verified();
        for accept in [None, Some("application/json"), Some("*/*")] {
            assert_eq!(
                confirm_answer(&confirmed, accept, None, None, OWN),
                ConfirmAnswer::Json(&status)
            );
            for nothing in [Confirmation::NoSignup, Confirmation::Replaced] {
                assert_eq!(
                    confirm_answer(&Ok(nothing), accept, None, None, OWN),
                    ConfirmAnswer::Error(ApiError::UnknownSignup)
                );
            }
            assert_eq!(
                confirm_answer(&Err(ApiError::NotVerified), accept, None, None, OWN),
                ConfirmAnswer::Error(ApiError::NotVerified)
            );
        }
    }

    #[test]
    fn a_form_gets_a_page_for_each_answer_with_its_status() {
        let answer = |outcome| status_of(confirm_answer(&outcome, FORM, None, None, OWN));
        assert_eq!(answer(Ok(Confirmation::Confirmed(verified()))), 200);
        assert_eq!(answer(Ok(Confirmation::NoSignup)), 200);
        assert_eq!(answer(Ok(Confirmation::Replaced)), 404);
        assert_eq!(answer(Err(ApiError::NotVerified)), 409);
        assert_eq!(
            answer(Err(ApiError::RateLimited {
                retry_after_secs: 60
            })),
            429
        );
        let not_yet = confirm_answer(
            &Err(ApiError::NotVerified),
            FORM,
            Some("site-key"),
            None,
            OWN,
        );
        assert!(
            matches!(&not_yet, ConfirmAnswer::Page { html, .. } if html.contains(r#"id="not-yet""#) && html.contains("site-key")),
            "the not-yet page offers the button again, with the widget: {not_yet:?}"
        );
    }

    #[test]
    fn only_a_recorded_confirmation_leads_a_form_on_to_the_verified_page() {
        let target = RedirectTarget::parse("/welcome").expect("valid");
        assert_eq!(
            confirm_answer(
                &Ok(Confirmation::Confirmed(verified())),
                FORM,
                None,
                Some(&target),
                OWN
            ),
            ConfirmAnswer::SeeOther("https://signup.example/welcome".into())
        );
        for outcome in [
            Ok(Confirmation::NoSignup),
            Ok(Confirmation::Replaced),
            Err(ApiError::NotVerified),
        ] {
            assert!(
                matches!(
                    confirm_answer(&outcome, FORM, None, Some(&target), OWN),
                    ConfirmAnswer::Page { .. }
                ),
                "{outcome:?}"
            );
        }
        assert_eq!(
            confirm_answer(
                &Ok(Confirmation::Confirmed(verified())),
                None,
                None,
                Some(&target),
                OWN
            ),
            ConfirmAnswer::Json(&verified()),
            "a script is never redirected"
        );
    }

    #[test]
    fn the_get_page_only_asks_and_posts_to_itself() {
        let page = render(ConfirmPage::Ask { site_key: None });
        assert!(page.contains("Your address is verified — confirm it's you"));
        assert!(page.contains(r#"<form method="post" action="/confirm">"#));
        assert!(page.contains(r#"<button type="submit">"#));
        assert!(!page.contains("challenges.cloudflare.com"));
        let with_turnstile = render(ConfirmPage::Ask {
            site_key: Some("k\"x"),
        });
        assert!(with_turnstile.contains(r#"data-sitekey="k&quot;x""#));
    }

    #[test]
    fn the_answer_pages_say_what_was_recorded() {
        let status = SignupStatus {
            status: "verified".into(),
            verified: true,
            confirmed: true,
            contested: false,
            position: None,
            estimated_send_at: None,
            sent_at: None,
            verified_at: None,
            reason: None,
        };
        let page = render(ConfirmPage::Confirmed(&status));
        assert!(page.contains(r#"data-status="verified""#));
        assert!(page.contains("verified and confirmed"));
        assert!(render(ConfirmPage::Thanks).contains("only in the browser you signed up with"));
        assert!(render(ConfirmPage::Replaced).contains(r#"id="replaced""#));
        assert!(render(ConfirmPage::Error { message: "a <b>" }).contains("a &lt;b&gt;"));
        let not_yet = render(ConfirmPage::NotYet { site_key: None });
        assert!(not_yet.contains(r#"id="not-yet""#));
        assert!(not_yet.contains(r#"<form method="post" action="/confirm">"#));
    }
}
