//! The `rr` and `wrr` schedulers: round-robin over the pool's servers,
//! plain or weighted.
//!
//! `wrr` follows nginx's *smooth* weighted round-robin: with weights
//! 5, 1, 1 the order is `a a b a c a a`, not `a a a a a b c`, so no server
//! gets a burst. The order of each pool is computed once, when the service
//! is built (weights change through the configuration, which rebuilds it),
//! into a sequence of at most [`MAX_SEQUENCE`] entries; picking takes the
//! next entry with one atomic increment, skipping servers that are down,
//! quiesced or excluded. No lock, no allocation.

use std::sync::atomic::{AtomicUsize, Ordering};

use ktcpvs_core::error::SchedulerError;
use ktcpvs_core::scheduler::{Dispatch, PickRequest, Picker, Scheduler, Selection};
use ktcpvs_core::view::VirtualService;

use crate::balance::{eligible, Pool};
use crate::rules::check_rules;

/// Longest precomputed order of one pool; weights whose sum exceeds it are
/// scaled down proportionally (every non-zero weight keeps at least 1).
pub const MAX_SEQUENCE: usize = 4096;

/// `rr`: every server of the pool in turn, whatever its weight (a
/// quiesced server, weight 0, is skipped). Per request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rr;

impl Rr {
    /// The name services use to select this scheduler.
    pub const NAME: &'static str = "rr";
}

/// `wrr`: smooth weighted round-robin (nginx's): over any window each
/// server gets its weight's share of the requests, interleaved. Per
/// request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Wrr;

impl Wrr {
    /// The name services use to select this scheduler.
    pub const NAME: &'static str = "wrr";
}

impl Scheduler for Rr {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn dispatch(&self) -> Dispatch {
        Dispatch::EachRequest
    }

    fn build(&self, service: &dyn VirtualService) -> Result<Box<dyn Picker>, SchedulerError> {
        check_rules(Self::NAME, service)?;
        Ok(Box::new(RoundRobinPicker::new(service, false)))
    }

    fn description(&self) -> &str {
        "round-robin over the first matching rule's servers (all servers without rules); per request"
    }
}

impl Scheduler for Wrr {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn dispatch(&self) -> Dispatch {
        Dispatch::EachRequest
    }

    fn build(&self, service: &dyn VirtualService) -> Result<Box<dyn Picker>, SchedulerError> {
        check_rules(Self::NAME, service)?;
        Ok(Box::new(RoundRobinPicker::new(service, true)))
    }

    fn description(&self) -> &str {
        "smooth weighted round-robin (nginx's) over the first matching rule's servers; per request"
    }
}

/// One pool's precomputed order and its cursor.
#[derive(Debug)]
struct Sequence {
    order: Box<[u32]>,
    next: AtomicUsize,
}

/// The picker of [`Rr`] and [`Wrr`]: one order per rule, and one for all
/// servers.
#[derive(Debug)]
pub struct RoundRobinPicker {
    sequences: Box<[Sequence]>,
}

impl RoundRobinPicker {
    /// The orders of every pool of `service`, by weight when `weighted`.
    pub fn new(service: &dyn VirtualService, weighted: bool) -> RoundRobinPicker {
        let weight_of = |i: usize| {
            let w = service.server(i).weight();
            if weighted || w == 0 {
                w
            } else {
                1
            }
        };
        let count = service.server_count();
        let mut sequences: Vec<Sequence> = service
            .rules()
            .iter()
            .map(|rule| {
                let servers: Vec<usize> = rule
                    .servers()
                    .iter()
                    .copied()
                    .filter(|&i| i < count)
                    .collect();
                sequence(&servers, &weight_of)
            })
            .collect();
        let all: Vec<usize> = (0..count).collect();
        sequences.push(sequence(&all, &weight_of));
        RoundRobinPicker {
            sequences: sequences.into_boxed_slice(),
        }
    }
}

fn sequence(servers: &[usize], weight_of: &dyn Fn(usize) -> u32) -> Sequence {
    let weights: Vec<u64> = servers.iter().map(|&i| u64::from(weight_of(i))).collect();
    Sequence {
        order: smooth_order(&weights)
            .into_iter()
            // At most `servers.len()` entries: far below u32::MAX.
            .map(|n| servers[n] as u32)
            .collect(),
        next: AtomicUsize::new(0),
    }
}

/// nginx's smooth weighted round-robin over `weights` (positions into
/// them), one full cycle: each step adds every weight to its running
/// value, takes the largest (the first on a tie) and subtracts the total
/// from it. Weights are reduced by their common divisor, and scaled down
/// when the cycle would exceed [`MAX_SEQUENCE`].
pub fn smooth_order(weights: &[u64]) -> Vec<usize> {
    let divisor = weights.iter().copied().filter(|&w| w > 0).fold(0, gcd);
    if divisor == 0 {
        return Vec::new();
    }
    let mut w: Vec<u64> = weights.iter().map(|&x| x / divisor).collect();
    let total: u64 = w.iter().sum();
    if total > MAX_SEQUENCE as u64 {
        for x in &mut w {
            if *x > 0 {
                *x = (*x * MAX_SEQUENCE as u64 / total).max(1);
            }
        }
    }
    let total: i64 = w.iter().map(|&x| x as i64).sum();
    let mut current = vec![0i64; w.len()];
    let mut order = Vec::with_capacity(total as usize);
    for _ in 0..total {
        let mut best = 0;
        for (n, &weight) in w.iter().enumerate() {
            current[n] += weight as i64;
            if current[n] > current[best] {
                best = n;
            }
        }
        current[best] -= total;
        order.push(best);
    }
    order
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

impl Picker for RoundRobinPicker {
    fn pick(&self, service: &dyn VirtualService, request: &PickRequest<'_>) -> Option<Selection> {
        let pool = Pool::of(service, request)?;
        let sequence = self.sequences.get(pool.group(service.rules().len()))?;
        let len = sequence.order.len();
        if len == 0 {
            return None;
        }
        let start = sequence.next.fetch_add(1, Ordering::Relaxed);
        (0..len)
            .map(|k| sequence.order[(start + k) % len] as usize)
            .find(|&i| eligible(service, request, i))
            .map(|i| pool.select(i))
    }
}

#[cfg(test)]
mod tests {
    use super::smooth_order;

    #[test]
    fn the_smooth_order_interleaves_as_nginx_does() {
        // nginx's documented example: weights 5, 1, 1.
        assert_eq!(smooth_order(&[5, 1, 1]), [0, 0, 1, 0, 2, 0, 0]);
        assert_eq!(smooth_order(&[1, 1, 1]), [0, 1, 2]);
        assert_eq!(smooth_order(&[2, 0, 4]), [2, 0, 2]);
        assert!(smooth_order(&[0, 0]).is_empty());
        // Huge weights are scaled into the cap, keeping their ratio.
        let big = smooth_order(&[65_535, 65_534, 1]);
        assert!(big.len() <= super::MAX_SEQUENCE + 2);
        let third = big.iter().filter(|&&n| n == 2).count();
        assert!((1..5).contains(&third), "{third}");
    }
}
