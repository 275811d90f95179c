//! The `http` and `phttp` schedulers: the content switch of the original.
//! Both match the request target against the rules and run weighted
//! least-connection among the servers of the first rule that matches; they
//! differ only in *when* they decide, which is the engine's business
//! ([`Dispatch`]), so they share one picker, [`RulesPicker`].

use ktcpvs_core::error::SchedulerError;
use ktcpvs_core::scheduler::{Dispatch, PickRequest, Picker, Scheduler, Selection};
use ktcpvs_core::view::VirtualService;

use crate::rules::{check_rules, least_connection_in, matching_rule};

/// `http`: one decision per client connection, from its first request.
///
/// The request target of the first request is matched against the rules
/// (first match wins), then weighted least-connection picks among that
/// rule's available servers (ties to the server listed first in the rule).
/// No rule matches, or the matching rule has no available server: "no
/// server" (the engine then uses `redirect` or answers 503). Every later
/// request on the connection goes to the same server.
///
/// Unlike the original (`tcp_vs_http.c`), the engine forwards the request
/// exactly once and every method and HTTP/1.x version is accepted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Http;

impl Http {
    /// The name services use to select this scheduler.
    pub const NAME: &'static str = "http";
}

impl Scheduler for Http {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn dispatch(&self) -> Dispatch {
        Dispatch::FirstRequest
    }

    fn build(&self, service: &dyn VirtualService) -> Result<Box<dyn Picker>, SchedulerError> {
        check_rules(Self::NAME, service)?;
        Ok(Box::new(RulesPicker))
    }

    fn description(&self) -> &str {
        "content switch: first matching rule, then weighted least-connection; one decision per connection"
    }
}

/// `phttp`: the rules of [`Http`], but a new decision for every request of
/// a keep-alive connection, so one client connection can reach different
/// servers request by request over pooled backend connections.
///
/// The original's `phttp` (`tcp_vs_phttp.c`) in fact used a private copy
/// of hhttp's byte-sum hash and never found a server for a plain `.*`
/// rule; this one uses weighted least-connection as its documentation said.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Phttp;

impl Phttp {
    /// The name services use to select this scheduler.
    pub const NAME: &'static str = "phttp";
}

impl Scheduler for Phttp {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn dispatch(&self) -> Dispatch {
        Dispatch::EachRequest
    }

    fn build(&self, service: &dyn VirtualService) -> Result<Box<dyn Picker>, SchedulerError> {
        check_rules(Self::NAME, service)?;
        Ok(Box::new(RulesPicker))
    }

    fn description(&self) -> &str {
        "content switch: first matching rule, then weighted least-connection; one decision per request"
    }
}

/// The picker of [`Http`] and [`Phttp`]: first matching rule, then
/// weighted least-connection among its servers.
///
/// It holds no state: the rules and servers it reads are those of the
/// service snapshot it is handed, which [`Scheduler::build`] has checked
/// (every rule routes only to existing servers). Picking allocates nothing
/// beyond the regex engine's per-thread cache, created on a thread's first
/// match.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RulesPicker;

impl Picker for RulesPicker {
    fn pick(&self, service: &dyn VirtualService, request: &PickRequest<'_>) -> Option<Selection> {
        let (position, rule) = matching_rule(service, request)?;
        let server = least_connection_in(service, rule, request.exclude)?;
        Some(Selection {
            server,
            rule: Some(position),
            stamp: false,
        })
    }
}
