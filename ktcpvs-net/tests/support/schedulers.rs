//! Test schedulers implemented through the core traits only: a layer-4
//! weighted least-connection (`wlc`) and a rules + least-connection HTTP
//! scheduler registered twice, per connection (`http`) and per request
//! (`phttp`), and `sni`, which routes on the TLS server name.

use std::sync::Arc;

use ktcpvs_core::scheduler::least_connection;
use ktcpvs_core::view::first_rule_for;
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
        let (index, rule) = first_rule_for(rules, r)?;
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

/// Routes on the TLS server name, per request: server 0 when the client's
/// handshake named the service option `sni`, server 1 otherwise.
pub struct BySni;

struct BySniPicker {
    name: Option<String>,
}

impl Picker for BySniPicker {
    fn pick(&self, s: &dyn VirtualService, r: &PickRequest<'_>) -> Option<Selection> {
        let first = r.server_name.is_some() && r.server_name == self.name.as_deref();
        let server = if first { 0 } else { 1 };
        (server < s.server_count()).then(|| Selection::server(server))
    }
}

impl Scheduler for BySni {
    fn name(&self) -> &str {
        "sni"
    }
    fn dispatch(&self) -> Dispatch {
        Dispatch::EachRequest
    }
    fn build(&self, s: &dyn VirtualService) -> Result<Box<dyn Picker>, SchedulerError> {
        Ok(Box::new(BySniPicker {
            name: s.option("sni").map(str::to_string),
        }))
    }
}

/// A registry with `wlc`, `http`, `phttp` and `sni`.
pub fn registry() -> SchedulerRegistry {
    let r = SchedulerRegistry::new();
    r.register(Arc::new(Wlc)).unwrap();
    r.register(Arc::new(BySni)).unwrap();
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
