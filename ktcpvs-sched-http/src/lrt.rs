//! The `lrt` scheduler: least response time. Each server's cost is its
//! recent response time (a peak moving average the engine keeps,
//! [`RealServer::response_time`](ktcpvs_core::view::RealServer::response_time))
//! times its requests in flight plus one, divided by its weight; the
//! request goes to the cheapest server of its pool, as Finagle's and
//! Linkerd's peak-EWMA balancers weigh them. A server that turns slow loses
//! traffic at once (a slower sample replaces the average); one that
//! recovers wins it back over seconds, as the average decays.
//!
//! A server with no response time yet counts as fast as the fastest known
//! one of its pool, so a new or restarted server gets a share at once; a
//! pool where none is known balances by requests in flight alone. A scan
//! of the pool per pick; no lock, no allocation.

use std::time::Duration;

use ktcpvs_core::error::SchedulerError;
use ktcpvs_core::scheduler::{Dispatch, PickRequest, Picker, Scheduler, Selection};
use ktcpvs_core::view::VirtualService;

use crate::balance::{eligible, Pool};
use crate::rules::check_rules;

/// `lrt`: least response time × requests in flight per weight; per
/// request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lrt;

impl Lrt {
    /// The name services use to select this scheduler.
    pub const NAME: &'static str = "lrt";
}

impl Scheduler for Lrt {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn dispatch(&self) -> Dispatch {
        Dispatch::EachRequest
    }

    fn build(&self, service: &dyn VirtualService) -> Result<Box<dyn Picker>, SchedulerError> {
        check_rules(Self::NAME, service)?;
        Ok(Box::new(LrtPicker))
    }

    fn description(&self) -> &str {
        "least response time (peak EWMA) times requests in flight, per weight; per request"
    }
}

/// The picker of [`Lrt`] (it keeps no state: the averages live with the
/// servers).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LrtPicker;

impl Picker for LrtPicker {
    fn pick(&self, service: &dyn VirtualService, request: &PickRequest<'_>) -> Option<Selection> {
        let pool = Pool::of(service, request)?;
        let micros = |t: Duration| t.as_micros().max(1);
        let known_fastest = pool
            .servers()
            .filter(|&i| eligible(service, request, i))
            .filter_map(|i| service.server(i).response_time())
            .min()
            .map_or(1, micros);
        // (index, cost numerator, weight): cost = time × (active + 1) / weight.
        let mut best: Option<(usize, u128, u128)> = None;
        for i in pool.servers().filter(|&i| eligible(service, request, i)) {
            let server = service.server(i);
            let time = server.response_time().map_or(known_fastest, micros);
            let cost = time.saturating_mul(u128::from(server.active_connections()) + 1);
            let weight = u128::from(server.weight());
            let cheaper = match best {
                None => true,
                Some((_, best_cost, best_weight)) => {
                    cost.saturating_mul(best_weight) < best_cost.saturating_mul(weight)
                }
            };
            if cheaper {
                best = Some((i, cost, weight));
            }
        }
        best.map(|(i, _, _)| pool.select(i))
    }
}
