//! Local resource exhaustion: telling it apart from a real server's
//! failure, and reporting it without flooding the log.
//!
//! When this process runs out of file descriptors, socket buffers, memory
//! or local ports, every connect fails at once, whatever the server. Such a
//! failure says nothing about the server: if it counted against the
//! server's health, one client holding many idle connections could take
//! every server out of rotation. So a connect that fails this way answers
//! the request 503 and leaves the server's health alone, and `accept`
//! failing this way pauses the listener for a growing while instead of
//! being retried on every loop iteration.
//!
//! The log says so once per [`LOG_EVERY`] per process, with the number of
//! occurrences in between, so an attacker who keeps the process at its
//! limit cannot also fill the disk.

use std::io;
use std::time::Duration;

use crate::throttle::Throttle;

/// The shortest interval between two exhaustion warnings.
pub(crate) const LOG_EVERY: Duration = Duration::from_secs(10);

/// Whether `error` means this process ran out of something (descriptors,
/// memory, buffer space, local addresses or ports) rather than that the
/// peer refused, reset or did not answer.
pub(crate) fn is_local_exhaustion(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM | libc::EADDRNOTAVAIL)
    )
}

/// The exhaustion warnings.
static EXHAUSTION: Throttle = Throttle::new(LOG_EVERY);

/// Reports an exhaustion `error` met while doing `what`, at most once per
/// [`LOG_EVERY`] across the process; the warning counts the occurrences
/// it stands for.
pub(crate) fn warn_exhaustion(what: &str, error: &io::Error) {
    let Some(count) = EXHAUSTION.admit() else {
        return;
    };
    log::warn!(
        "local resources exhausted while {what}: {error} ({count} time(s) since the last report); \
         servers are not blamed, requests get 503. Raise the descriptor limit (ulimit -n) or lower maxclients"
    );
}

/// Raises this process's soft limit on open files to its hard limit, as a
/// balancer holding two descriptors per proxied connection needs (the
/// usual soft default, 1024, is reached at about 500 connections).
/// Returns the limit now in force.
///
/// ```
/// let limit = ktcpvs_net::raise_open_file_limit().unwrap();
/// assert!(limit >= 1);
/// ```
pub fn raise_open_file_limit() -> io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit reads one rlimit from the struct it is given.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(io::Error::last_os_error());
        }
        limit = raised;
    }
    Ok(limit.rlim_cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_errors_are_told_apart_from_a_servers() {
        for code in [
            libc::EMFILE,
            libc::ENFILE,
            libc::ENOBUFS,
            libc::ENOMEM,
            libc::EADDRNOTAVAIL,
        ] {
            assert!(
                is_local_exhaustion(&io::Error::from_raw_os_error(code)),
                "{code}"
            );
        }
        for code in [
            libc::ECONNREFUSED,
            libc::ECONNRESET,
            libc::EHOSTUNREACH,
            libc::ETIMEDOUT,
        ] {
            assert!(
                !is_local_exhaustion(&io::Error::from_raw_os_error(code)),
                "{code}"
            );
        }
        assert!(!is_local_exhaustion(&io::Error::from(
            io::ErrorKind::TimedOut
        )));
    }
}
