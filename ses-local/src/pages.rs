//! HTML for people: the outbox, one mail, and the pages a plain verification link lands on.
//! Everything that came from a request is escaped; a template's own HTML is shown only inside a
//! sandboxed iframe (no scripts, no same-origin access).

use crate::mail::Mail;

/// XML escaping is HTML escaping too (`&apos;` is valid HTML5).
use crate::xml::escape as escape_html;

/// Percent-encodes a path segment, so a message id can never break out of its URL.
fn url_segment(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}}\
         td,th{{padding:.3rem .6rem;text-align:left;border-bottom:1px solid #ddd}}\
         iframe{{width:100%;height:24rem;border:1px solid #ccc}}</style></head>\
         <body>{body}</body></html>\n",
        escape_html(title)
    )
}

pub fn outbox<'a>(mails: impl Iterator<Item = &'a Mail>) -> String {
    let rows: String = mails
        .map(|m| {
            format!(
                "<tr><td>{}</td><td><a href=\"/_outbox/{}\">{}</a></td><td>{}</td><td>{}</td></tr>\n",
                escape_html(&m.sent_at),
                url_segment(&m.message_id),
                escape_html(&m.subject),
                escape_html(&m.email_address),
                escape_html(m.template_name.as_deref().unwrap_or("(identity verification)")),
            )
        })
        .collect();
    let body = if rows.is_empty() {
        "<h1>ses-local outbox</h1><p>No mail yet.</p>".to_string()
    } else {
        format!(
            "<h1>ses-local outbox</h1><p>Newest first.</p><table><thead><tr><th>Sent</th><th>Subject</th>\
             <th>To</th><th>Template</th></tr></thead><tbody>\n{rows}</tbody></table>"
        )
    };
    page("ses-local outbox", &body)
}

pub fn mail(mail: &Mail) -> String {
    let body = format!(
        "<p><a href=\"/_outbox\">← outbox</a></p><h1>{}</h1>\
         <dl><dt>From</dt><dd>{}</dd><dt>To</dt><dd>{}</dd><dt>Sent</dt><dd>{}</dd><dt>Message id</dt><dd>{}</dd></dl>\
         <p>Verification link: <a href=\"{}\">{}</a></p>\
         <iframe sandbox title=\"mail body\" srcdoc=\"{}\"></iframe>",
        escape_html(&mail.subject),
        escape_html(&mail.from_email_address),
        escape_html(&mail.email_address),
        escape_html(&mail.sent_at),
        escape_html(&mail.message_id),
        escape_html(&mail.verification_link),
        escape_html(&mail.verification_link),
        escape_html(&mail.html),
    );
    page(&mail.subject, &body)
}

pub fn verified(identity: &str) -> String {
    page(
        "Address verified",
        &format!(
            "<h1>Address verified</h1><p>{} is now a verified identity.</p>",
            escape_html(identity)
        ),
    )
}

pub fn not_verified(reason: &str) -> String {
    page(
        "Verification failed",
        &format!("<h1>Verification failed</h1><p>{}</p>", escape_html(reason)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hostile_mail() -> Mail {
        Mail {
            message_id: "m\"><script>1</script>".into(),
            kind: "CustomVerification",
            email_address: "<img src=x onerror=alert(1)>@example.com".into(),
            from_email_address: "a@b.io".into(),
            subject: "<script>alert(2)</script>".into(),
            template_name: Some("T</td>".into()),
            configuration_set_name: None,
            verification_link: "http://h/_verify/t\"onmouseover=\"x".into(),
            html: "<script>alert(3)</script>".into(),
            sent_at: "now".into(),
            sent_at_ms: 0,
        }
    }

    #[test]
    fn attacker_chosen_text_never_reaches_the_page_as_markup() {
        let mail = hostile_mail();
        for html in [outbox(std::iter::once(&mail)), super::mail(&mail)] {
            assert!(!html.contains("<script>"), "{html}");
            assert!(!html.contains("<img"), "{html}");
            assert!(!html.contains("\"onmouseover"), "{html}");
            assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;@example.com"));
        }
        assert!(
            outbox(std::iter::once(&mail)).contains("/_outbox/m%22%3E%3Cscript%3E1%3C%2Fscript%3E")
        );
    }

    #[test]
    fn the_mail_body_is_shown_only_in_a_sandboxed_iframe() {
        let html = super::mail(&hostile_mail());
        assert!(html.contains(
            "<iframe sandbox title=\"mail body\" srcdoc=\"&lt;script&gt;alert(3)&lt;/script&gt;\">"
        ));
    }
}
