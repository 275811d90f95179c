//! The status page `GET /` serves: one HTML document with its style sheet
//! and script inline (`status.html`, `status.css`, `status.js` beside this
//! file, embedded at build time), so it needs nothing but the admin
//! listener, not even on an air-gapped host.
//!
//! Each answer draws a fresh nonce for its `<style>` and `<script>` and
//! sends a Content-Security-Policy that allows those two and requests to
//! the listener itself only; the page cannot be framed.

use super::actions::random_hex;

const HTML: &str = include_str!("status.html");
const CSS: &str = include_str!("status.css");
const SCRIPT: &str = include_str!("status.js");

/// The page, and the nonce its inline style and script carry. `csrf` is
/// the actions' CSRF token when actions are on.
pub(super) fn render(csrf: Option<&str>) -> (String, String) {
    let nonce = random_hex(16);
    let html = HTML
        .replace("{{NONCE}}", &nonce)
        .replace("{{CSRF}}", csrf.unwrap_or(""))
        .replace("{{ACTIONS}}", if csrf.is_some() { "on" } else { "off" })
        .replace("{{VERSION}}", env!("CARGO_PKG_VERSION"))
        .replace("{{CSS}}", CSS)
        .replace("{{SCRIPT}}", SCRIPT);
    (html, nonce)
}

/// The extra header lines of the page's answer (each ending in CRLF).
pub(super) fn security_headers(nonce: &str) -> String {
    format!(
        "Content-Security-Policy: default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'\r\n\
         X-Frame-Options: DENY\r\n\
         Referrer-Policy: no-referrer\r\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_is_self_contained_and_carries_its_nonce() {
        let (html, nonce) = render(Some("abc"));
        assert!(html.contains(&format!("<script nonce=\"{nonce}\">")));
        assert!(html.contains("content=\"abc\""));
        assert!(!html.contains("{{"), "a placeholder is left");
        for external in ["http://", "https://", "//cdn", "@import"] {
            assert!(!html.contains(external), "{external} in the page");
        }
        let (other, _) = render(None);
        assert!(other.contains("name=\"ktcpvs-actions\" content=\"off\""));
    }
}
