//! A host program's own scheduler, run through the simulator.
//!
//! `spill` packs requests onto as few servers as it can: each request goes
//! to the first server (in configuration order, or the order of the
//! matching rule) holding fewer than `spill_at` requests in flight, and
//! only when all hold that many to the least loaded by weighted
//! least-connection. Packing like this lets idle servers be turned off,
//! at the price of uneven load, which the simulator's peak concurrency
//! column shows. The scheduler uses the public `ktcpvs-core` plug-in API
//! only (as `docs/plugins.md` describes); the host registers it next to
//! the built-in schedulers and hands that registry to
//! [`ktcpvs::sim::Simulator`].
//!
//! `cargo run --example sim_plugin [-- --json]` prints the report of
//! 5,000 generated requests at 2,000 per second, 10 ms each on average.

use std::sync::Arc;

use ktcpvs::core::scheduler::least_connection;
use ktcpvs::core::view::first_matching_rule;
use ktcpvs::core::{
    Dispatch, PickRequest, Picker, Scheduler, SchedulerError, Selection, VirtualService,
};
use ktcpvs::sim::{GenerateSpec, Latency, SimOptions, Simulator, Trace};

/// The `spill` scheduler.
struct Spill;

/// Its picker: the bound read from the `spill_at` option.
struct SpillPicker {
    spill_at: u64,
}

impl Scheduler for Spill {
    fn name(&self) -> &str {
        "spill"
    }
    fn dispatch(&self) -> Dispatch {
        Dispatch::EachRequest
    }
    fn description(&self) -> &str {
        "fill each server up to spill_at requests in flight before the next"
    }
    fn build(&self, service: &dyn VirtualService) -> Result<Box<dyn Picker>, SchedulerError> {
        let refuse = |reason: String| SchedulerError {
            scheduler: self.name().into(),
            service: service.name().into(),
            reason,
        };
        let spill_at = match service.option("spill_at") {
            None => 8,
            Some(text) => text
                .parse::<u64>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| refuse(format!("spill_at = {text:?}: a positive integer")))?,
        };
        Ok(Box::new(SpillPicker { spill_at }))
    }
}

impl SpillPicker {
    /// The first usable server of `pool` below the bound, else the least
    /// loaded usable one. Allocates nothing.
    fn choose(
        &self,
        service: &dyn VirtualService,
        request: &PickRequest<'_>,
        pool: impl Iterator<Item = usize> + Clone,
    ) -> Option<usize> {
        let usable = |i: usize| service.server(i).is_available() && !request.is_excluded(i);
        pool.clone()
            .find(|&i| usable(i) && service.server(i).active_connections() < self.spill_at)
            .or_else(|| least_connection(pool.map(|i| (i, service.server(i))), request.exclude))
    }
}

impl Picker for SpillPicker {
    fn pick(&self, service: &dyn VirtualService, request: &PickRequest<'_>) -> Option<Selection> {
        let target = request.head.map_or("", |h| h.target);
        let server = match first_matching_rule(service.rules(), target) {
            Some((i, rule)) => {
                let server = self.choose(service, request, rule.servers().iter().copied())?;
                return Some(Selection {
                    server,
                    rule: Some(i),
                    stamp: false,
                });
            }
            // A service with rules serves only what they match.
            None if !service.rules().is_empty() => return None,
            None => self.choose(service, request, 0..service.server_count())?,
        };
        Some(Selection::server(server))
    }
}

const CONFIG: &str = r#"
Virtual packed {
    listen = 127.0.0.1:8080
    scheduler = spill
    option spill_at = "8"
    server = 10.0.0.1:80 1
    server = 10.0.0.2:80 1
    server = 10.0.0.3:80 1
    server = 10.0.0.4:80 1
}
"#;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let registry = ktcpvs::builtin_schedulers();
    registry.register(Arc::new(Spill))?;
    let sim = Simulator::new(registry, CONFIG, None)?;
    let trace = Trace::generate(&GenerateSpec {
        requests: 5_000,
        keys: 500,
        ..GenerateSpec::default()
    })?;
    let options = SimOptions {
        rate: Some(2_000.0),
        default_latency: Latency::Exponential(std::time::Duration::from_millis(10)),
        ..SimOptions::default()
    };
    let report = sim.run(&trace, &options)?;
    if std::env::args().any(|a| a == "--json") {
        print!("{}", report.to_json());
    } else {
        print!("{}", report.to_text());
    }
    Ok(())
}
