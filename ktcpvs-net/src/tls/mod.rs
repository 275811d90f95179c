//! TLS termination with rustls: [`RustlsLoader`], the
//! [`TlsLoader`] a host registers on its
//! [`Control`](ktcpvs_core::Control) so that services with certificates
//! load, and [`ServerTls`], what it makes of a service's certificates (the
//! material the engine hands each accepted connection).
//!
//! * Crypto: rustls's aws-lc-rs provider; TLS 1.3 and 1.2 with its default
//!   suites (AES-GCM and ChaCha20-Poly1305, ECDHE only), the server's order
//!   preferred, AES-128-GCM first.
//! * Certificates: PEM chains and keys (RSA, ECDSA, Ed25519), several per
//!   listener chosen by SNI (see `resolve`); a file that is unreadable,
//!   malformed, expired, not yet valid, without a DNS name, or whose key
//!   does not belong to its certificate is refused naming the file.
//! * Resumption: session tickets (TLS 1.3 and 1.2) and a session cache,
//!   one of each per service, kept across certificate reloads so that
//!   clients resume after a reload.
//! * ALPN: `http/1.1` on HTTP services (room for `h2` later); none on
//!   layer-4 services, whose protocol the proxy does not know.
//! * Real servers reached over TLS ([`ClientTls`]): their certificate is
//!   verified against a CA file or the system's roots, for the name given
//!   (sent as SNI) or else the server's IP address; a client certificate is
//!   presented when given; sessions resume.
//!
//! ```
//! use std::sync::Arc;
//! use ktcpvs_core::{Control, SchedulerRegistry};
//!
//! let control = Control::new(Arc::new(SchedulerRegistry::new()));
//! control.set_tls_loader(Arc::new(ktcpvs_net::tls::RustlsLoader::new()));
//! ```

mod certificate;
mod resolve;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use ktcpvs_core::{BackendTls, Dispatch, TlsConfig, TlsError, TlsLoader, TlsMaterial};
use parking_lot::Mutex;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::server::{ProducesTickets, ServerSessionMemoryCache, StoresServerSessions};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig};

use self::resolve::ByName;

/// Sessions one service's cache remembers (for clients that do not take
/// tickets).
const SESSION_CACHE: usize = 4096;

/// What [`RustlsLoader`] makes of one service's certificates: a rustls
/// server configuration for HTTP services (ALPN `http/1.1`), one for HTTP
/// services that serve HTTP/2 (ALPN `h2`, then `http/1.1`) and one for
/// layer-4 services (no ALPN), sharing certificates, tickets and cache.
#[derive(Debug)]
pub struct ServerTls {
    http: Arc<ServerConfig>,
    h2: Arc<ServerConfig>,
    stream: Arc<ServerConfig>,
}

impl ServerTls {
    /// The configuration for a service that dispatches as `dispatch`.
    pub fn config(&self, dispatch: Dispatch) -> &Arc<ServerConfig> {
        match dispatch {
            Dispatch::Connection => &self.stream,
            Dispatch::FirstRequest | Dispatch::EachRequest => &self.http,
        }
    }

    /// The configuration for a service that dispatches as `dispatch` and
    /// serves HTTP/2 when `http2` (offered by ALPN to HTTP services only).
    pub fn config_for(&self, dispatch: Dispatch, http2: bool) -> &Arc<ServerConfig> {
        match dispatch {
            Dispatch::FirstRequest | Dispatch::EachRequest if http2 => &self.h2,
            _ => self.config(dispatch),
        }
    }

    /// The material of a service, if it is this loader's.
    pub(crate) fn of(material: &TlsMaterial) -> Option<&ServerTls> {
        material.downcast_ref::<ServerTls>()
    }
}

/// What [`RustlsLoader`] makes of one real server's TLS settings: the
/// client configuration (trusted roots, client certificate, session
/// resumption) and the name the server's certificate is checked against.
#[derive(Debug)]
pub struct ClientTls {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
}

impl ClientTls {
    /// The material of a real server, if it is this loader's.
    pub(crate) fn of(material: &TlsMaterial) -> Option<&ClientTls> {
        material.downcast_ref::<ClientTls>()
    }

    /// A new client connection to the server, its handshake not begun.
    pub(crate) fn connection(&self) -> Result<ClientConnection, rustls::Error> {
        ClientConnection::new(Arc::clone(&self.config), self.name.clone())
    }
}

/// Resumption state one service keeps across reloads.
#[derive(Clone)]
struct Resumption {
    tickets: Arc<dyn ProducesTickets>,
    cache: Arc<dyn StoresServerSessions>,
}

/// The rustls [`TlsLoader`]: reads and checks certificate files and builds
/// [`ServerTls`] (see the module documentation).
pub struct RustlsLoader {
    provider: Arc<CryptoProvider>,
    resumption: Mutex<HashMap<String, Resumption>>,
}

impl Default for RustlsLoader {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for RustlsLoader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RustlsLoader").finish_non_exhaustive()
    }
}

impl RustlsLoader {
    /// A loader over the aws-lc-rs provider, its cipher suites ordered
    /// AES-128-GCM first (as strong as needed, and the cheapest per byte
    /// where the CPU has AES instructions).
    pub fn new() -> RustlsLoader {
        let mut provider = rustls::crypto::aws_lc_rs::default_provider();
        provider
            .cipher_suites
            .sort_by_key(|s| suite_rank(s.suite()));
        RustlsLoader {
            provider: Arc::new(provider),
            resumption: Mutex::new(HashMap::new()),
        }
    }

    /// The ticket key and session cache of `service`, made on first use.
    fn resumption(&self, service: &str) -> Result<Resumption, String> {
        let mut all = self.resumption.lock();
        if let Some(r) = all.get(service) {
            return Ok(r.clone());
        }
        let tickets = rustls::crypto::aws_lc_rs::Ticketer::new()
            .map_err(|e| format!("cannot make a session ticket key: {e}"))?;
        let cache: Arc<dyn StoresServerSessions> = ServerSessionMemoryCache::new(SESSION_CACHE);
        let resumption = Resumption { tickets, cache };
        all.insert(service.to_string(), resumption.clone());
        Ok(resumption)
    }

    /// One server configuration over `resolver`.
    fn server_config(
        &self,
        resolver: &Arc<ByName>,
        resumption: &Resumption,
        alpn: &[&[u8]],
    ) -> Result<Arc<ServerConfig>, String> {
        let mut config = ServerConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(resolver) as Arc<_>);
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        config.ignore_client_order = true;
        config.ticketer = Arc::clone(&resumption.tickets);
        config.session_storage = Arc::clone(&resumption.cache);
        Ok(Arc::new(config))
    }
}

/// The server's order of preference: AES-128-GCM, then the provider's own
/// order (a stable sort keeps it).
fn suite_rank(suite: rustls::CipherSuite) -> u8 {
    use rustls::CipherSuite as S;
    match suite {
        S::TLS13_AES_128_GCM_SHA256 => 0,
        S::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 | S::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => 1,
        _ => 2,
    }
}

impl RustlsLoader {
    /// The roots a real server's certificate is checked against: the PEM
    /// certificates of `ca`, or the system's trusted roots.
    fn roots(&self, ca: Option<&Path>) -> Result<RootCertStore, TlsError> {
        let mut roots = RootCertStore::empty();
        match ca {
            Some(file) => {
                let found = certificate::read_certificates(file)?;
                let (added, _) = roots.add_parsable_certificates(found);
                if added == 0 {
                    return Err(TlsError {
                        file: file.to_path_buf(),
                        reason: "holds no usable CA certificate".to_string(),
                    });
                }
            }
            None => {
                let (added, _) = roots.add_parsable_certificates(system_roots().iter().cloned());
                if added == 0 {
                    return Err(TlsError {
                        file: PathBuf::new(),
                        reason: "the system has no trusted root certificates (give a ca file)"
                            .to_string(),
                    });
                }
            }
        }
        Ok(roots)
    }
}

/// The system's trusted roots, read once per process.
fn system_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for e in found.errors.iter().take(3) {
            log::warn!("reading the system's root certificates: {e}");
        }
        found.certs
    })
}

impl TlsLoader for RustlsLoader {
    fn load(&self, service: &str, config: &TlsConfig) -> Result<TlsMaterial, TlsError> {
        let mut loaded = Vec::with_capacity(config.certificates.len());
        for files in &config.certificates {
            loaded.push(certificate::load(service, files, &self.provider)?);
        }
        // The configuration was validated: at least one certificate.
        let first = config.certificates.first();
        let internal = |reason: String| TlsError {
            file: first.map(|f| f.chain.clone()).unwrap_or_default(),
            reason,
        };
        let Some(default) = loaded.first() else {
            return Err(internal("no certificate".to_string()));
        };
        let mut resolver = ByName::new(Arc::clone(&default.key));
        for l in &loaded {
            for name in &l.names {
                resolver.add(name, &l.key);
            }
        }
        let resolver = Arc::new(resolver);
        let resumption = self.resumption(service).map_err(internal)?;
        let http = self
            .server_config(&resolver, &resumption, &[b"http/1.1"])
            .map_err(internal)?;
        let h2 = self
            .server_config(&resolver, &resumption, &[b"h2", b"http/1.1"])
            .map_err(internal)?;
        let stream = self
            .server_config(&resolver, &resumption, &[])
            .map_err(internal)?;
        Ok(Arc::new(ServerTls { http, h2, stream }))
    }

    fn load_backend(
        &self,
        _service: &str,
        server: SocketAddr,
        tls: &BackendTls,
    ) -> Result<TlsMaterial, TlsError> {
        let name = match &tls.name {
            Some(n) => ServerName::try_from(n.clone()).map_err(|e| TlsError {
                file: PathBuf::new(),
                reason: format!("'{n}' is not a server name: {e}"),
            })?,
            None => ServerName::IpAddress(server.ip().into()),
        };
        let roots = self.roots(tls.ca.as_deref())?;
        let builder = ClientConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError {
                file: PathBuf::new(),
                reason: e.to_string(),
            })?
            .with_root_certificates(roots);
        let config = match &tls.certificate {
            None => builder.with_no_client_auth(),
            Some(files) => {
                let (chain, key) = certificate::load_client(files)?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| TlsError {
                        file: files.key.clone(),
                        reason: format!("does not fit its certificate: {e}"),
                    })?
            }
        };
        Ok(Arc::new(ClientTls {
            config: Arc::new(config),
            name,
        }))
    }
}
