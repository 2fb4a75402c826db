//! The demo signup page (`DEMO_PAGE=true`): a small accessible form that works without
//! JavaScript (form POST, 303 back to `/?status=…`, the status rendered by the server) and, with
//! it, submits through `fetch` and shows the answer in plain words. No framework, no assets but
//! Turnstile's script when a site key is configured.

/// The plain-words status for a `?status=` or `?error=` value; unknown values show nothing, so
/// the page never repeats text from the URL.
pub fn status_message(
    status: Option<&str>,
    error: Option<&str>,
) -> Option<(&'static str, &'static str)> {
    let good = |text| Some(("ok", text));
    let bad = |text| Some(("error", text));
    match (status, error) {
        (Some("sent"), _) => good("Check your inbox: we sent you a link to confirm your address."),
        (Some("queued"), _) => {
            good("You're in the queue: your confirmation email will arrive shortly.")
        }
        (Some("verified"), _) => good("Your email address is confirmed. Welcome!"),
        (_, Some("link_failed")) => {
            bad("That confirmation link didn't work (it may have expired). Please sign up again.")
        }
        (_, Some("missing_email")) => bad("Please enter your email address."),
        (_, Some("invalid_email")) => {
            bad("That doesn't look like an email address. Please check it.")
        }
        (_, Some("cooldown")) => {
            bad("We just sent a link to this address. Please check your inbox (and spam folder).")
        }
        (_, Some("rate_limited" | "busy" | "upstream_throttled")) => {
            bad("Lots of signups right now. Please try again in a minute.")
        }
        (_, Some("captcha_failed")) => bad("The bot check didn't pass. Please try again."),
        (_, Some("rejected")) => {
            bad("We can't send email to that address. Please use another one.")
        }
        (_, Some("disposable_domain")) => {
            bad("That looks like a throwaway address. Please use an address you'll keep.")
        }
        (_, Some("domain_not_found")) => {
            bad("That email domain doesn't exist. Please check the part after the @.")
        }
        (_, Some("domain_accepts_no_mail")) => {
            bad("That email domain doesn't receive mail. Please check the part after the @.")
        }
        (_, Some(_)) => bad("Something went wrong on our side. Please try again later."),
        _ => None,
    }
}

pub(crate) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Turnstile's script tag and widget for `site_key`, or nothing without one.
pub(crate) fn turnstile_tags(site_key: Option<&str>) -> (String, String) {
    match site_key {
        Some(key) => (
            r#"<script src="https://challenges.cloudflare.com/turnstile/v0/api.js" async defer></script>"#.to_string(),
            format!(r#"<div class="cf-turnstile" data-sitekey="{}"></div>"#, escape(key)),
        ),
        None => (String::new(), String::new()),
    }
}

/// "Did you mean …?" for a form redirect's `suggested_domain`, only when it is one of the popular
/// domains a suggestion can name: the page never repeats other text from the URL.
pub fn suggestion_hint(suggested_domain: Option<&str>) -> Option<String> {
    let domain = crate::typo::POPULAR
        .iter()
        .find(|popular| Some(**popular) == suggested_domain)?;
    Some(format!(" Did you mean an address at {domain}?"))
}

/// The page. `honeypot_field` is the hidden field's name; `site_key` adds the Turnstile widget;
/// `suggested_domain` is a typo refusal's suggestion (from the form redirect).
pub fn render_page(
    honeypot_field: &str,
    site_key: Option<&str>,
    status: Option<&str>,
    error: Option<&str>,
    suggested_domain: Option<&str>,
) -> String {
    let (status_class, status_text) = status_message(status, error).unwrap_or(("", ""));
    let typo_refusal = matches!(
        error,
        Some("disposable_domain" | "domain_not_found" | "domain_accepts_no_mail")
    );
    let hint = suggestion_hint(suggested_domain)
        .filter(|_| typo_refusal)
        .unwrap_or_default();
    let status_text = format!("{status_text}{hint}");
    let (turnstile_script, turnstile_widget) = turnstile_tags(site_key);
    let main = format!(
        r#"<h1>Sign up</h1>
<form id="signup" method="post" action="/signup">
<label for="email">Email address</label>
<input id="email" name="email" type="email" autocomplete="email" required>
<div class="trap" aria-hidden="true"><label for="{hp}">Leave this empty</label><input id="{hp}" name="{hp}" type="text" tabindex="-1" autocomplete="off"></div>
{turnstile_widget}
<button type="submit">Sign up</button>
</form>
<p id="status" role="status" aria-live="polite" class="{status_class}">{status_text}</p>"#,
        hp = escape(honeypot_field),
    );
    page(
        "Sign up",
        DEMO_CSS,
        &turnstile_script,
        &main,
        r#"<script src="/demo.js" defer></script>"#,
    )
}

const DEMO_CSS: &str = "label { display: block; font-weight: 600; margin-bottom: .25rem; }
input[type=email] { width: 100%; box-sizing: border-box; padding: .6rem; font-size: 1rem; border: 1px solid #767676; border-radius: .25rem; }
input:focus-visible { outline: 3px solid #f0b400; outline-offset: 2px; }
.trap { position: absolute; left: -10000px; width: 1px; height: 1px; overflow: hidden; }
#status { margin-top: 1rem; min-height: 1.5rem; }
#status.ok { color: #136c2e; }
#status.error { color: #b3261e; }
#status .fix { margin: 0 0 0 .25rem; padding: .2rem .6rem; }";

/// One of this Worker's pages: `title`, the shared style plus `css`, `head` (script tags),
/// `main`'s content, and `after` (after `main`).
pub(crate) fn page(title: &str, css: &str, head: &str, main: &str, after: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 30rem; margin: 4rem auto; padding: 0 1rem; line-height: 1.5; }}
button {{ margin-top: .75rem; padding: .6rem 1.2rem; font-size: 1rem; border: 0; border-radius: .25rem; background: #0b57d0; color: #fff; cursor: pointer; }}
button:focus-visible {{ outline: 3px solid #f0b400; outline-offset: 2px; }}
{css}
</style>
{head}
</head>
<body>
<main>
{main}
</main>
{after}
</body>
</html>
"#
    )
}

/// Progressive enhancement: submit with `fetch` and explain the answer without leaving the page.
pub const SCRIPT: &str = r#"(function () {
  var form = document.getElementById('signup');
  var status = document.getElementById('status');
  var button = form.querySelector('button');
  var messages = {
    missing_email: 'Please enter your email address.',
    invalid_email: "That doesn't look like an email address. Please check it.",
    cooldown: 'We just sent a link to this address. Please check your inbox (and spam folder).',
    rate_limited: 'Lots of signups right now. Please try again in a minute.',
    busy: 'Lots of signups right now. Please try again in a minute.',
    upstream_throttled: 'Lots of signups right now. Please try again in a minute.',
    captcha_failed: "The bot check didn't pass. Please try again.",
    rejected: "We can't send email to that address. Please use another one.",
    disposable_domain: "That looks like a throwaway address. Please use an address you'll keep.",
    domain_not_found: "That email domain doesn't exist. Please check the part after the @.",
    domain_accepts_no_mail: "That email domain doesn't receive mail. Please check the part after the @."
  };
  function show(kind, text) { status.className = kind; status.textContent = text; }
  // A typo refusal's suggestion as a one-click fix: it fills the field and signs up again.
  function offer(suggestion) {
    var fix = document.createElement('button');
    fix.type = 'button';
    fix.className = 'fix';
    fix.textContent = 'Use ' + suggestion;
    fix.addEventListener('click', function () {
      form.elements.email.value = suggestion;
      // With Turnstile, the widget needs a fresh token first: the fix fills the field only.
      if (window.turnstile) { form.elements.email.focus(); } else { form.requestSubmit(); }
    });
    status.appendChild(document.createTextNode(' Did you mean ' + suggestion + '? '));
    status.appendChild(fix);
  }
  form.addEventListener('submit', function (event) {
    event.preventDefault();
    var data = new FormData(form);
    var body = {};
    data.forEach(function (value, name) {
      body[name === 'cf-turnstile-response' ? 'turnstileToken' : name] = value;
    });
    button.disabled = true;
    show('', 'Sending…');
    fetch(form.action, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify(body)
    }).then(function (response) {
      return response.json().then(function (reply) {
        if (reply.status === 'sent') {
          show('ok', 'Check your inbox: we sent you a link to confirm your address.');
        } else if (reply.status === 'queued') {
          var at = new Date(reply.estimatedSendAt);
          show('ok', "You're number " + reply.position + ' in the queue: your confirmation email should arrive by ' + at.toLocaleTimeString() + '.');
        } else {
          var code = reply.error && reply.error.code;
          show('error', messages[code] || 'Something went wrong on our side. Please try again later.');
          if (reply.error && typeof reply.error.suggestion === 'string') { offer(reply.error.suggestion); }
        }
      });
    }).catch(function () {
      show('error', 'We could not reach the server. Please check your connection and try again.');
    }).then(function () {
      button.disabled = false;
      if (window.turnstile) { window.turnstile.reset(); }
    });
  });
})();
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_has_a_labelled_input_a_button_a_live_status_and_a_hidden_honeypot() {
        let page = render_page("website", None, None, None, None);
        assert!(page.contains(r#"<label for="email">Email address</label>"#));
        assert!(page.contains(r#"<input id="email" name="email" type="email""#));
        assert!(page.contains(r#"<button type="submit">Sign up</button>"#));
        assert!(page.contains(r#"role="status" aria-live="polite""#));
        assert!(page.contains(r#"name="website" type="text" tabindex="-1""#));
        assert!(page.contains(r#"<form id="signup" method="post" action="/signup">"#));
        assert!(
            !page.contains("challenges.cloudflare.com"),
            "no Turnstile without a site key"
        );
    }

    #[test]
    fn a_redirect_status_is_shown_in_plain_words_and_unknown_values_show_nothing() {
        let page = |status, error| render_page("website", None, status, error, None);
        assert!(page(Some("verified"), None).contains("confirmed"));
        assert!(page(Some("sent"), None).contains("Check your inbox"));
        assert!(page(None, Some("cooldown")).contains("We just sent a link"));
        assert!(page(None, Some("upstream_error")).contains("Something went wrong"));
        assert!(page(None, Some("disposable_domain")).contains("throwaway address"));
        assert_eq!(status_message(Some("<script>"), None), None);
        assert!(!page(Some("<script>alert(1)</script>"), None).contains("alert(1)"));
        assert!(!page(None, Some("<script>alert(1)</script>")).contains("alert(1)"));
    }

    #[test]
    fn a_suggested_domain_is_shown_only_when_it_is_a_popular_one() {
        let page = |domain| render_page("website", None, None, Some("domain_not_found"), domain);
        assert!(page(Some("hotmail.com")).contains("Did you mean an address at hotmail.com?"));
        assert!(!page(Some("evil.example")).contains("Did you mean"));
        assert!(!page(Some("<b>x</b>")).contains("<b>x"));
        assert!(
            !render_page("website", None, Some("sent"), None, Some("gmail.com"))
                .contains("Did you mean")
        );
        assert!(
            !render_page("website", None, None, Some("cooldown"), Some("gmail.com"))
                .contains("Did you mean"),
            "only a typo refusal carries the hint"
        );
    }

    #[test]
    fn the_turnstile_widget_appears_with_an_escaped_site_key() {
        let page = render_page(
            "website",
            Some("1x00000000000000000000AA\"><x"),
            None,
            None,
            None,
        );
        assert!(page.contains(r#"src="https://challenges.cloudflare.com/turnstile/v0/api.js""#));
        assert!(page.contains(r#"data-sitekey="1x00000000000000000000AA&quot;&gt;&lt;x""#));
    }
}
