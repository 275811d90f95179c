//! Runtime settings: the user-space counterpart of the original's
//! `/proc/sys/net/ktcpvs/*` sysctls, plus the limits and timeouts later work
//! added. `tcpvsadm --sysctl NAME[=VALUE]` reads and writes them.
//!
//! Every setting is an unsigned integer with a documented range and default;
//! [`SETTINGS`] is the table that `get`, `set` and the documentation share.

use crate::error::ControlError;

/// One row of the settings table.
#[derive(Debug, Clone, Copy)]
pub struct SettingInfo {
    /// The setting's name, as `tcpvsadm --sysctl` spells it.
    pub name: &'static str,
    /// Its default value.
    pub default: u64,
    /// Smallest accepted value.
    pub min: u64,
    /// Largest accepted value.
    pub max: u64,
    /// What it controls.
    pub help: &'static str,
}

/// Every runtime setting, in listing order.
pub const SETTINGS: &[SettingInfo] = &[
    SettingInfo { name: "debug_level", default: 0, min: 0, max: 12, help: "log verbosity: 0 errors and announcements, 1 warnings, 2 configuration, 3 listeners, 4-5 connections and scheduling, 8+ relay traces" },
    SettingInfo { name: "unload", default: 0, min: 0, max: 1, help: "write 1 to stop every service, drain and shut the host program down" },
    SettingInfo { name: "max_backlog", default: 2048, min: 1, max: 65_535, help: "listen() backlog, applied when a service starts" },
    SettingInfo { name: "zerocopy_send", default: 0, min: 0, max: 1, help: "1: relay bodies and tunnels with splice(2) through a pipe where framing allows" },
    SettingInfo { name: "keepalive_timeout", default: 30, min: 1, max: 86_400, help: "seconds a client may idle between requests, and a pooled backend connection may idle" },
    SettingInfo { name: "read_timeout", default: 180, min: 1, max: 86_400, help: "seconds without a byte moving in either direction after which a relayed connection, or a body being relayed, is closed" },
    SettingInfo { name: "connect_timeout", default: 5, min: 1, max: 3_600, help: "seconds allowed for a backend connect before another server is tried" },
    SettingInfo { name: "header_timeout", default: 10, min: 1, max: 3_600, help: "seconds a client has to send a complete request head (408 after)" },
    SettingInfo { name: "response_timeout", default: 60, min: 1, max: 86_400, help: "seconds a backend has to start its response (504 after)" },
    SettingInfo { name: "max_request_line", default: 8_192, min: 64, max: 1_048_576, help: "longest request line in bytes (414 above)" },
    SettingInfo { name: "max_header_size", default: 16_384, min: 256, max: 1_048_576, help: "largest request head in bytes (431 above)" },
    SettingInfo { name: "max_headers", default: 100, min: 1, max: 256, help: "most header fields in one request or response head" },
    SettingInfo { name: "pool_max_idle", default: 1024, min: 0, max: 65_535, help: "idle backend connections kept per worker and server" },
    SettingInfo { name: "min_transfer_rate", default: 512, min: 0, max: 1_073_741_824, help: "bytes per second a client must move, averaged over each transfer_window, while a body waits on it (a response it is slow to read, a request body it is slow to send); a slower client is cut (408 if no response started). 0 disables" },
    SettingInfo { name: "transfer_window", default: 30, min: 1, max: 3_600, help: "seconds over which min_transfer_rate is measured" },
    SettingInfo { name: "server_retry_backoff", default: 2, min: 1, max: 3_600, help: "seconds a failed server stays out of rotation before it is tried again (doubles up to 64x on repeated failures)" },
    SettingInfo { name: "access_log", default: 0, min: 0, max: 2, help: "the access log's format: 0 off, 1 common, 2 json (one line per request; the host program says where: ktcpvsd --access-log)" },
    SettingInfo { name: "poll_nap_us", default: 50, min: 0, max: 10_000, help: "microseconds a worker under load naps while events arrive faster than that: instead of blocking when nothing is ready, and before every poll while many HTTP/2 streams share their client connections, so that it handles events in batches (fewer polls, context switches and client writes per request; an event that arrives during a nap waits at most this long; an idle or lightly loaded worker never naps). 0 disables" },
    SettingInfo { name: "drain", default: 0, min: 0, max: 3_600, help: "write N > 0 to take the node out gracefully: /healthz fails at once, the node keeps serving N seconds so the tier in front notices, then stops accepting, finishes its requests and the host program exits" },
];

/// The values of every runtime setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    values: [u64; SETTINGS.len()],
}

impl Default for Settings {
    fn default() -> Self {
        let mut values = [0; SETTINGS.len()];
        for (v, info) in values.iter_mut().zip(SETTINGS) {
            *v = info.default;
        }
        Settings { values }
    }
}

fn index_of(name: &str) -> Option<usize> {
    SETTINGS.iter().position(|s| s.name == name)
}

fn known_names() -> String {
    SETTINGS
        .iter()
        .map(|s| s.name)
        .collect::<Vec<_>>()
        .join(", ")
}

macro_rules! accessors {
    ($($fn_name:ident => $idx:literal),* $(,)?) => {
        $(
            #[doc = concat!("The current value of `", stringify!($fn_name), "`.")]
            pub fn $fn_name(&self) -> u64 {
                debug_assert_eq!(SETTINGS[$idx].name, stringify!($fn_name));
                self.values[$idx]
            }
        )*
    };
}

impl Settings {
    /// The value of the setting `name`.
    pub fn get(&self, name: &str) -> Result<u64, ControlError> {
        index_of(name)
            .map(|i| self.values[i])
            .ok_or_else(|| ControlError::UnknownSetting(name.to_string(), known_names()))
    }

    /// Sets `name` from its text form, checking its range.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), ControlError> {
        let i = index_of(name)
            .ok_or_else(|| ControlError::UnknownSetting(name.to_string(), known_names()))?;
        let info = &SETTINGS[i];
        let v: u64 = value.trim().parse().map_err(|_| ControlError::Invalid {
            what: "setting value",
            value: value.to_string(),
            reason: format!("{} takes an unsigned integer", info.name),
        })?;
        if v < info.min || v > info.max {
            return Err(ControlError::Invalid {
                what: "setting value",
                value: value.to_string(),
                reason: format!("{} must be {}..={}", info.name, info.min, info.max),
            });
        }
        self.values[i] = v;
        Ok(())
    }

    /// Every setting with its current value, in table order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static SettingInfo, u64)> + '_ {
        SETTINGS.iter().zip(self.values.iter().copied())
    }

    accessors! {
        debug_level => 0,
        unload => 1,
        max_backlog => 2,
        zerocopy_send => 3,
        keepalive_timeout => 4,
        read_timeout => 5,
        connect_timeout => 6,
        header_timeout => 7,
        response_timeout => 8,
        max_request_line => 9,
        max_header_size => 10,
        max_headers => 11,
        pool_max_idle => 12,
        min_transfer_rate => 13,
        transfer_window => 14,
        server_retry_backoff => 15,
        access_log => 16,
        poll_nap_us => 17,
        drain => 18,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_original() {
        let s = Settings::default();
        assert_eq!(s.keepalive_timeout(), 30);
        assert_eq!(s.read_timeout(), 180);
        assert_eq!(s.max_backlog(), 2048);
        assert_eq!(s.unload(), 0);
        // every accessor names its own row
        let _ = (
            s.debug_level(),
            s.zerocopy_send(),
            s.connect_timeout(),
            s.header_timeout(),
            s.response_timeout(),
            s.max_request_line(),
            s.max_header_size(),
            s.max_headers(),
            s.pool_max_idle(),
            s.server_retry_backoff(),
            s.min_transfer_rate(),
            s.transfer_window(),
        );
    }

    #[test]
    fn set_checks_name_and_range() {
        let mut s = Settings::default();
        s.set("debug_level", "2").unwrap();
        assert_eq!(s.get("debug_level").unwrap(), 2);
        assert!(matches!(
            s.set("debug_level", "13"),
            Err(ControlError::Invalid { .. })
        ));
        assert!(matches!(
            s.set("nope", "1"),
            Err(ControlError::UnknownSetting(..))
        ));
        assert!(matches!(
            s.set("unload", "x"),
            Err(ControlError::Invalid { .. })
        ));
        assert_eq!(s.get("debug_level").unwrap(), 2);
    }
}
