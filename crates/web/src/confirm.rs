//! Scanner-safe confirmation and the status endpoint's inputs, pure: the signup cookie (which
//! carries the signing-up browser's confirmation credential), the bearer status token, and the
//! `/confirm` pages.
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

use crate::demo::escape;
use crate::demo::page;
use crate::demo::turnstile_tags;
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
