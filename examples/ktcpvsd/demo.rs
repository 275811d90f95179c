//! `ktcpvsd --demo`: the README's example on a fresh machine. Three
//! name-answering real servers on loopback stand in for r1, r2 and r3, and
//! the example service is configured through the control-socket requests
//! that the README's `tcpvsadm` commands send.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;

use ktcpvs::control_socket::{Dispatcher, Reply, Request, ServiceArgs};
use ktcpvs::demo::NamedHttpServer;
use ktcpvs::{Control, ServiceSpec};

/// The running demo real servers; dropping it stops them.
pub struct Demo {
    servers: Vec<NamedHttpServer>,
}

/// The name of the demo's virtual service.
pub const SERVICE: &str = "http";

/// Starts r1, r2 and r3 on ephemeral loopback ports and aliases their
/// names to them.
pub fn start_servers(control: &Control) -> std::io::Result<Demo> {
    let mut servers = Vec::with_capacity(3);
    for name in ["r1", "r2", "r3"] {
        let server = NamedHttpServer::start(name, SocketAddr::from(([127, 0, 0, 1], 0)))?;
        control.alias_host(name, server.local_addr());
        servers.push(server);
    }
    Ok(Demo { servers })
}

/// 127.0.0.1:8080, or the first free port after it, or an ephemeral one.
fn listen_addr() -> SocketAddr {
    (8080..8100)
        .map(|port| SocketAddr::from(([127, 0, 0, 1], port)))
        .find(|addr| TcpListener::bind(addr).is_ok())
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)))
}

/// The README's configuration commands, as control requests.
fn readme_requests(listen: SocketAddr) -> Vec<Request> {
    let ep = |text: &str| text.parse().expect("demo endpoints are literals");
    let mut requests = vec![Request::AddService {
        name: SERVICE.into(),
        args: ServiceArgs {
            spec: ServiceSpec {
                scheduler: Some("http".into()),
                listen: Some(ktcpvs::Endpoint::from_addr(listen)),
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
        let listen = listen_addr();
        for request in readme_requests(listen) {
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
        let url = format!("http://{addr}");
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
             \x20 curl {url}/images/logo.png\n\
             \x20 curl {url}/html/index.html\n\
             \x20 curl {url}/\n\
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
