//! Rules that answer at the edge: when the first rule a request matches
//! is a `redirect` or a `respond`, the proxy writes the response itself and
//! the request reaches no server.
//!
//! The location of a redirect is built from its template: `$1`…`$9` are
//! the pattern's capture groups in the target as sent, `{host}` the
//! request's host and `{path}` its target. Every part comes from a parsed
//! head (no CR, LF or other control character can be in it), and the
//! result is checked again before it is written.

use std::io::Write;

use ktcpvs_core::condition::RuleAction;
use ktcpvs_core::snapshot::ServiceSnapshot;
use ktcpvs_core::view::{first_rule_for, Rule};
use ktcpvs_core::{PickRequest, RequestHead};

use super::ClientId;
use crate::http::{reason_phrase, write_fixed_response};

/// The first rule `head` from `from` matches, pattern and conditions.
pub(super) fn matching_rule<'s>(
    service: &'s ServiceSnapshot,
    from: ClientId<'_>,
    head: &RequestHead<'_>,
) -> Option<&'s Rule> {
    let request = PickRequest {
        client: from.addr,
        head: Some(head),
        exclude: &[],
        server_name: from.server_name,
    };
    first_rule_for(service.compiled_rules(), &request).map(|(_, rule)| rule)
}

/// Writes the edge answer of `rule` to `head` into `out` when the rule has
/// one, and returns the status; `None` when the request is to be
/// forwarded. The response closes the connection.
pub(super) fn answer(rule: &Rule, head: &RequestHead<'_>, out: &mut Vec<u8>) -> Option<u16> {
    let is_head = head.method == "HEAD";
    match rule.action() {
        RuleAction::Forward => None,
        RuleAction::Redirect { status, .. } => {
            out.clear();
            let _ = write!(
                out,
                "HTTP/1.1 {status} {}\r\nLocation: ",
                reason_phrase(*status)
            );
            let at = out.len();
            rule.write_location(head, out);
            if out[at..].iter().any(|&b| b < 0x20 || b == 0x7f) {
                out.clear();
                return None;
            }
            out.extend_from_slice(b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            Some(*status)
        }
        RuleAction::Respond {
            status,
            content_type,
            body,
        } => {
            out.clear();
            write_fixed_response(*status, content_type, body.as_bytes(), is_head, out);
            Some(*status)
        }
    }
}
