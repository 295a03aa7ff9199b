//! The HTML of the authorize flow: the sign-in page, the consent page and the error page.
//! Automation written for Keap's pages finds what it looks for: `#username`, `#password`
//! and a submit `.btn-primary` to sign in, then `#approve` as the first `.btn-primary`.

const STYLE: &str = "body{font-family:system-ui,sans-serif;background:#f4f6f8;margin:0}\
main{max-width:28rem;margin:4rem auto;background:#fff;border-radius:8px;padding:2rem;box-shadow:0 1px 4px #0002}\
h1{font-size:1.3rem;margin-top:0}.scope{background:#eef5e9;padding:.6rem .8rem;border-radius:4px}\
.buttons{display:flex;gap:1rem;margin-top:1.5rem}button{flex:1;padding:.7rem;font-size:1rem;border-radius:4px;border:1px solid #2f7a1f;cursor:pointer}\
.btn-primary{background:#2f7a1f;color:#fff}.btn-secondary{background:#fff;color:#2f7a1f}small{color:#666}\
label{display:block;margin-top:1rem}input{box-sizing:border-box;width:100%;padding:.6rem;font-size:1rem;margin-top:.3rem}\
#error{color:#a40000}";

/// Escapes text for HTML element content and double-quoted attributes. Five
/// replacements do not justify a templating dependency.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn document(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{}</title><style>{STYLE}</style></head><body><main>{body}</main></body></html>\n",
        escape(title)
    )
}

pub(crate) struct Consent<'a> {
    pub(crate) app_name: &'a str,
    pub(crate) account: &'a str,
    pub(crate) scope: &'a str,
    pub(crate) redirect_host: &'a str,
    pub(crate) consent_id: &'a str,
}

/// The consent page: one form posting back to the authorize URL; the two buttons share
/// it and differ by `decision`.
pub(crate) fn consent(c: &Consent<'_>) -> String {
    let scope_text = if c.scope == "full" { "Full access to your Keap account: contacts, companies, opportunities, notes and settings" } else { c.scope };
    let body = format!(
        "<h1>Allow <span id=\"app-name\">{app}</span> to access your Keap account?</h1>\
<p>Account: <strong id=\"account\">{account}.infusionsoft.com</strong></p>\
<p>This application is asking for:</p><p class=\"scope\" id=\"scope\" data-scope=\"{scope}\">{scope_text}</p>\
<form method=\"post\" action=\"/app/oauth/authorize\">\
<input type=\"hidden\" name=\"consent\" value=\"{consent}\">\
<div class=\"buttons\"><button type=\"submit\" id=\"approve\" class=\"btn-primary\" name=\"decision\" value=\"approve\">Approve</button>\
<button type=\"submit\" id=\"deny\" class=\"btn-secondary\" name=\"decision\" value=\"deny\">Deny</button></div></form>\
<p><small>You will be sent back to {host}. Keap sandbox (simulated).</small></p>",
        app = escape(c.app_name),
        account = escape(c.account),
        scope = escape(c.scope),
        scope_text = escape(scope_text),
        consent = escape(c.consent_id),
        host = escape(c.redirect_host),
    );
    document(&format!("Authorize {}", c.app_name), &body)
}

/// The sign-in page shown before the consent page: one form posting the user name and
/// password back to the authorize URL with the pending request's `consent`.
pub(crate) fn sign_in(app_name: &str, consent_id: &str, failed: bool) -> String {
    let error = if failed { "<p id=\"error\" role=\"alert\">The email or password is incorrect.</p>" } else { "" };
    let body = format!(
        "<h1>Sign in to Keap</h1><p>to continue to <span id=\"app-name\">{app}</span></p>{error}\
<form method=\"post\" action=\"/app/oauth/authorize\">\
<input type=\"hidden\" name=\"consent\" value=\"{consent}\">\
<label for=\"username\">Email</label><input id=\"username\" name=\"username\" type=\"text\" autocomplete=\"username\" required>\
<label for=\"password\">Password</label><input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\
<div class=\"buttons\"><button type=\"submit\" id=\"sign-in\" class=\"btn-primary\">Log in</button></div></form>\
<p><small>Keap sandbox (simulated): the account's sign-in is printed by <code>switchyard sandbox</code>.</small></p>",
        app = escape(app_name),
        consent = escape(consent_id),
    );
    document(&format!("Sign in to authorize {app_name}"), &body)
}

/// An error that is not sent back to the client (unknown client, bad redirect URI).
pub(crate) fn error(title: &str, message: &str) -> String {
    let body = format!("<h1 id=\"error\">{}</h1><p id=\"message\">{}</p>", escape(title), escape(message));
    document(title, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_that_matters() {
        assert_eq!(escape("<a href=\"x\">&'</a>"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;");
        let page = consent(&Consent { app_name: "<b>Evil</b>", account: "a", scope: "full", redirect_host: "h", consent_id: "c" });
        assert!(page.contains("&lt;b&gt;Evil&lt;/b&gt;") && !page.contains("<b>Evil"));
        let page = sign_in("<i>App</i>", "\"c", true);
        assert!(page.contains("&lt;i&gt;App&lt;/i&gt;") && page.contains("value=\"&quot;c\"") && page.contains("id=\"error\""));
        assert!(!sign_in("App", "c", false).contains("id=\"error\""));
    }
}
