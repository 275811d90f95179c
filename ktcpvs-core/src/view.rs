//! The read-only views a scheduler sees: [`VirtualService`], [`RealServer`]
//! and the compiled [`Rule`].
//!
//! The engine's snapshot types implement these traits; a scheduler crate
//! depends on nothing else, and its tests implement them with a few lines
//! of their own (see `docs/plugins.md`). Servers are addressed by their
//! index in [`VirtualService::server`], which is stable for the lifetime of
//! one snapshot (and therefore of one picker).

use std::cell::RefCell;
use std::fmt;
use std::net::SocketAddr;

use regex::{CaptureLocations, Regex};
use thread_local::ThreadLocal;

use crate::condition::{CompiledConditions, Conditions, HeaderEdit, RuleAction};
use crate::error::ControlError;
use crate::model::{is_catch_all_pattern, RuleConfig, MAX_MATCH_GROUP, MAX_PATTERN_LEN};
use crate::scheduler::{PickRequest, RequestHead};

/// What a scheduler may know about one real server.
pub trait RealServer {
    /// The server's address.
    fn addr(&self) -> SocketAddr;

    /// Its weight; 0 means quiesced (no new work).
    fn weight(&self) -> u32;

    /// Connections (or in-flight requests) currently leased to it, live.
    fn active_connections(&self) -> u64;

    /// Whether it is in rotation: not inside a failure back-off.
    fn is_healthy(&self) -> bool;

    /// Whether it may take new work: weight above zero and healthy.
    fn is_available(&self) -> bool {
        self.weight() > 0 && self.is_healthy()
    }

    /// How long it has recently taken to start a response (a peak moving
    /// average, see [`ServerLoad::record_response_time`](crate::ServerLoad::record_response_time));
    /// `None` when unknown (no response yet, or a view without it).
    fn response_time(&self) -> Option<std::time::Duration> {
        None
    }
}

/// What a scheduler may know about one virtual service.
pub trait VirtualService {
    /// The service's name.
    fn name(&self) -> &str;

    /// How many real servers it has.
    fn server_count(&self) -> usize;

    /// The real server at `index` (0 ≤ index < [`server_count`](Self::server_count)).
    ///
    /// # Panics
    /// May panic when `index` is out of range.
    fn server(&self, index: usize) -> &dyn RealServer;

    /// The rules in evaluation order (catch-alls last).
    fn rules(&self) -> &[Rule];

    /// A scheduler option (`option NAME = "VALUE"` in the configuration).
    fn option(&self, name: &str) -> Option<&str>;

    /// Whether clients reach the service over TLS (so that, for instance,
    /// a cookie the picker stamps can be marked `Secure`). `false` unless
    /// implemented.
    fn is_tls(&self) -> bool {
        false
    }
}

/// A compiled content rule: a pattern, an optional capture group, and the
/// servers it routes to (as indices into [`VirtualService::server`]).
pub struct Rule {
    pattern: String,
    regex: Regex,
    match_group: Option<u32>,
    servers: Vec<usize>,
    locations: ThreadLocal<RefCell<CaptureLocations>>,
    shortcut: Shortcut,
    conditions: CompiledConditions,
    condition_config: Conditions,
    conditional: bool,
    action: RuleAction,
    edits: Vec<HeaderEdit>,
}

/// How [`Rule::is_match`] can answer without running the regex: the
/// catch-all patterns are the last rule of most services and match every
/// request, so they are decided by a comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shortcut {
    /// `.*`: matches every target (an empty match at worst).
    Everything,
    /// `^/.*`: matches every target that starts with `/`.
    Slash,
    /// Any other pattern: run the regex.
    None,
}

impl Rule {
    /// Compiles a rule. The pattern is a `regex`-crate expression, matched
    /// unanchored and case-sensitively against the raw request target.
    pub fn new(
        pattern: &str,
        match_group: Option<u32>,
        servers: Vec<usize>,
    ) -> Result<Rule, ControlError> {
        if pattern.is_empty() || pattern.len() > MAX_PATTERN_LEN {
            return Err(ControlError::BadPattern {
                pattern: pattern.to_string(),
                reason: format!("a pattern must be 1..={MAX_PATTERN_LEN} bytes"),
            });
        }
        let regex = Regex::new(pattern).map_err(|e| ControlError::BadPattern {
            pattern: pattern.to_string(),
            reason: e.to_string(),
        })?;
        if let Some(g) = match_group {
            if g > MAX_MATCH_GROUP {
                return Err(ControlError::Invalid {
                    what: "match number",
                    value: g.to_string(),
                    reason: format!("must be 0..={MAX_MATCH_GROUP}"),
                });
            }
            if g as usize >= regex.captures_len() {
                return Err(ControlError::Invalid {
                    what: "match number",
                    value: g.to_string(),
                    reason: format!(
                        "pattern \"{pattern}\" has only {} capture group(s)",
                        regex.captures_len() - 1
                    ),
                });
            }
        }
        Ok(Rule {
            pattern: pattern.to_string(),
            regex,
            match_group,
            servers,
            locations: ThreadLocal::new(),
            shortcut: match pattern {
                ".*" => Shortcut::Everything,
                "^/.*" => Shortcut::Slash,
                _ => Shortcut::None,
            },
            conditions: CompiledConditions::new(&Conditions::default())?,
            condition_config: Conditions::default(),
            conditional: false,
            action: RuleAction::Forward,
            edits: Vec::new(),
        })
    }

    /// Compiles a configured rule, with its conditions, action and edits,
    /// routing to `servers` (indices into the service).
    pub fn compile(config: &RuleConfig, servers: Vec<usize>) -> Result<Rule, ControlError> {
        let mut rule = Rule::new(&config.pattern, config.match_group, servers)?;
        config.action.validate()?;
        for edit in &config.edits {
            edit.validate()?;
        }
        rule.conditions = CompiledConditions::new(&config.conditions)?;
        rule.conditional = !config.conditions.is_empty();
        rule.condition_config = config.conditions.clone();
        rule.action = config.action.clone();
        rule.edits = config.edits.clone();
        Ok(rule)
    }

    /// What the rule does with a request it matches.
    pub fn action(&self) -> &RuleAction {
        &self.action
    }

    /// Its header edits.
    pub fn edits(&self) -> &[HeaderEdit] {
        &self.edits
    }

    /// Appends the location a `redirect` rule sends `head` to: its
    /// template with `$1`…`$9` replaced by the pattern's capture groups in
    /// the target as sent, `{host}` by the request's host and `{path}` by
    /// its target. Nothing for another action.
    pub fn write_location(&self, head: &RequestHead<'_>, out: &mut Vec<u8>) {
        let RuleAction::Redirect { location, .. } = &self.action else {
            return;
        };
        let bytes = location.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let rest = &location[i..];
            if let (b'$', Some(d)) = (bytes[i], bytes.get(i + 1).filter(|d| d.is_ascii_digit())) {
                if let Some(text) = self.capture(head.target, u32::from(d - b'0')) {
                    out.extend_from_slice(text.as_bytes());
                }
                i += 2;
            } else if rest.starts_with("{host}") {
                out.extend_from_slice(head.host.unwrap_or("").as_bytes());
                i += "{host}".len();
            } else if rest.starts_with("{path}") {
                out.extend_from_slice(head.target.as_bytes());
                i += "{path}".len();
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }

    /// Its conditions besides the pattern, as configured (what a plug-in
    /// scheduler may read; [`matches`](Self::matches) evaluates them).
    pub fn conditions(&self) -> &Conditions {
        &self.condition_config
    }

    /// Whether the rule has conditions besides its pattern.
    pub fn is_conditional(&self) -> bool {
        self.conditional
    }

    /// Whether the rule matches `request`: its pattern on the target (or
    /// the normalised target), and every condition. A request without a
    /// head (layer 4) matches only a rule whose conditions need none, on
    /// an empty target. Allocates nothing after a thread's first call.
    pub fn matches(&self, request: &PickRequest<'_>) -> bool {
        self.explain(request).is_ok()
    }

    /// Like [`matches`](Self::matches), naming what failed: `"pattern"`,
    /// or the condition (`"host"`, `"method"`, `"header"`, `"cookie"`,
    /// `"query"`, `"src"`).
    pub fn explain(&self, request: &PickRequest<'_>) -> Result<(), &'static str> {
        let target = request.head.map_or("", |h| h.target);
        let matched = if self.conditional && self.conditions.normalizes() {
            self.conditions.with_target(target, |t| self.is_match(t))
        } else {
            self.is_match(target)
        };
        if !matched {
            return Err("pattern");
        }
        if !self.conditional {
            return Ok(());
        }
        self.conditions.check(request)
    }

    /// The pattern as written.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// The capture group named by `match N`, if any.
    pub fn match_group(&self) -> Option<u32> {
        self.match_group
    }

    /// The servers this rule routes to, as indices into the service.
    pub fn servers(&self) -> &[usize] {
        &self.servers
    }

    /// Whether this is a catch-all (`.*` or `^/.*`, without conditions).
    pub fn is_catch_all(&self) -> bool {
        is_catch_all_pattern(&self.pattern) && !self.conditional
    }

    /// Whether the rule matches `target`. Allocates nothing; the
    /// catch-all patterns `.*` and `^/.*` are decided without the regex.
    pub fn is_match(&self, target: &str) -> bool {
        match self.shortcut {
            Shortcut::Everything => true,
            Shortcut::Slash => target.starts_with('/'),
            Shortcut::None => self.regex.is_match(target),
        }
    }

    /// Matches `target` and returns the text of the capture group `group`:
    /// `None` when the rule does not match, `Some("")` when it matches but
    /// the group did not take part. Allocates nothing after the first call
    /// on each thread.
    pub fn capture<'t>(&self, target: &'t str, group: u32) -> Option<&'t str> {
        let cell = self
            .locations
            .get_or(|| RefCell::new(self.regex.capture_locations()));
        let mut locs = cell.borrow_mut();
        self.regex.captures_read(&mut locs, target)?;
        Some(
            locs.get(group as usize)
                .map(|(start, end)| &target[start..end])
                .unwrap_or(""),
        )
    }
}

impl fmt::Debug for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rule")
            .field("pattern", &self.pattern)
            .field("match_group", &self.match_group)
            .field("servers", &self.servers)
            .finish()
    }
}

/// The first rule (in evaluation order) whose pattern matches `target`,
/// with its position, ignoring conditions: for rules without any (use
/// [`first_rule_for`] to honour them). Allocates nothing.
pub fn first_matching_rule<'r>(rules: &'r [Rule], target: &str) -> Option<(usize, &'r Rule)> {
    rules.iter().enumerate().find(|(_, r)| r.is_match(target))
}

/// The first rule (in evaluation order) that matches `request`, pattern
/// and conditions, with its position: what every rule-based scheduler and
/// the engine's edge actions use. Allocates nothing after a thread's first
/// call.
pub fn first_rule_for<'r>(
    rules: &'r [Rule],
    request: &PickRequest<'_>,
) -> Option<(usize, &'r Rule)> {
    rules.iter().enumerate().find(|(_, r)| r.matches(request))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_returns_group_text_or_empty() {
        let r = Rule::new("/users/([^/]+)/(x)?", Some(1), vec![0]).unwrap();
        assert_eq!(r.capture("/users/bob/a", 1), Some("bob"));
        assert_eq!(r.capture("/users/bob/a", 2), Some(""));
        assert_eq!(r.capture("/other", 1), None);
        assert_eq!(r.capture("/users/al/x", 0), Some("/users/al/x"));
    }

    #[test]
    fn rejects_bad_patterns_and_groups() {
        assert!(matches!(
            Rule::new("(", None, vec![]),
            Err(ControlError::BadPattern { .. })
        ));
        assert!(matches!(
            Rule::new("", None, vec![]),
            Err(ControlError::BadPattern { .. })
        ));
        assert!(matches!(
            Rule::new("a(b)", Some(2), vec![]),
            Err(ControlError::Invalid { .. })
        ));
        assert!(Rule::new("a(b)", Some(1), vec![]).is_ok());
    }

    #[test]
    fn catch_all_shortcuts_agree_with_the_regex() {
        for pattern in [".*", "^/.*"] {
            let rule = Rule::new(pattern, None, vec![0]).unwrap();
            for target in ["/", "/a/b?c=d", "", "*", "http://h/x", "x/"] {
                assert_eq!(
                    rule.is_match(target),
                    rule.regex.is_match(target),
                    "{pattern} on {target:?}"
                );
            }
        }
    }

    #[test]
    fn first_match_wins() {
        let rules = vec![
            Rule::new("^/images/", None, vec![0]).unwrap(),
            Rule::new(".*", None, vec![1]).unwrap(),
        ];
        assert_eq!(first_matching_rule(&rules, "/images/a.png").unwrap().0, 0);
        assert_eq!(first_matching_rule(&rules, "/x").unwrap().0, 1);
    }
}
