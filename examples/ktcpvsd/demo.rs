//! `ktcpvsd --demo`: the README's example on a fresh machine. Three
//! name-answering real servers on loopback stand in for r1, r2 and r3, and
//! the example service is configured through the control-socket requests
//! that the README's `tcpvsadm` commands send. With `--tls` the service
//! terminates TLS with a self-signed certificate for `localhost` made at
//! start (in a private directory removed at exit).

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

use ktcpvs::control_socket::{Dispatcher, Reply, Request, ServiceArgs};
use ktcpvs::demo::NamedHttpServer;
use ktcpvs::{CertificateFiles, Control, ServiceSpec};

/// The running demo real servers (and the demo certificate); dropping it
/// stops them.
pub struct Demo {
    servers: Vec<NamedHttpServer>,
    certificate: Option<DemoCertificate>,
}

/// A self-signed certificate for `localhost` in a directory of its own.
struct DemoCertificate {
    dir: PathBuf,
    files: CertificateFiles,
}

impl DemoCertificate {
    /// Makes the key pair and certificate and writes them, the directory
    /// readable by this user only.
    fn make() -> Result<DemoCertificate, String> {
        use std::os::unix::fs::DirBuilderExt;
        let dir = std::env::temp_dir().join(format!("ktcpvs-demo-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let made = rcgen::generate_simple_self_signed(names).map_err(|e| e.to_string())?;
        let files = CertificateFiles {
            chain: dir.join("demo.pem"),
            key: dir.join("demo.key"),
        };
        let write = |path: &Path, text: String| {
            std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
        };
        write(&files.chain, made.cert.pem())?;
        write(&files.key, made.signing_key.serialize_pem())?;
        Ok(DemoCertificate { dir, files })
    }
}

impl Drop for DemoCertificate {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The name of the demo's virtual service.
pub const SERVICE: &str = "http";

/// Starts r1, r2 and r3 on ephemeral loopback ports and aliases their
/// names to them; with `tls`, makes the demo certificate.
pub fn start_servers(control: &Control, tls: bool) -> Result<Demo, String> {
    let mut servers = Vec::with_capacity(3);
    for name in ["r1", "r2", "r3"] {
        let server = NamedHttpServer::start(name, SocketAddr::from(([127, 0, 0, 1], 0)))
            .map_err(|e| format!("cannot start the demo real servers: {e}"))?;
        control.alias_host(name, server.local_addr());
        servers.push(server);
    }
    let certificate = if tls {
        Some(
            DemoCertificate::make()
                .map_err(|e| format!("cannot make the demo certificate: {e}"))?,
        )
    } else {
        None
    };
    Ok(Demo {
        servers,
        certificate,
    })
}

/// 127.0.0.1:`first`, or the first free port of the twenty after it, or an
/// ephemeral one.
fn listen_addr(first: u16) -> SocketAddr {
    (first..first + 20)
        .map(|port| SocketAddr::from(([127, 0, 0, 1], port)))
        .find(|addr| TcpListener::bind(addr).is_ok())
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)))
}

/// The README's configuration commands, as control requests (serving
/// `certificate` when there is one).
fn readme_requests(listen: SocketAddr, certificate: Option<&CertificateFiles>) -> Vec<Request> {
    let ep = |text: &str| text.parse().expect("demo endpoints are literals");
    let mut requests = vec![Request::AddService {
        name: SERVICE.into(),
        args: ServiceArgs {
            spec: ServiceSpec {
                scheduler: Some("http".into()),
                listen: Some(ktcpvs::Endpoint::from_addr(listen)),
                certificates: certificate.map(|c| vec![c.clone()]),
                ..Default::default()
            },
            port: None,
        },
    }];
    for r in ["r1:80", "r2:80", "r3:80"] {
        requests.push(Request::AddServer {
            service: SERVICE.into(),
            server: ep(r),
            weight: None,
        });
    }
    for (pattern, server) in [
        ("/images/.*", "r1:80"),
        ("/html/.*", "r2:80"),
        (".*", "r3:80"),
    ] {
        requests.push(Request::AddRule {
            service: SERVICE.into(),
            pattern: pattern.into(),
            match_group: None,
            server: ep(server),
        });
    }
    requests.push(Request::Start {
        service: Some(SERVICE.into()),
    });
    requests
}

impl Demo {
    /// Configures and starts the example service; returns its listening
    /// address as bound.
    pub fn configure(
        &self,
        dispatcher: &Dispatcher,
        bound: impl Fn() -> Option<SocketAddr>,
    ) -> Result<SocketAddr, String> {
        let certificate = self.certificate.as_ref().map(|c| &c.files);
        let listen = listen_addr(if certificate.is_some() { 8443 } else { 8080 });
        for request in readme_requests(listen, certificate) {
            if let Reply::Err { message, .. } = dispatcher.handle(&request, None) {
                return Err(format!(
                    "demo configuration failed at '{request}': {message}"
                ));
            }
        }
        bound()
            .ok_or_else(|| format!("demo service is not listening on {listen} (see the log above)"))
    }

    /// What to try next, printed to stdout.
    pub fn banner(&self, addr: SocketAddr, socket: &Path) -> String {
        let (url, curl) = match &self.certificate {
            Some(c) => (
                format!("https://localhost:{}", addr.port()),
                format!("curl --cacert {}", c.files.chain.display()),
            ),
            None => (format!("http://{addr}"), "curl".to_string()),
        };
        let servers: Vec<String> = self
            .servers
            .iter()
            .map(|s| format!("{} = {}", s.name(), s.local_addr()))
            .collect();
        let adm = format!(
            "cargo run --release --example tcpvsadm -- --socket {}",
            socket.display()
        );
        format!(
            "ktcpvsd demo: virtual service '{SERVICE}' (scheduler http) listening on {url}\n\
             real servers (each answers with its name): {}\n\
             \n\
             Try the routing:\n\
             \x20 {curl} {url}/images/logo.png\n\
             \x20 {curl} {url}/html/index.html\n\
             \x20 {curl} {url}/\n\
             \n\
             Then, from another terminal:\n\
             \x20 {adm} --list\n\
             \x20 {adm} -L --stats\n\
             \x20 {adm} -e -i {SERVICE} -r r3:80 -w 0\n\
             \x20 {adm} --sysctl debug_level=3\n\
             \x20 {adm} --stop -i {SERVICE}\n\
             \n\
             Stop with Ctrl-C (or: {adm} --sysctl unload=1).\n",
            servers.join(", ")
        )
    }
}
