//! Health and overload settings of a virtual service: active checks,
//! outlier ejection, slow start, the request queue and the retry budget.
//!
//! They are one [`HealthConfig`] per service, set key by key with the same
//! `KEY = VALUE` text everywhere: a configuration file (`check_path =
//! "/healthz"`), the control socket (`health.check_path=/healthz`) and
//! `tcpvsadm --health check_path=/healthz`. [`HealthConfig::set`] is the
//! one parser of those values and [`HealthConfig::entries`] prints the
//! settings that differ from the defaults, in the same form, so printing a
//! configuration and reading it back gives the same settings.
//!
//! The engine acts on them (probing, ejecting, ramping, queueing); this
//! module only holds and checks them.

use std::fmt;
use std::time::Duration;

use crate::error::ControlError;

/// How a service's servers are probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckKind {
    /// A TCP connect (and the TLS handshake for a server reached over TLS)
    /// that completes within the timeout.
    Tcp,
    /// An HTTP/1.1 request whose response has an expected status (and,
    /// when configured, a body holding an expected text).
    Http,
}

/// What a service does when every server a request could go to is down by
/// its active checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AllDown {
    /// Answer 503 (HTTP) or close (layer 4), as for "no server".
    #[default]
    Refuse,
    /// Ignore the checks for that pool and balance over its servers, as if
    /// they were up (Envoy's panic mode): a check that fails everywhere is
    /// more likely wrong than every server.
    Open,
}

/// Largest probe interval, timeout, slow-start window or queue timeout.
pub const MAX_HEALTH_DURATION: Duration = Duration::from_secs(3_600);

/// Smallest probe interval.
pub const MIN_CHECK_INTERVAL: Duration = Duration::from_millis(10);

/// Most requests one service may hold in its queue.
pub const MAX_QUEUE: u32 = 1_000_000;

/// Longest value of a text setting (path, host, body), in bytes.
pub const MAX_HEALTH_TEXT: usize = 1024;

/// Every key [`HealthConfig::set`] accepts, in the order
/// [`HealthConfig::entries`] prints them.
pub const HEALTH_KEYS: [&str; 18] = [
    "check",
    "check_method",
    "check_path",
    "check_host",
    "check_status",
    "check_body",
    "check_interval",
    "check_timeout",
    "check_rise",
    "check_fall",
    "check_jitter",
    "all_down",
    "eject_5xx",
    "eject_failures",
    "max_ejection_percent",
    "slow_start",
    "queue",
    "queue_timeout",
];

/// The key of the retry budget (kept apart from [`HEALTH_KEYS`] only for
/// the array's length; [`HealthConfig::set`] accepts it too).
pub const RETRY_BUDGET_KEY: &str = "retry_budget";

/// Whether `key` is a health setting's name.
pub fn is_health_key(key: &str) -> bool {
    key == RETRY_BUDGET_KEY || HEALTH_KEYS.contains(&key)
}

/// Health checks, ejection, slow start, queue and retry budget of one
/// service. The defaults change nothing about how a service without them
/// behaves: no probes, a server out of rotation after one failed connect,
/// no slow start, no queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthConfig {
    /// The probe; `None`: no active checks.
    pub check: Option<CheckKind>,
    /// The HTTP probe's method (`GET`).
    pub method: String,
    /// The HTTP probe's target, origin form (`/`).
    pub path: String,
    /// The HTTP probe's `Host`; `None`: the server's address.
    pub host: Option<String>,
    /// The statuses that count as healthy, inclusive (200 to 399).
    pub status: (u16, u16),
    /// A text the response body must contain; `None`: any body.
    pub body: Option<String>,
    /// Time between two probes of one server (2 s).
    pub interval: Duration,
    /// Time a probe may take (1 s).
    pub timeout: Duration,
    /// Consecutive passed probes that bring a down server up (2).
    pub rise: u32,
    /// Consecutive failed probes that take an up server down (3).
    pub fall: u32,
    /// Spread of each interval, in percent of it (10): every wait is drawn
    /// from `interval ± jitter %`, so probes of many services do not align.
    pub jitter: u32,
    /// What to do when every server of a pool is down by its checks.
    pub all_down: AllDown,
    /// Consecutive 5xx responses that eject a server; 0: off.
    pub eject_5xx: u32,
    /// Consecutive failed connects or response timeouts that eject a
    /// server (1).
    pub eject_failures: u32,
    /// Most of a service's servers that may be ejected at once, in percent
    /// (50); one server may always be ejected.
    pub max_ejection_percent: u32,
    /// A server coming back ramps its weight from a tenth to all of it over
    /// this long; zero: off.
    pub slow_start: Duration,
    /// Most requests waiting for a server below its `maxconn`; 0: none wait
    /// (503 at once).
    pub queue: u32,
    /// Longest wait in the queue before a 503 (5 s).
    pub queue_timeout: Duration,
    /// Retries allowed, in percent of requests (20), on top of a floor of
    /// ten per second.
    pub retry_budget: u32,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            check: None,
            method: "GET".to_string(),
            path: "/".to_string(),
            host: None,
            status: (200, 399),
            body: None,
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            rise: 2,
            fall: 3,
            jitter: 10,
            all_down: AllDown::Refuse,
            eject_5xx: 0,
            eject_failures: 1,
            max_ejection_percent: 50,
            slow_start: Duration::ZERO,
            queue: 0,
            queue_timeout: Duration::from_secs(5),
            retry_budget: 20,
        }
    }
}

/// A health value that does not parse.
fn invalid(key: &str, value: &str, reason: impl Into<String>) -> ControlError {
    ControlError::Invalid {
        what: "health setting",
        value: format!("{key}={value}"),
        reason: reason.into(),
    }
}

/// Reads a duration written with a unit: `500ms`, `2s` or `1m`.
///
/// ```
/// use std::time::Duration;
/// use ktcpvs_core::health::{format_duration, parse_duration};
/// assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
/// assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
/// assert_eq!(parse_duration("2"), None);
/// assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
/// ```
pub fn parse_duration(text: &str) -> Option<Duration> {
    let (digits, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit())?);
    if digits.is_empty() || digits.len() > 9 {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => Some(Duration::from_secs(n.checked_mul(60)?)),
        _ => None,
    }
}

/// Writes a duration the way [`parse_duration`] reads it: whole seconds as
/// `Ns`, anything else in milliseconds.
pub fn format_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// Whether `text` is a non-empty run of printable ASCII without blanks.
fn printable_word(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_graphic())
}

impl HealthConfig {
    /// Sets one setting from its text, as a configuration file, the control
    /// socket and tcpvsadm write it. Unknown keys and bad values are
    /// refused, naming the key, the value and what is wrong; nothing
    /// changes then.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ktcpvs_core::health::{CheckKind, HealthConfig};
    /// let mut h = HealthConfig::default();
    /// h.set("check", "http")?;
    /// h.set("check_path", "/healthz")?;
    /// h.set("check_interval", "500ms")?;
    /// assert_eq!(h.check, Some(CheckKind::Http));
    /// assert_eq!(h.interval, Duration::from_millis(500));
    /// assert!(h.set("check_fall", "0").is_err());
    /// assert!(h.set("check_path", "no-slash").is_err());
    /// # Ok::<(), ktcpvs_core::ControlError>(())
    /// ```
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ControlError> {
        let bad = |reason: &str| invalid(key, value, reason);
        let number = |lo: u32, hi: u32| -> Result<u32, ControlError> {
            value
                .parse::<u32>()
                .ok()
                .filter(|n| (lo..=hi).contains(n))
                .ok_or_else(|| bad(&format!("expected a number {lo}..={hi}")))
        };
        let duration = |lo: Duration| -> Result<Duration, ControlError> {
            parse_duration(value)
                .filter(|d| *d >= lo && *d <= MAX_HEALTH_DURATION)
                .ok_or_else(|| {
                    bad(&format!(
                        "expected a duration with a unit (500ms, 2s, 1m) from {} to {}",
                        format_duration(lo),
                        format_duration(MAX_HEALTH_DURATION)
                    ))
                })
        };
        let text = || -> Result<String, ControlError> {
            if value.len() > MAX_HEALTH_TEXT || value.chars().any(char::is_control) {
                return Err(bad(&format!(
                    "at most {MAX_HEALTH_TEXT} bytes, no control character"
                )));
            }
            Ok(value.to_string())
        };
        match key {
            "check" => {
                self.check = match value.to_ascii_lowercase().as_str() {
                    "none" | "off" => None,
                    "tcp" => Some(CheckKind::Tcp),
                    "http" => Some(CheckKind::Http),
                    _ => return Err(bad("expected 'tcp', 'http' or 'none'")),
                }
            }
            "check_method" => {
                let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
                if value.is_empty() || value.len() > 32 || !value.bytes().all(tchar) {
                    return Err(bad("a method is an HTTP token of at most 32 bytes"));
                }
                if value.eq_ignore_ascii_case("CONNECT") {
                    return Err(bad("CONNECT cannot be a check"));
                }
                self.method = value.to_string();
            }
            "check_path" => {
                if !value.starts_with('/')
                    || !printable_word(value)
                    || value.len() > MAX_HEALTH_TEXT
                {
                    return Err(bad(
                        "a target in origin form: '/' then printable characters, no blank",
                    ));
                }
                self.path = value.to_string();
            }
            // The empty text sets it back to the server's address.
            "check_host" if value.is_empty() => self.host = None,
            "check_host" => {
                if !printable_word(value) || value.len() > 255 {
                    return Err(bad("a host name of printable characters, no blank"));
                }
                self.host = Some(value.to_string());
            }
            "check_status" => {
                self.status = parse_status_range(value).ok_or_else(|| {
                    bad("expected a status or a range of them, 100..=599 (200 or 200-399)")
                })?
            }
            "check_body" => self.body = Some(text()?).filter(|b| !b.is_empty()),
            "check_interval" => self.interval = duration(MIN_CHECK_INTERVAL)?,
            "check_timeout" => self.timeout = duration(Duration::from_millis(1))?,
            "check_rise" => self.rise = number(1, 1000)?,
            "check_fall" => self.fall = number(1, 1000)?,
            "check_jitter" => self.jitter = number(0, 50)?,
            "all_down" => {
                self.all_down = match value.to_ascii_lowercase().as_str() {
                    "refuse" => AllDown::Refuse,
                    "open" => AllDown::Open,
                    _ => return Err(bad("expected 'refuse' or 'open'")),
                }
            }
            "eject_5xx" => self.eject_5xx = number(0, 10_000)?,
            "eject_failures" => self.eject_failures = number(1, 10_000)?,
            "max_ejection_percent" => self.max_ejection_percent = number(0, 100)?,
            "slow_start" => self.slow_start = duration(Duration::ZERO)?,
            "queue" => self.queue = number(0, MAX_QUEUE)?,
            "queue_timeout" => self.queue_timeout = duration(Duration::from_millis(1))?,
            RETRY_BUDGET_KEY => self.retry_budget = number(0, 100)?,
            _ => {
                return Err(ControlError::Invalid {
                    what: "health setting",
                    value: key.to_string(),
                    reason: format!(
                        "unknown; the settings are {} and {RETRY_BUDGET_KEY}",
                        HEALTH_KEYS.join(", ")
                    ),
                })
            }
        }
        Ok(())
    }

    /// The settings that differ from the defaults, as `(key, value)` pairs
    /// [`set`](Self::set) reads back, in [`HEALTH_KEYS`] order (then the
    /// retry budget).
    pub fn entries(&self) -> Vec<(&'static str, String)> {
        let defaults = HealthConfig::default().all_entries();
        self.all_entries()
            .into_iter()
            .zip(defaults)
            .filter(|(mine, default)| mine.1 != default.1)
            .map(|(mine, _)| mine)
            .collect()
    }

    /// Every setting, default or not, as `(key, value)` pairs
    /// [`set`](Self::set) reads back, in [`HEALTH_KEYS`] order (then the
    /// retry budget). An unset `check_host` or `check_body` is the empty
    /// text, which sets it back to unset.
    ///
    /// ```
    /// use ktcpvs_core::health::{HealthConfig, HEALTH_KEYS};
    /// let all = HealthConfig::default().all_entries();
    /// assert_eq!(all.len(), HEALTH_KEYS.len() + 1);
    /// assert!(all.contains(&("check_interval", "2s".to_string())));
    /// assert!(all.contains(&("check_host", String::new())));
    /// ```
    pub fn all_entries(&self) -> Vec<(&'static str, String)> {
        // Every field is named: a field added to the struct does not
        // compile here until it is listed (and so printed and diffed).
        let HealthConfig {
            check,
            method,
            path,
            host,
            status,
            body,
            interval,
            timeout,
            rise,
            fall,
            jitter,
            all_down,
            eject_5xx,
            eject_failures,
            max_ejection_percent,
            slow_start,
            queue,
            queue_timeout,
            retry_budget,
        } = self;
        let check = match check {
            None => "none",
            Some(CheckKind::Tcp) => "tcp",
            Some(CheckKind::Http) => "http",
        };
        let all_down = match all_down {
            AllDown::Refuse => "refuse",
            AllDown::Open => "open",
        };
        vec![
            ("check", check.to_string()),
            ("check_method", method.clone()),
            ("check_path", path.clone()),
            ("check_host", host.clone().unwrap_or_default()),
            ("check_status", format_status_range(*status)),
            ("check_body", body.clone().unwrap_or_default()),
            ("check_interval", format_duration(*interval)),
            ("check_timeout", format_duration(*timeout)),
            ("check_rise", rise.to_string()),
            ("check_fall", fall.to_string()),
            ("check_jitter", jitter.to_string()),
            ("all_down", all_down.to_string()),
            ("eject_5xx", eject_5xx.to_string()),
            ("eject_failures", eject_failures.to_string()),
            ("max_ejection_percent", max_ejection_percent.to_string()),
            ("slow_start", format_duration(*slow_start)),
            ("queue", queue.to_string()),
            ("queue_timeout", format_duration(*queue_timeout)),
            (RETRY_BUDGET_KEY, retry_budget.to_string()),
        ]
    }
}

impl fmt::Display for HealthConfig {
    /// The non-default settings as `key=value` words separated by blanks
    /// (`-` when every setting is the default).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let entries = self.entries();
        if entries.is_empty() {
            return f.write_str("-");
        }
        for (i, (key, value)) in entries.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{key}={value}")?;
        }
        Ok(())
    }
}

/// Reads `200` or `200-399` (each 100..=599, the first not above the
/// second).
fn parse_status_range(text: &str) -> Option<(u16, u16)> {
    let status = |t: &str| {
        t.parse::<u16>()
            .ok()
            .filter(|s| (100..=599).contains(s) && t.len() == 3)
    };
    let (lo, hi) = match text.split_once('-') {
        Some((lo, hi)) => (status(lo)?, status(hi)?),
        None => (status(text)?, status(text)?),
    };
    (lo <= hi).then_some((lo, hi))
}

/// Writes a status range the way [`parse_status_range`] reads it.
fn format_status_range((lo, hi): (u16, u16)) -> String {
    if lo == hi {
        lo.to_string()
    } else {
        format!("{lo}-{hi}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_prints_back_to_itself() {
        let mut h = HealthConfig::default();
        for (k, v) in [
            ("check", "http"),
            ("check_method", "HEAD"),
            ("check_path", "/health?x=1"),
            ("check_host", "example.com"),
            ("check_status", "200"),
            ("check_body", "all good"),
            ("check_interval", "250ms"),
            ("check_timeout", "100ms"),
            ("check_rise", "1"),
            ("check_fall", "2"),
            ("check_jitter", "0"),
            ("all_down", "open"),
            ("eject_5xx", "5"),
            ("eject_failures", "3"),
            ("max_ejection_percent", "34"),
            ("slow_start", "10s"),
            ("queue", "100"),
            ("queue_timeout", "2s"),
            ("retry_budget", "10"),
        ] {
            h.set(k, v).unwrap();
        }
        let entries = h.entries();
        assert_eq!(entries.len(), HEALTH_KEYS.len() + 1);
        let mut again = HealthConfig::default();
        for (k, v) in &entries {
            again.set(k, v).unwrap();
        }
        assert_eq!(again, h);
        assert!(HealthConfig::default().entries().is_empty());
    }

    #[test]
    fn the_defaults_written_out_set_every_setting_back() {
        let mut h = HealthConfig::default();
        h.set("check_host", "example.com").unwrap();
        h.set("check_body", "ok").unwrap();
        h.set("check_interval", "250ms").unwrap();
        for (k, v) in HealthConfig::default().all_entries() {
            h.set(k, &v).unwrap();
        }
        assert_eq!(h, HealthConfig::default());
    }

    #[test]
    fn bad_values_are_refused_and_change_nothing() {
        let mut h = HealthConfig::default();
        for (k, v) in [
            ("check", "udp"),
            ("check_method", "GE T"),
            ("check_method", "CONNECT"),
            ("check_path", "*"),
            ("check_path", "/a b"),
            ("check_host", "a\r\nb"),
            ("check_status", "399-200"),
            ("check_status", "99"),
            ("check_status", "2000"),
            ("check_body", "a\nb"),
            ("check_interval", "5ms"),
            ("check_interval", "2"),
            ("check_interval", "2h"),
            ("check_timeout", "0ms"),
            ("check_fall", "0"),
            ("check_jitter", "51"),
            ("all_down", "maybe"),
            ("eject_failures", "0"),
            ("max_ejection_percent", "101"),
            ("queue", "-1"),
            ("retry_budget", "x"),
            ("nonsense", "1"),
        ] {
            assert!(h.set(k, v).is_err(), "{k}={v}");
        }
        assert_eq!(h, HealthConfig::default());
    }
}
