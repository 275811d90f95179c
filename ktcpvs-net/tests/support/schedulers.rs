//! Test schedulers implemented through the core traits only: a layer-4
//! weighted least-connection (`wlc`) and a rules + least-connection HTTP
//! scheduler registered twice, per connection (`http`) and per request
//! (`phttp`).

use std::sync::Arc;

use ktcpvs_core::scheduler::least_connection;
use ktcpvs_core::view::first_matching_rule;
use ktcpvs_core::{
    Dispatch, PickRequest, Picker, Scheduler, SchedulerError, SchedulerRegistry, Selection,
    VirtualService,
};

pub struct Wlc;
struct WlcPicker;

impl Picker for WlcPicker {
    fn pick(&self, s: &dyn VirtualService, r: &PickRequest<'_>) -> Option<Selection> {
        least_connection((0..s.server_count()).map(|i| (i, s.server(i))), r.exclude)
            .map(Selection::server)
    }
}

impl Scheduler for Wlc {
    fn name(&self) -> &str {
        "wlc"
    }
    fn dispatch(&self) -> Dispatch {
        Dispatch::Connection
    }
    fn build(&self, _: &dyn VirtualService) -> Result<Box<dyn Picker>, SchedulerError> {
        Ok(Box::new(WlcPicker))
    }
}

/// Rules first (first match wins, least connection among its servers),
/// every server when the service has no rules. `stamp` adds a header.
pub struct RulesLc {
    pub name: &'static str,
    pub dispatch: Dispatch,
}

struct RulesPicker {
    stamp: bool,
}

impl Picker for RulesPicker {
    fn pick(&self, s: &dyn VirtualService, r: &PickRequest<'_>) -> Option<Selection> {
        let rules = s.rules();
        if rules.is_empty() {
            return least_connection((0..s.server_count()).map(|i| (i, s.server(i))), r.exclude)
                .map(|server| Selection {
                    server,
                    rule: None,
                    stamp: self.stamp,
                });
        }
        let target = r.head.map_or("/", |h| h.target);
        let (index, rule) = first_matching_rule(rules, target)?;
        let server = least_connection(rule.servers().iter().map(|&i| (i, s.server(i))), r.exclude)?;
        Some(Selection {
            server,
            rule: Some(index),
            stamp: self.stamp,
        })
    }

    fn response_header(&self, _: &Selection, _: bool) -> Option<&[u8]> {
        Some(b"X-Stamped: yes\r\n")
    }
}

impl Scheduler for RulesLc {
    fn name(&self) -> &str {
        self.name
    }
    fn dispatch(&self) -> Dispatch {
        self.dispatch
    }
    fn build(&self, s: &dyn VirtualService) -> Result<Box<dyn Picker>, SchedulerError> {
        Ok(Box::new(RulesPicker {
            stamp: s.option("stamp").is_some(),
        }))
    }
}

/// A registry with `wlc`, `http` and `phttp`.
pub fn registry() -> SchedulerRegistry {
    let r = SchedulerRegistry::new();
    r.register(Arc::new(Wlc)).unwrap();
    r.register(Arc::new(RulesLc {
        name: "http",
        dispatch: Dispatch::FirstRequest,
    }))
    .unwrap();
    r.register(Arc::new(RulesLc {
        name: "phttp",
        dispatch: Dispatch::EachRequest,
    }))
    .unwrap();
    r
}
