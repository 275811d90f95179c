//! Rule matching and per-rule weighted least-connection, shared by every
//! scheduler of this crate, plus the build-time checks they all make.
//!
//! Rules are evaluated in the core's order ([`VirtualService::rules`],
//! catch-alls last) against the request (target pattern and conditions),
//! and the first rule that matches decides, even when none of its servers is available: that is
//! the original's semantics (`tcp_vs_ctl.c`), kept so a configuration means
//! the same thing here.

use ktcpvs_core::error::SchedulerError;
use ktcpvs_core::scheduler::{least_connection, PickRequest};
use ktcpvs_core::view::{first_rule_for, Rule, VirtualService};

/// A [`SchedulerError`] from scheduler `scheduler` about `service`.
pub(crate) fn refuse(
    scheduler: &str,
    service: &dyn VirtualService,
    reason: String,
) -> SchedulerError {
    SchedulerError {
        scheduler: scheduler.to_string(),
        service: service.name().to_string(),
        reason,
    }
}

/// Checks that every rule routes only to servers the service has, so that
/// picking can never index out of range.
pub(crate) fn check_rules(
    scheduler: &str,
    service: &dyn VirtualService,
) -> Result<(), SchedulerError> {
    let count = service.server_count();
    for rule in service.rules() {
        if let Some(&bad) = rule.servers().iter().find(|&&i| i >= count) {
            return Err(refuse(
                scheduler,
                service,
                format!(
                    "rule \"{}\" routes to server #{bad}, but the service has {count} server(s)",
                    rule.pattern()
                ),
            ));
        }
    }
    Ok(())
}

/// The first rule (position and rule) matching the request (its target
/// pattern and its conditions), or `None` when the request has no head or
/// no rule matches.
pub(crate) fn matching_rule<'s>(
    service: &'s dyn VirtualService,
    request: &PickRequest<'_>,
) -> Option<(usize, &'s Rule)> {
    request.head?;
    first_rule_for(service.rules(), request)
}

/// Weighted least-connection among the servers of `rule` that are
/// available and not excluded (see [`least_connection`]): ties go to the
/// server listed first in the rule. Allocates nothing.
pub(crate) fn least_connection_in(
    service: &dyn VirtualService,
    rule: &Rule,
    exclude: &[usize],
) -> Option<usize> {
    let count = service.server_count();
    least_connection(
        rule.servers()
            .iter()
            .filter(|&&i| i < count)
            .map(|&i| (i, service.server(i))),
        exclude,
    )
}
