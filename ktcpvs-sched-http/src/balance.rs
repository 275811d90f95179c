//! What the balancing schedulers (`rr`, `wrr`, `p2c`, `lrt`) share: the
//! pool of servers a request may go to. With rules, the servers of the
//! first rule the request target matches (none matching: no server, as for
//! the content switch); a service without rules balances over all of its
//! servers. Picking within the pool is each scheduler's own.

use ktcpvs_core::scheduler::{PickRequest, Selection};
use ktcpvs_core::view::{first_rule_for, Rule, VirtualService};

/// The servers a request may go to.
#[derive(Clone, Copy)]
pub(crate) enum Pool<'s> {
    /// Those of the rule at this position.
    Rule(usize, &'s Rule),
    /// Every server of a service without rules (their count).
    All(usize),
}

impl<'s> Pool<'s> {
    /// The pool of `request`, or `None` when the service has rules and the
    /// request matches none (or has no head to match).
    pub fn of(service: &'s dyn VirtualService, request: &PickRequest<'_>) -> Option<Pool<'s>> {
        let rules = service.rules();
        if rules.is_empty() {
            return Some(Pool::All(service.server_count()));
        }
        request.head?;
        first_rule_for(rules, request).map(|(position, rule)| Pool::Rule(position, rule))
    }

    /// How many servers it holds.
    pub fn len(&self) -> usize {
        match self {
            Pool::Rule(_, rule) => rule.servers().len(),
            Pool::All(count) => *count,
        }
    }

    /// The service's index of its `n`th server.
    pub fn server(&self, n: usize) -> usize {
        match self {
            Pool::Rule(_, rule) => rule.servers()[n],
            Pool::All(_) => n,
        }
    }

    /// Its servers, as service indices.
    pub fn servers(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.len()).map(|n| self.server(n))
    }

    /// Which group of precomputed state it uses: the rule's position, or
    /// one past the last rule for "all servers".
    pub fn group(&self, rules: usize) -> usize {
        match self {
            Pool::Rule(position, _) => *position,
            Pool::All(_) => rules,
        }
    }

    /// A selection of `server` from this pool.
    pub fn select(&self, server: usize) -> Selection {
        Selection {
            server,
            rule: match self {
                Pool::Rule(position, _) => Some(*position),
                Pool::All(_) => None,
            },
            stamp: false,
        }
    }
}

/// Whether server `index` may take this request: in range, available
/// (weight above zero, healthy) and not excluded.
pub(crate) fn eligible(
    service: &dyn VirtualService,
    request: &PickRequest<'_>,
    index: usize,
) -> bool {
    index < service.server_count()
        && service.server(index).is_available()
        && !request.is_excluded(index)
}
