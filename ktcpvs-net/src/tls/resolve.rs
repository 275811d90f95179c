//! Which certificate a handshake gets: the one whose DNS names hold the
//! server name the client sent (SNI), exact names before `*.` wildcards
//! (which cover one label, as browsers match them), else the listener's
//! first certificate. The lookup allocates nothing.

use std::collections::HashMap;
use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Longest DNS name looked up (RFC 1035).
const MAX_NAME: usize = 253;

/// The certificates of one listener, by name.
#[derive(Debug)]
pub(crate) struct ByName {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// By the suffix after `*.`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
}

impl ByName {
    /// A resolver whose default is `default`; names are lower case. A name
    /// given by two certificates stays with the first.
    pub fn new(default: Arc<CertifiedKey>) -> ByName {
        ByName {
            exact: HashMap::new(),
            wildcard: HashMap::new(),
            default,
        }
    }

    /// Adds `key` under `name` (`*.suffix` for a wildcard).
    pub fn add(&mut self, name: &str, key: &Arc<CertifiedKey>) {
        let (map, name) = match name.strip_prefix("*.") {
            Some(suffix) => (&mut self.wildcard, suffix),
            None => (&mut self.exact, name),
        };
        map.entry(name.to_string())
            .or_insert_with(|| Arc::clone(key));
    }

    /// The certificate for server name `name` (any case).
    pub fn lookup(&self, name: Option<&str>) -> &Arc<CertifiedKey> {
        let Some(name) = name.filter(|n| n.len() <= MAX_NAME) else {
            return &self.default;
        };
        let mut lower = [0u8; MAX_NAME];
        let lower = &mut lower[..name.len()];
        lower.copy_from_slice(name.as_bytes());
        lower.make_ascii_lowercase();
        let Ok(name) = std::str::from_utf8(lower) else {
            return &self.default;
        };
        if let Some(key) = self.exact.get(name) {
            return key;
        }
        name.split_once('.')
            .and_then(|(_, suffix)| self.wildcard.get(suffix))
            .unwrap_or(&self.default)
    }
}

impl ResolvesServerCert for ByName {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(self.lookup(client_hello.server_name())))
    }
}
