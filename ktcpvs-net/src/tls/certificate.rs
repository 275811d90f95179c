//! One certificate of a listener, read and checked: the PEM chain and its
//! key from files, the key proved to belong to the certificate, the
//! validity dates, and the DNS names the certificate answers for (what
//! SNI selects on). Every refusal names the file at fault and what is
//! wrong with it.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ktcpvs_core::{CertificateFiles, TlsError};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// Largest certificate or key file read.
const MAX_FILE: u64 = 1024 * 1024;

/// How long before its expiry a certificate is warned about.
const EXPIRY_WARNING: Duration = Duration::from_secs(30 * 24 * 3600);

/// A checked certificate: what rustls serves, and the names it answers for.
pub(crate) struct Loaded {
    /// The chain and its signing key.
    pub key: Arc<CertifiedKey>,
    /// Its DNS names, lower case: exact names and `*.suffix` wildcards.
    pub names: Vec<String>,
}

fn refuse(file: &Path, reason: impl Into<String>) -> TlsError {
    TlsError {
        file: file.to_path_buf(),
        reason: reason.into(),
    }
}

/// The bytes of `file`, at most [`MAX_FILE`].
fn read(file: &Path) -> Result<Vec<u8>, TlsError> {
    let mut bytes = Vec::new();
    File::open(file)
        .and_then(|f| f.take(MAX_FILE + 1).read_to_end(&mut bytes))
        .map_err(|e| refuse(file, format!("cannot be read: {e}")))?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(refuse(file, format!("larger than {MAX_FILE} bytes")));
    }
    Ok(bytes)
}

/// Reads and checks one certificate (see the module documentation).
/// `service` only names the service in the expiry warning.
pub(crate) fn load(
    service: &str,
    files: &CertificateFiles,
    provider: &CryptoProvider,
) -> Result<Loaded, TlsError> {
    let chain_file = files.chain.as_path();
    let key_file = files.key.as_path();
    let chain = CertificateDer::pem_slice_iter(&read(chain_file)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| refuse(chain_file, format!("not a PEM certificate chain: {e}")))?;
    let Some(leaf) = chain.first() else {
        return Err(refuse(chain_file, "holds no certificate"));
    };
    let key = PrivateKeyDer::from_pem_slice(&read(key_file)?)
        .map_err(|e| refuse(key_file, format!("holds no PEM private key: {e}")))?;
    let signing = provider.key_provider.load_private_key(key).map_err(|e| {
        refuse(
            key_file,
            format!("an unsupported or malformed private key: {e}"),
        )
    })?;
    let (_, parsed) = X509Certificate::from_der(leaf).map_err(|e| {
        refuse(
            chain_file,
            format!("its first certificate does not parse: {e}"),
        )
    })?;
    check_validity(service, chain_file, &parsed)?;
    let names = names_of(&parsed);
    if names.is_empty() {
        return Err(refuse(chain_file, "its certificate names no DNS name"));
    }
    let certified = CertifiedKey::new(chain, signing);
    if let Err(e) = certified.keys_match() {
        return Err(refuse(
            key_file,
            format!(
                "does not belong to the certificate in {}: {e}",
                chain_file.display()
            ),
        ));
    }
    Ok(Loaded {
        key: Arc::new(certified),
        names,
    })
}

/// The PEM certificates of `file` (a CA bundle), at least one.
pub(crate) fn read_certificates(file: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let found = CertificateDer::pem_slice_iter(&read(file)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| refuse(file, format!("not a PEM certificate file: {e}")))?;
    if found.is_empty() {
        return Err(refuse(file, "holds no certificate"));
    }
    Ok(found)
}

/// A client certificate chain and its key, read from `files`.
pub(crate) fn load_client(
    files: &CertificateFiles,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let chain = read_certificates(&files.chain)?;
    let key = PrivateKeyDer::from_pem_slice(&read(&files.key)?)
        .map_err(|e| refuse(&files.key, format!("holds no PEM private key: {e}")))?;
    Ok((chain, key))
}

/// Refuses a certificate that is expired or not valid yet; warns about
/// one that expires within [`EXPIRY_WARNING`].
fn check_validity(service: &str, file: &Path, cert: &X509Certificate<'_>) -> Result<(), TlsError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let validity = cert.validity();
    if now > validity.not_after.timestamp() {
        return Err(refuse(file, format!("expired on {}", validity.not_after)));
    }
    if now < validity.not_before.timestamp() {
        return Err(refuse(
            file,
            format!("not valid before {}", validity.not_before),
        ));
    }
    if validity.not_after.timestamp() - now < EXPIRY_WARNING.as_secs() as i64 {
        log::warn!(
            "[{service}] certificate {} expires on {}",
            file.display(),
            validity.not_after
        );
    }
    Ok(())
}

/// The DNS names of the subject alternative names, else the common name;
/// lower case.
fn names_of(cert: &X509Certificate<'_>) -> Vec<String> {
    let mut names: Vec<String> = match cert.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::DNSName(d) => Some(d.to_ascii_lowercase()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    if names.is_empty() {
        names.extend(
            cert.subject()
                .iter_common_name()
                .filter_map(|cn| cn.as_str().ok())
                .filter(|cn| cn.contains('.') || *cn == "localhost")
                .map(str::to_ascii_lowercase),
        );
    }
    names
}
