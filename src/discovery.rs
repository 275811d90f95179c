//! Backends from DNS: a thread that resolves every service's `discover`
//! names (A/AAAA at a fixed port, or SRV) when their records expire and
//! applies what changed as an ordinary live edit
//! ([`Command::SyncDiscovered`]): servers that stay keep their counters,
//! health and pooled connections; new ones join; gone ones leave.
//!
//! Resolution never happens on the request path. A failed lookup (a
//! timeout, no answer, NXDOMAIN) changes nothing: the servers last found
//! stay, and the name is asked again after [`RETRY`], so a DNS outage never
//! empties a pool. Records are asked again when their TTL runs out,
//! bounded by [`MIN_TTL`] and [`MAX_TTL`]. When a reload wipes the
//! discovered servers (a configuration file does not list them), the last
//! answer is applied again at once, without waiting for DNS.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hickory_resolver::config::{NameServerConfig, Protocol, ResolverConfig, ResolverOpts};
use hickory_resolver::Resolver;
use ktcpvs_core::model::{Discovery, DiscoveryKind};
use ktcpvs_core::{Command, Control};

/// How often the thread looks for names that are due.
const TICK: Duration = Duration::from_millis(200);

/// The shortest interval between two lookups of one name.
pub const MIN_TTL: Duration = Duration::from_secs(1);

/// The longest interval between two lookups of one name.
pub const MAX_TTL: Duration = Duration::from_secs(300);

/// How long after a failed lookup a name is asked again.
pub const RETRY: Duration = Duration::from_secs(5);

/// Why discovery could not start.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// The discovery thread could not be spawned.
    #[error("cannot start the DNS discovery thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// Where the resolver sends its queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nameservers {
    /// The system's (`/etc/resolv.conf`).
    System,
    /// One server, over UDP (and TCP for truncated answers).
    At(SocketAddr),
}

/// The running discovery thread; stopped and joined when dropped.
#[derive(Debug)]
pub struct Discoverer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Discoverer {
    /// Starts resolving the `discover` names of `control`'s services
    /// through `nameservers`. The resolver is built when the first name
    /// needs it, so a configuration without `discover` never reads the
    /// system's resolver configuration.
    pub fn start(control: Control, nameservers: Nameservers) -> Result<Discoverer, DiscoveryError> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("ktcpvs-dns".into())
            .spawn(move || Worker::new(control, nameservers).run(&flag))
            .map_err(DiscoveryError::Thread)?;
        Ok(Discoverer {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Discoverer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What is known of one name of one service.
#[derive(Debug)]
struct Known {
    /// When to ask again.
    due: Instant,
    /// The addresses of the last successful answer (sorted), if any.
    addrs: Option<Vec<SocketAddr>>,
}

struct Worker {
    control: Control,
    nameservers: Nameservers,
    resolver: Option<Resolver>,
    known: HashMap<(String, Discovery), Known>,
}

impl Worker {
    fn new(control: Control, nameservers: Nameservers) -> Worker {
        Worker {
            control,
            nameservers,
            resolver: None,
            known: HashMap::new(),
        }
    }

    fn run(mut self, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            self.round(Instant::now());
            std::thread::sleep(TICK);
        }
    }

    /// Looks up every name that is due and applies what changed.
    fn round(&mut self, now: Instant) {
        let config = self.control.config();
        let mut wanted = Vec::new();
        for def in &config.services {
            for d in &def.config.discover {
                let current: Vec<SocketAddr> = {
                    let mut v: Vec<SocketAddr> = def
                        .servers
                        .iter()
                        .filter(|s| s.discovered.as_deref() == Some(d.name.as_str()))
                        .map(|s| s.addr)
                        .collect();
                    v.sort();
                    v
                };
                wanted.push(((def.config.name.clone(), d.clone()), current));
            }
        }
        self.known
            .retain(|key, _| wanted.iter().any(|(k, _)| k == key));
        for (key, current) in wanted {
            self.refresh(&key, &current, now);
        }
    }

    fn refresh(&mut self, key: &(String, Discovery), current: &[SocketAddr], now: Instant) {
        let due = !matches!(self.known.get(key), Some(k) if now < k.due);
        if due {
            let answer = self.lookup(&key.1);
            let entry = self.known.entry(key.clone()).or_insert(Known {
                due: now,
                addrs: None,
            });
            match answer {
                Ok((mut addrs, valid_until)) => {
                    addrs.sort();
                    addrs.dedup();
                    let ttl = valid_until.saturating_duration_since(now);
                    entry.due = now + ttl.clamp(MIN_TTL, MAX_TTL);
                    entry.addrs = Some(addrs);
                }
                Err(e) => {
                    log::warn!(
                        "[{}] discover {}: lookup failed ({e}); servers kept, retry in {}s",
                        key.0,
                        key.1,
                        RETRY.as_secs()
                    );
                    entry.due = now + RETRY;
                }
            }
        }
        let Some(addrs) = self.known.get(key).and_then(|k| k.addrs.clone()) else {
            return;
        };
        if addrs.as_slice() == current {
            return;
        }
        let joined: Vec<String> = addrs
            .iter()
            .filter(|a| !current.contains(a))
            .map(ToString::to_string)
            .collect();
        let left: Vec<String> = current
            .iter()
            .filter(|a| !addrs.contains(a))
            .map(ToString::to_string)
            .collect();
        match self.control.execute(Command::SyncDiscovered {
            service: key.0.clone(),
            name: key.1.name.clone(),
            addrs,
        }) {
            Ok(()) => log::info!(
                "[{}] discover {}: joined [{}], left [{}]",
                key.0,
                key.1,
                joined.join(" "),
                left.join(" ")
            ),
            Err(e) => log::warn!("[{}] discover {}: cannot apply: {e}", key.0, key.1),
        }
    }

    /// The resolver, built on first use.
    fn resolver(&mut self) -> Result<&Resolver, String> {
        if self.resolver.is_none() {
            let mut opts = ResolverOpts::default();
            // Every lookup asks: the TTL schedule is this module's.
            opts.cache_size = 0;
            opts.timeout = Duration::from_secs(2);
            opts.attempts = 2;
            let resolver = match self.nameservers {
                Nameservers::System => {
                    let (config, _) = hickory_resolver::system_conf::read_system_conf()
                        .map_err(|e| format!("reading the system's resolver configuration: {e}"))?;
                    Resolver::new(config, opts)
                }
                Nameservers::At(addr) => {
                    let mut config = ResolverConfig::new();
                    config.add_name_server(NameServerConfig::new(addr, Protocol::Udp));
                    config.add_name_server(NameServerConfig::new(addr, Protocol::Tcp));
                    Resolver::new(config, opts)
                }
            }
            .map_err(|e| format!("starting the resolver: {e}"))?;
            self.resolver = Some(resolver);
        }
        self.resolver
            .as_ref()
            .ok_or_else(|| "no resolver".to_string())
    }

    /// The addresses `d` names now, and until when the answer holds.
    fn lookup(&mut self, d: &Discovery) -> Result<(Vec<SocketAddr>, Instant), String> {
        let fqdn = format!("{}.", d.name);
        let resolver = self.resolver()?;
        match d.kind {
            DiscoveryKind::Address { port } => {
                let ips = resolver
                    .lookup_ip(fqdn.as_str())
                    .map_err(|e| e.to_string())?;
                let until = ips.valid_until();
                Ok((
                    ips.iter().map(|ip| SocketAddr::new(ip, port)).collect(),
                    until,
                ))
            }
            DiscoveryKind::Srv => {
                let srv = resolver
                    .srv_lookup(fqdn.as_str())
                    .map_err(|e| e.to_string())?;
                let mut until = srv.as_lookup().valid_until();
                // RFC 2782: the lowest priority present is used; a target
                // of "." means the service is not offered there.
                let best = srv.iter().map(|r| r.priority()).min();
                let mut addrs = Vec::new();
                for record in srv.iter().filter(|r| Some(r.priority()) == best) {
                    if record.target().is_root() || record.port() == 0 {
                        continue;
                    }
                    let ips = resolver
                        .lookup_ip(record.target().clone())
                        .map_err(|e| format!("{}: {e}", record.target()))?;
                    until = until.min(ips.valid_until());
                    addrs.extend(ips.iter().map(|ip| SocketAddr::new(ip, record.port())));
                }
                Ok((addrs, until))
            }
        }
    }
}
