//! Scanner-safe confirmation and the status endpoint's inputs, pure: the signup cookie (which
//! names the signing-up browser's signup with its status token), where a status token is read
//! from, and the `/confirm` pages.
//!
//! Invariants: the cookie is HttpOnly and SameSite=Lax, so neither page scripts nor other
//! sites' POSTs can use it; a GET of `/confirm` only shows a button (a link scanner changes
//! nothing); nothing here ever shows or logs an address.

use crate::demo::{escape, page, turnstile_tags};
use crate::gate::rpc::SignupStatus;
use crate::status_token::TOKEN_LIFETIME_MS;

/// The cookie the signup answer sets.
pub const SIGNUP_COOKIE: &str = "sv_signup";
/// Tokens longer than this are not read from a header, query or cookie.
const MAX_TOKEN_LEN: usize = 512;

/// `Set-Cookie` for a signup's status token; `secure` on https.
pub fn signup_cookie(token: &str, secure: bool) -> String {
    format!(
        "{SIGNUP_COOKIE}={token}; Max-Age={}; Path=/; HttpOnly; SameSite=Lax{}",
        TOKEN_LIFETIME_MS / 1000,
        if secure { "; Secure" } else { "" }
    )
}

/// The signup cookie's value in a `Cookie` header.
pub fn token_from_cookies(cookie_header: Option<&str>) -> Option<&str> {
    cookie_header?
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SIGNUP_COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty() && value.len() <= MAX_TOKEN_LEN)
}

/// A status token from `Authorization: Bearer <token>`, else from `?token=`.
pub fn token_from_request<'a>(
    authorization: Option<&'a str>,
    query_token: Option<&'a str>,
) -> Option<&'a str> {
    let bearer = authorization.and_then(|value| {
        let (scheme, token) = value.trim().split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
    });
    bearer
        .or(query_token)
        .filter(|token| !token.is_empty() && token.len() <= MAX_TOKEN_LEN)
}

/// What `/confirm` shows.
pub enum ConfirmPage<'a> {
    /// GET: the question and the button.
    Ask { site_key: Option<&'a str> },
    /// After the button, for the signup this browser made.
    Confirmed(&'a SignupStatus),
    /// After the button, in a browser that holds no signup (another device, cookies cleared).
    Thanks,
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
            let detail = match status.status.as_str() {
                "verified" => "Your address is verified and confirmed. You can close this page.",
                "sent" => "Thank you. We are still waiting for the email service to report your address verified; it takes a few seconds.",
                _ => "Thank you. This signup is no longer waiting for a confirmation.",
            };
            let body = format!(r#"<h1>Thank you</h1><p id="confirmed" data-status="{}">{detail}</p>"#, escape(&status.status));
            (String::new(), body)
        }
        ConfirmPage::Thanks => (String::new(), r#"<h1>Thank you</h1><p id="thanks">If you signed up in another browser or on another device, your address is verified; the confirmation is recorded only in the browser you signed up with.</p>"#.to_string()),
    };
    page("Confirm your address", "", &head, &body, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_http_only_lax_for_a_week_and_secure_on_https() {
        let cookie = signup_cookie("t.k", true);
        assert_eq!(
            cookie,
            "sv_signup=t.k; Max-Age=604800; Path=/; HttpOnly; SameSite=Lax; Secure"
        );
        assert!(!signup_cookie("t.k", false).contains("Secure"));
    }

    #[test]
    fn the_signup_cookie_is_found_among_others_and_nothing_else_is_taken_for_it() {
        assert_eq!(
            token_from_cookies(Some("a=1; sv_signup=abc.def ; b=2")),
            Some("abc.def")
        );
        assert_eq!(
            token_from_cookies(Some("xsv_signup=abc; sv_signupx=def")),
            None
        );
        assert_eq!(token_from_cookies(Some("sv_signup=")), None);
        assert_eq!(token_from_cookies(None), None);
        let long = format!("sv_signup={}", "a".repeat(600));
        assert_eq!(token_from_cookies(Some(&long)), None);
    }

    #[test]
    fn a_token_comes_from_a_bearer_header_first_then_the_query() {
        assert_eq!(
            token_from_request(Some("Bearer abc"), Some("q")),
            Some("abc")
        );
        assert_eq!(token_from_request(Some("bearer  abc "), None), Some("abc"));
        assert_eq!(token_from_request(Some("Basic abc"), Some("q")), Some("q"));
        assert_eq!(token_from_request(None, Some("q")), Some("q"));
        assert_eq!(token_from_request(None, Some("")), None);
        assert_eq!(token_from_request(Some("Bearer"), None), None);
        assert_eq!(token_from_request(None, None), None);
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
    }
}
