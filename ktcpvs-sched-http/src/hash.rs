//! The `hhttp` scheduler: the same key always reaches the same server.
//!
//! The key is a capture group of the first matching rule (say the user name
//! in `/users/([^/]+)/`). Among that rule's available servers the key goes
//! to the one with the highest **weighted rendezvous score**
//! (highest-random-weight hashing):
//!
//! ```text
//! u     = XXH3-64(XXH3-64(key), seed = XXH3-64(server address)) mapped into (0, 1)
//! score = weight / -ln(u)
//! ```
//!
//! Each server's score depends only on the key and that server's address
//! and weight, never on the order of the servers or on how many there are.
//! Hence adding a server moves only the keys that the new server now wins
//! (its weight share, about 1/n), removing or quiescing one moves only the
//! keys it held, and each server's expected share of keys is its weight
//! share (for `weight / -ln(u)` the winner is distributed like the first
//! of independent exponential clocks with rates proportional to weight).
//!
//! The original (`tcp_vs_hhttp.c`) summed the key's bytes modulo the number
//! of servers: poorly spread, blind to weight, dependent on list order, and
//! remapping almost every key when a server was added.

use std::net::SocketAddr;

use ktcpvs_core::error::SchedulerError;
use ktcpvs_core::scheduler::{Dispatch, PickRequest, Picker, Scheduler, Selection};
use ktcpvs_core::view::VirtualService;
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

use crate::rules::{check_rules, matching_rule, refuse};

/// `hhttp`: hash a capture group of the first matching rule onto the
/// servers of that rule, one decision per client connection.
///
/// * The key is the text of the rule's capture group `match N`
///   ([`Rule::match_group`](ktcpvs_core::view::Rule::match_group)), or of
///   the whole match (group 0) when the rule has no `match N`. A group that
///   did not take part in the match hashes the empty key, so all such
///   requests go to one server, consistently.
/// * The server is the available one (weight > 0, healthy, not excluded)
///   of the rule with the highest weighted rendezvous score (see the
///   [`rendezvous`]). Quiesced servers take no keys; when a
///   server is down or a connect to it failed (the engine's retry with
///   [`PickRequest::exclude`]), its keys go to their second choice while
///   every other key stays put.
/// * No rule matches, or the rule has no available server: "no server".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hhttp;

impl Hhttp {
    /// The name services use to select this scheduler.
    pub const NAME: &'static str = "hhttp";
}

impl Scheduler for Hhttp {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn dispatch(&self) -> Dispatch {
        Dispatch::FirstRequest
    }

    fn build(&self, service: &dyn VirtualService) -> Result<Box<dyn Picker>, SchedulerError> {
        check_rules(Self::NAME, service)?;
        let seeds = (0..service.server_count())
            .map(|i| server_seed(service.server(i).addr()))
            .collect();
        let balance = match service.option(OPTION_HASH_BALANCE_FACTOR) {
            None => None,
            Some(text) => match text.parse::<u32>() {
                Ok(f) if (100..=10_000).contains(&f) => Some(f),
                _ => {
                    return Err(refuse(
                        Self::NAME,
                        service,
                        format!(
                            "option {OPTION_HASH_BALANCE_FACTOR} = \"{text}\": a percentage of \
                             the average load, 100..=10000 (125: at most 1.25x)"
                        ),
                    ))
                }
            },
        };
        Ok(Box::new(HhttpPicker { seeds, balance }))
    }

    fn description(&self) -> &str {
        "content hash: a capture group of the first matching rule, weighted rendezvous hashing over its servers"
    }
}

/// The picker built by [`Hhttp`]: the per-server hash seeds, derived from
/// the servers' addresses once at build time. Weight, health and
/// exclusions are read at every pick. Picking allocates nothing beyond the
/// regex engine's per-thread caches, created on a thread's first match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HhttpPicker {
    /// `seeds[i]` is [`server_seed`] of server `i`'s address.
    seeds: Vec<u64>,
    /// [`OPTION_HASH_BALANCE_FACTOR`], when set: no server takes more than
    /// this percentage of its weight's share of the load.
    balance: Option<u32>,
}

/// Service option bounding `hhttp`'s load per server (consistent hashing
/// with bounded loads, Mirrokni, Thorup and Zadimoghaddam, 2018): a
/// percentage of the average, weighted (`"125"`: no server holds more than
/// 1.25 times its weight's share of the requests in flight). A key whose
/// server is at its bound goes to the next server of its rendezvous order
/// that is not; unset, keys never move for load.
pub const OPTION_HASH_BALANCE_FACTOR: &str = "hash_balance_factor";

impl Picker for HhttpPicker {
    fn pick(&self, service: &dyn VirtualService, request: &PickRequest<'_>) -> Option<Selection> {
        let (position, rule) = matching_rule(service, request)?;
        let target = request.head?.target;
        let key = rule.capture(target, rule.match_group().unwrap_or(0))?;
        let count = service.server_count().min(self.seeds.len());
        let candidates = || {
            rule.servers().iter().filter(|&&i| i < count).map(|&i| {
                let server = service.server(i);
                let available = server.is_available() && !request.is_excluded(i);
                (
                    i,
                    self.seeds[i],
                    if available { server.weight() } else { 0 },
                )
            })
        };
        let bounded = self.balance.and_then(|factor| {
            let (mut active, mut weight) = (0u128, 0u128);
            for (i, _, w) in candidates().filter(|c| c.2 > 0) {
                active += u128::from(service.server(i).active_connections());
                weight += u128::from(w);
            }
            // Server i may take this request while its load stays within
            // its bound, ceil(factor/100 × (active + 1) × w_i / W): at least
            // 1, so an idle server always may.
            let within = candidates().map(|(i, seed, w)| {
                let load = u128::from(service.server(i).active_connections()) + 1;
                let scaled = u128::from(factor) * (active + 1) * u128::from(w);
                let allowed = scaled.div_ceil(100 * weight.max(1));
                (i, seed, if load <= allowed { w } else { 0 })
            });
            rendezvous(key.as_bytes(), within)
        });
        let server = match bounded {
            Some(s) => s,
            None => rendezvous(key.as_bytes(), candidates())?,
        };
        Some(Selection {
            server,
            rule: Some(position),
            stamp: false,
        })
    }
}

/// The hash seed of a server: XXH3-64 of its address as bytes (a family
/// tag, the IP octets and the port in network order). It depends on the
/// address alone, so instances and reloads agree.
pub fn server_seed(addr: SocketAddr) -> u64 {
    xxh3_64(address_bytes(addr, &mut [0; 19]))
}

/// `addr` as the bytes every hash of this crate takes (`hhttp` seeds,
/// `chttp` cookie values): a family tag (4 or 6), the IP octets and the
/// port in network order, written into `buf`.
pub(crate) fn address_bytes(addr: SocketAddr, buf: &mut [u8; 19]) -> &[u8] {
    let ip_len = match addr {
        SocketAddr::V4(a) => {
            buf[0] = 4;
            buf[1..5].copy_from_slice(&a.ip().octets());
            4
        }
        SocketAddr::V6(a) => {
            buf[0] = 6;
            buf[1..17].copy_from_slice(&a.ip().octets());
            16
        }
    };
    buf[1 + ip_len..3 + ip_len].copy_from_slice(&addr.port().to_be_bytes());
    &buf[..3 + ip_len]
}

/// Weighted rendezvous hashing: among `candidates` (`(index, seed,
/// weight)`), the index whose `weight / -ln(u)` is highest, where `u` in
/// (0, 1) is the top 53 bits of `XXH3-64(XXH3-64(key), seed)`. A
/// candidate's score depends only on the key, its seed and its weight, so
/// the answer does not depend on the other candidates' order, adding a
/// candidate moves only the keys it now wins, and each candidate wins a
/// share of keys equal to its share of the total weight. Candidates
/// of weight 0 never win; `None` when none has a weight. Equal scores
/// (vanishingly rare) go to the higher seed, so the answer never depends
/// on the candidates' order. Allocates nothing.
pub fn rendezvous(
    key: &[u8],
    candidates: impl Iterator<Item = (usize, u64, u32)>,
) -> Option<usize> {
    let key_hash = xxh3_64(key).to_le_bytes();
    let mut best: Option<(usize, u64, f64)> = None; // (index, seed, score)
    for (index, seed, weight) in candidates {
        if weight == 0 {
            continue;
        }
        let h = xxh3_64_with_seed(&key_hash, seed);
        // The top 53 bits, centred in their cell: u is in (0, 1), never 0 or 1.
        let u = ((h >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64);
        let score = f64::from(weight) / -u.ln();
        let better = match best {
            None => true,
            Some((_, best_seed, best_score)) => {
                score > best_score || (score == best_score && seed > best_seed)
            }
        };
        if better {
            best = Some((index, seed, score));
        }
    }
    best.map(|(index, _, _)| index)
}
