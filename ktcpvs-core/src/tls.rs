//! TLS as the model sees it: which certificate files a service's listener
//! serves ([`TlsConfig`]), how a real server is reached over TLS
//! ([`BackendTls`]), and the contract
//! ([`TlsLoader`]) through which the host's TLS implementation turns those
//! files into what its engine hands each handshake ([`TlsMaterial`]).
//!
//! The core reads no certificate and links no TLS library. A host that
//! serves TLS registers a loader with
//! [`Control::set_tls_loader`](crate::Control::set_tls_loader); the control
//! path calls it whenever a service's certificate list changes or a reload
//! is asked for ([`Command::ReloadCertificates`](crate::Command)), before
//! anything is published, so a bad, unreadable or mismatched file refuses
//! the whole change (naming the file) and nothing is applied. The material
//! lives in the service's [`ServiceSnapshot`](crate::ServiceSnapshot):
//! connections that finished their handshake keep what they negotiated, and
//! new handshakes use the material of the snapshot they are accepted under.

use std::any::Any;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use thiserror::Error;

use crate::error::ControlError;

/// Most certificates one service may serve.
pub const MAX_CERTIFICATES: usize = 64;

/// One certificate a listener serves: a PEM file with the certificate chain
/// (the server's certificate first) and a PEM file with its private key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CertificateFiles {
    /// The certificate chain, PEM.
    pub chain: PathBuf,
    /// The private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// How a service terminates TLS.
///
/// The certificate served to a client is chosen by the name it sends (SNI)
/// among the DNS names of the certificates, exact names before wildcard
/// ones; a client that sends no name, or a name no certificate has, gets
/// the first certificate.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TlsConfig {
    /// The certificates, the default one first. Never empty.
    pub certificates: Vec<CertificateFiles>,
    /// Whether an HTTP request's `Host` must agree with the name the client
    /// sent in its handshake (SNI); one that does not is answered `421
    /// Misdirected Request`. On by default: a client must not reach, under
    /// one site's certificate, a site it did not name in its handshake.
    pub host_check: bool,
}

impl TlsConfig {
    /// A configuration serving `certificates`, the first as the default,
    /// with the `Host`/SNI check on.
    pub fn new(certificates: Vec<CertificateFiles>) -> TlsConfig {
        TlsConfig {
            certificates,
            host_check: true,
        }
    }

    /// Checks the shape of the configuration (not the files: that is the
    /// [`TlsLoader`]'s part): between 1 and [`MAX_CERTIFICATES`]
    /// certificates, no path empty or holding a control character.
    pub fn validate(&self) -> Result<(), ControlError> {
        let invalid = |value: String, reason: &str| ControlError::Invalid {
            what: "certificate",
            value,
            reason: reason.to_string(),
        };
        if self.certificates.is_empty() {
            return Err(invalid(String::new(), "a TLS service needs a certificate"));
        }
        if self.certificates.len() > MAX_CERTIFICATES {
            return Err(invalid(
                self.certificates.len().to_string(),
                &format!("at most {MAX_CERTIFICATES} certificates per service"),
            ));
        }
        for files in &self.certificates {
            for path in [&files.chain, &files.key] {
                let text = path.to_string_lossy();
                if text.is_empty() || text.chars().any(char::is_control) {
                    return Err(invalid(
                        text.escape_debug().to_string(),
                        "a file name must be non-empty and hold no control character",
                    ));
                }
            }
        }
        Ok(())
    }
}

/// How the proxy reaches one real server over TLS.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct BackendTls {
    /// The name the server's certificate must carry, sent as SNI too.
    /// `None`: the certificate must name the server's IP address, and no
    /// SNI is sent.
    pub name: Option<String>,
    /// A PEM file of the certificate authorities to trust; `None`: the
    /// system's trusted roots.
    pub ca: Option<PathBuf>,
    /// A client certificate to present when the server asks for one.
    pub certificate: Option<CertificateFiles>,
}

impl BackendTls {
    /// Checks the shape of the settings (not the files): `name` a DNS name
    /// of at most 253 bytes, file names non-empty and free of control
    /// characters.
    pub fn validate(&self) -> Result<(), ControlError> {
        if let Some(name) = &self.name {
            let label_ok = |l: &str| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            };
            if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
                return Err(ControlError::Invalid {
                    what: "server TLS name",
                    value: name.clone(),
                    reason: "must be a DNS name (letters, digits, '-' and '.')".to_string(),
                });
            }
        }
        let mut files: Vec<&PathBuf> = self.ca.iter().collect();
        if let Some(c) = &self.certificate {
            files.push(&c.chain);
            files.push(&c.key);
        }
        for path in files {
            let text = path.to_string_lossy();
            if text.is_empty() || text.chars().any(char::is_control) {
                return Err(ControlError::Invalid {
                    what: "server TLS file",
                    value: text.escape_debug().to_string(),
                    reason: "a file name must be non-empty and hold no control character"
                        .to_string(),
                });
            }
        }
        Ok(())
    }
}

/// What a [`TlsLoader`] made of a service's certificates, as its engine
/// will use it (for instance a TLS library's server configuration). The
/// core only stores it; the engine that registered the loader downcasts it
/// to its own type.
pub type TlsMaterial = Arc<dyn Any + Send + Sync>;

/// A certificate file that could not be used. Nothing was applied.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("certificate file {}: {reason}", file.display())]
pub struct TlsError {
    /// The file at fault.
    pub file: PathBuf,
    /// What is wrong with it.
    pub reason: String,
}

/// Turns a service's certificate files into the material its engine uses:
/// implemented by the host's TLS integration (the `ktcpvs-net` engine has
/// one over rustls).
///
/// `load` reads and checks every file (readable, PEM, a certificate and a
/// key that belong together, not expired) and fails naming the first file
/// at fault. It runs on the control path with the configuration locked, so
/// it should read files and nothing slower.
pub trait TlsLoader: Send + Sync {
    /// Loads the certificates of `service`.
    fn load(&self, service: &str, config: &TlsConfig) -> Result<TlsMaterial, TlsError>;

    /// Loads what connecting to real server `server` of `service` over TLS
    /// needs (the trusted roots, the client certificate). A loader without
    /// TLS to real servers refuses, which is the default.
    fn load_backend(
        &self,
        service: &str,
        server: SocketAddr,
        tls: &BackendTls,
    ) -> Result<TlsMaterial, TlsError> {
        let _ = service;
        Err(TlsError {
            file: tls.ca.clone().unwrap_or_default(),
            reason: format!("this program has no TLS to real servers (server {server})"),
        })
    }
}

impl fmt::Debug for dyn TlsLoader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TlsLoader")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(chain: &str, key: &str) -> CertificateFiles {
        CertificateFiles {
            chain: chain.into(),
            key: key.into(),
        }
    }

    #[test]
    fn a_tls_configuration_needs_one_to_sixty_four_sane_file_pairs() {
        assert!(TlsConfig::new(vec![files("a.pem", "a.key")])
            .validate()
            .is_ok());
        assert!(TlsConfig::new(vec![]).validate().is_err());
        let many = vec![files("a.pem", "a.key"); MAX_CERTIFICATES + 1];
        assert!(TlsConfig::new(many).validate().is_err());
        assert!(TlsConfig::new(vec![files("", "a.key")]).validate().is_err());
        assert!(TlsConfig::new(vec![files("a.pem", "a\nb.key")])
            .validate()
            .is_err());
    }

    #[test]
    fn a_tls_error_names_the_file() {
        let e = TlsError {
            file: "/etc/ktcpvs/site.pem".into(),
            reason: "no certificate in the file".into(),
        };
        assert_eq!(
            e.to_string(),
            "certificate file /etc/ktcpvs/site.pem: no certificate in the file"
        );
    }
}
