//! A test PKI made at run time: a CA, server certificates issued by it
//! written as PEM files into a directory of the test's own (removed when
//! dropped), and rustls clients that trust the CA. No key is checked in.

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;

use ktcpvs_core::CertificateFiles;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use super::client::{connect_timed, Client};

/// A TLS stream to the proxy.
pub type TlsStream = StreamOwned<ClientConnection, TcpStream>;

/// A CA and the directory its certificates are written to.
pub struct Pki {
    pub dir: PathBuf,
    pub ca: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    /// A fresh CA; `tag` names the directory.
    pub fn new(tag: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!("ktcpvs-tls-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "ktcpvs test CA");
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Pki { dir, ca }
    }

    /// Issues a certificate for `names` (ECDSA P-256), written to
    /// `STEM.pem` and `STEM.key`.
    pub fn issue(&self, stem: &str, names: &[&str]) -> CertificateFiles {
        self.issue_with(stem, names, |_| {})
    }

    /// Like [`issue`](Self::issue), with the parameters changed by `edit`
    /// (validity dates, say).
    pub fn issue_with(
        &self,
        stem: &str,
        names: &[&str],
        edit: impl FnOnce(&mut CertificateParams),
    ) -> CertificateFiles {
        self.issue_keyed(stem, names, KeyPair::generate().unwrap(), edit)
    }

    /// Issues a certificate for `names` with an RSA 2048 key.
    pub fn issue_rsa(&self, stem: &str, names: &[&str]) -> CertificateFiles {
        let key =
            KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048).unwrap();
        self.issue_keyed(stem, names, key, |_| {})
    }

    fn issue_keyed(
        &self,
        stem: &str,
        names: &[&str],
        key: KeyPair,
        edit: impl FnOnce(&mut CertificateParams),
    ) -> CertificateFiles {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        edit(&mut params);
        let cert = params.signed_by(&key, &self.ca).unwrap();
        let files = CertificateFiles {
            chain: self.dir.join(format!("{stem}.pem")),
            key: self.dir.join(format!("{stem}.key")),
        };
        std::fs::write(&files.chain, cert.pem()).unwrap();
        std::fs::write(&files.key, key.serialize_pem()).unwrap();
        files
    }

    /// The DER of the certificate in `files`.
    pub fn der_of(files: &CertificateFiles) -> Vec<u8> {
        use rustls::pki_types::pem::PemObject;
        CertificateDer::from_pem_file(&files.chain)
            .unwrap()
            .to_vec()
    }

    /// The CA certificate as a PEM file in the PKI's directory.
    pub fn ca_file(&self) -> PathBuf {
        let path = self.dir.join("ca.pem");
        let ca: &rcgen::Certificate = self.ca.as_ref();
        std::fs::write(&path, ca.pem()).unwrap();
        path
    }

    /// A client configuration trusting the CA and offering `alpn`.
    pub fn client_config(&self, alpn: &[&[u8]]) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        let ca: &rcgen::Certificate = self.ca.as_ref();
        roots.add(ca.der().clone()).unwrap();
        let mut config = ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }

    /// A TLS client to `addr` naming `server_name`, handshake done.
    pub fn connect(
        config: &Arc<ClientConfig>,
        addr: SocketAddr,
        server_name: &str,
    ) -> std::io::Result<Client<TlsStream>> {
        let name = ServerName::try_from(server_name.to_string()).unwrap();
        let conn = ClientConnection::new(Arc::clone(config), name).unwrap();
        let mut stream = StreamOwned::new(conn, connect_timed(addr));
        while stream.conn.is_handshaking() {
            stream.conn.complete_io(&mut stream.sock)?;
        }
        let mut client = Client::over(stream);
        client.host = server_name.to_string();
        Ok(client)
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A verifier that accepts any certificate: only to see which certificate
/// the proxy chose when no name of it is asked for.
#[derive(Debug)]
struct AcceptAnything(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnything {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The certificate (DER) the proxy at `addr` presents to a client naming
/// `server_name` (`None`: no SNI at all), whatever it is.
pub fn presented(addr: SocketAddr, server_name: Option<&str>) -> Vec<u8> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnything(provider)))
        .with_no_client_auth();
    config.enable_sni = server_name.is_some();
    let name = ServerName::try_from(server_name.unwrap_or("no-sni.test").to_string()).unwrap();
    let mut tls = ClientConnection::new(Arc::new(config), name).unwrap();
    let mut sock = connect_timed(addr);
    while tls.is_handshaking() {
        tls.complete_io(&mut sock).unwrap();
    }
    tls.peer_certificates().unwrap()[0].to_vec()
}

/// What the TLS backend saw.
#[derive(Default)]
pub struct TlsSeen {
    /// TLS connections whose handshake completed.
    pub connections: std::sync::atomic::AtomicUsize,
    /// Failed handshakes.
    pub failed: std::sync::atomic::AtomicUsize,
    /// The SNI of each connection.
    pub names: std::sync::Mutex<Vec<Option<String>>>,
    /// Whether each connection presented a client certificate.
    pub client_certs: std::sync::Mutex<Vec<bool>>,
}

/// An HTTP/1.1 server over TLS (rustls), keep-alive, answering every
/// request `NAME TARGET` with a length; it records what each handshake
/// carried. With `require_client` it asks for a client certificate issued
/// by the PKI's CA.
pub struct TlsBackend {
    pub addr: SocketAddr,
    pub seen: Arc<TlsSeen>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TlsBackend {
    pub fn start(
        pki: &Pki,
        files: &CertificateFiles,
        name: &str,
        require_client: bool,
    ) -> TlsBackend {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::PrivateKeyDer;
        use std::sync::atomic::Ordering;
        let chain = vec![CertificateDer::from_pem_file(&files.chain).unwrap()];
        let key = PrivateKeyDer::from_pem_file(&files.key).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = if require_client {
            let mut roots = RootCertStore::empty();
            let ca: &rcgen::Certificate = pki.ca.as_ref();
            roots.add(ca.der().clone()).unwrap();
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let config = Arc::new(builder.with_single_cert(chain, key).unwrap());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(TlsSeen::default());
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (seen2, stop2, name) = (Arc::clone(&seen), Arc::clone(&stop), name.to_string());
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(10)));
                let (config, seen, name) = (Arc::clone(&config), Arc::clone(&seen2), name.clone());
                std::thread::spawn(move || serve_tls(stream, config, &seen, &name));
            }
        });
        TlsBackend {
            addr,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    pub fn connections(&self) -> usize {
        self.seen
            .connections
            .load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for TlsBackend {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
            let _ = TcpStream::connect(self.addr);
            let _ = t.join();
        }
    }
}

fn serve_tls(stream: TcpStream, config: Arc<rustls::ServerConfig>, seen: &TlsSeen, name: &str) {
    use std::io::{BufRead, BufReader, Write};
    use std::sync::atomic::Ordering;
    let mut tls = StreamOwned::new(rustls::ServerConnection::new(config).unwrap(), stream);
    while tls.conn.is_handshaking() {
        if tls.conn.complete_io(&mut tls.sock).is_err() {
            seen.failed.fetch_add(1, Ordering::SeqCst);
            return;
        }
    }
    seen.connections.fetch_add(1, Ordering::SeqCst);
    seen.names
        .lock()
        .unwrap()
        .push(tls.conn.server_name().map(str::to_string));
    seen.client_certs
        .lock()
        .unwrap()
        .push(tls.conn.peer_certificates().is_some());
    let mut r = BufReader::new(tls);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let target = line.split(' ').nth(1).unwrap_or("").to_string();
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            if h == "\r\n" {
                break;
            }
        }
        let body = format!("{name} {target}");
        let out = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if r.get_mut().write_all(out.as_bytes()).is_err() {
            return;
        }
    }
}
