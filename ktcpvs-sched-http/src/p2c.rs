//! The `p2c` scheduler: the power of two random choices. Two servers of
//! the pool are drawn at random and the request goes to the one with fewer
//! requests in flight per unit of weight. Almost as even as scanning every
//! server for the least loaded (the maximum load is exponentially better
//! than one random choice, Mitzenmacher 2001), at a constant cost per pick
//! whatever the pool's size, and without every worker herding onto the
//! same least-loaded server at once.
//!
//! The random numbers come from a small per-thread generator
//! (xorshift64*), seeded from the standard library's per-process random
//! hasher keys: no lock, no allocation.

use std::cell::Cell;
use std::hash::{BuildHasher, Hasher, RandomState};

use ktcpvs_core::error::SchedulerError;
use ktcpvs_core::scheduler::{
    least_connection, Dispatch, PickRequest, Picker, Scheduler, Selection,
};
use ktcpvs_core::view::VirtualService;

use crate::balance::{eligible, Pool};
use crate::rules::check_rules;

/// How many draws are tried before the pick falls back to a scan of the
/// pool (when most of its servers are down, excluded or quiesced).
const DRAWS: usize = 4;

/// `p2c`: of two servers drawn at random from the pool, the one with fewer
/// requests in flight per weight; per request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct P2c;

impl P2c {
    /// The name services use to select this scheduler.
    pub const NAME: &'static str = "p2c";
}

impl Scheduler for P2c {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn dispatch(&self) -> Dispatch {
        Dispatch::EachRequest
    }

    fn build(&self, service: &dyn VirtualService) -> Result<Box<dyn Picker>, SchedulerError> {
        check_rules(Self::NAME, service)?;
        Ok(Box::new(P2cPicker))
    }

    fn description(&self) -> &str {
        "power of two random choices on requests in flight per weight; per request"
    }
}

/// The picker of [`P2c`] (it keeps no state).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct P2cPicker;

impl Picker for P2cPicker {
    fn pick(&self, service: &dyn VirtualService, request: &PickRequest<'_>) -> Option<Selection> {
        let pool = Pool::of(service, request)?;
        let n = pool.len();
        if n == 0 {
            return None;
        }
        // Two distinct positions of the pool (a lone server is drawn twice).
        let draw = || {
            let first = random_below(n);
            let second = if n > 1 {
                (first + 1 + random_below(n - 1)) % n
            } else {
                first
            };
            (pool.server(first), pool.server(second))
        };
        let mut chosen = None;
        for _ in 0..DRAWS {
            let (a, b) = draw();
            chosen = match (eligible(service, request, a), eligible(service, request, b)) {
                (true, true) => Some(if lighter(service, b, a) { b } else { a }),
                (true, false) => Some(a),
                (false, true) => Some(b),
                (false, false) => None,
            };
            if chosen.is_some() {
                break;
            }
        }
        let server = match chosen {
            Some(s) => s,
            None => least_connection(
                pool.servers()
                    .filter(|&i| i < service.server_count())
                    .map(|i| (i, service.server(i))),
                request.exclude,
            )?,
        };
        Some(pool.select(server))
    }
}

/// Whether server `a` is the lighter of the two: fewer requests in flight,
/// counting the one being placed, per weight (`(active + 1) / weight`, as
/// Envoy weighs its least-request choices), so weights count even when
/// both are idle.
fn lighter(service: &dyn VirtualService, a: usize, b: usize) -> bool {
    let (sa, sb) = (service.server(a), service.server(b));
    (u128::from(sa.active_connections()) + 1) * u128::from(sb.weight())
        < (u128::from(sb.active_connections()) + 1) * u128::from(sa.weight())
}

/// A random number in `0..n` (`n` > 0) from this thread's generator.
fn random_below(n: usize) -> usize {
    thread_local! {
        static STATE: Cell<u64> = const { Cell::new(0) };
    }
    STATE.with(|state| {
        let mut x = state.get();
        if x == 0 {
            let mut h = RandomState::new().build_hasher();
            h.write_usize(std::ptr::from_ref(state) as usize);
            x = h.finish() | 1;
        }
        // xorshift64*
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        state.set(x);
        let r = x.wrapping_mul(0x2545_f491_4f6c_dd1d);
        // Lemire's multiply-shift: unbiased enough for balancing.
        ((u128::from(r) * n as u128) >> 64) as usize
    })
}
