//! Binary upgrade, both sides (docs/deployment.md, "Upgrading the
//! binary"):
//!
//! * [`take_over`]: the new `ktcpvsd --upgrade-from PATH` receives the
//!   running daemon's listening sockets and configuration over its control
//!   socket; `main` then starts the engine on them, binds the control
//!   socket and the admin listener, and only then [`Takeover::confirm`]s;
//! * [`Handing`]: what the running daemon hands over (its engine's
//!   sockets, its admin listener) and how it learns it was taken over.
//!
//! Until the confirmation the old daemon serves unchanged: if the new one
//! fails and exits, the connection closes and the old one goes on.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::{mpsc, Arc, Mutex, Weak};
use std::time::Duration;

use ktcpvs::control_socket::protocol::{ListenerInfo, ListenerRole};
use ktcpvs::control_socket::{ControlClient, HandedListener, HandoverSource};
use ktcpvs::net::EngineHandle;
use ktcpvs::{Command, Control};

use crate::Event;

/// Settings that describe the old daemon's state, not its configuration:
/// never carried over.
const NOT_CARRIED: [&str; 2] = ["unload", "drain"];

/// A handover received and applied to the new daemon's [`Control`],
/// waiting for [`confirm`](Self::confirm).
pub struct Takeover {
    client: ControlClient,
    /// The services' listening sockets, for `EngineBuilder::inherit`.
    pub services: Vec<TcpListener>,
    /// The admin listener's socket, if the old daemon had one.
    pub admin: Option<TcpListener>,
}

/// Receives the sockets and configuration of the daemon at `path` and
/// loads them into `control`: the configuration text, the started
/// services, the settings (those given with `--sysctl` win).
pub fn take_over(
    path: &Path,
    control: &Control,
    sysctl: &[(String, String)],
) -> Result<Takeover, String> {
    let fail = |e: &dyn std::fmt::Display| format!("upgrade from {}: {e}", path.display());
    let mut client = ControlClient::connect(path).map_err(|e| fail(&e))?;
    let handover = client.handover().map_err(|e| fail(&e))?;
    control
        .load_config(&handover.config, None)
        .map_err(|e| fail(&format!("its configuration does not load here: {e}")))?;
    for (name, value) in &handover.settings {
        if NOT_CARRIED.contains(&name.as_str()) || sysctl.iter().any(|(n, _)| n == name) {
            continue;
        }
        let set = Command::Set {
            name: name.clone(),
            value: value.clone(),
        };
        if let Err(e) = control.execute(set) {
            log::warn!("upgrade: setting {name} = {value} not taken over: {e}");
        }
    }
    for name in &handover.running {
        let start = Command::Start {
            service: Some(name.clone()),
        };
        control.execute(start).map_err(|e| fail(&e))?;
    }
    let mut takeover = Takeover {
        client,
        services: Vec::new(),
        admin: None,
    };
    for listener in handover.listeners {
        match listener.info.role {
            ListenerRole::Service(_) => takeover.services.push(listener.socket),
            ListenerRole::Admin => takeover.admin = Some(listener.socket),
        }
    }
    eprintln!(
        "ktcpvsd: took over {} listening sockets, {} started services and the configuration from {}",
        takeover.services.len() + usize::from(takeover.admin.is_some()),
        handover.running.len(),
        path.display()
    );
    Ok(takeover)
}

impl Takeover {
    /// The admin socket when it is bound to `addr` (else the admin
    /// listener binds its own).
    pub fn admin_for(&mut self, addr: Option<SocketAddr>) -> Option<TcpListener> {
        let bound = self.admin.as_ref()?.local_addr().ok();
        if addr.is_some() && bound == addr {
            self.admin.take()
        } else {
            None
        }
    }

    /// Tells the old daemon that this one serves: it stops accepting and
    /// finishes its exchanges within `grace`.
    pub fn confirm(mut self, grace: Duration) -> Result<(), String> {
        self.client
            .confirm_handover(Some(grace))
            .map_err(|e| e.to_string())
    }
}

/// The running daemon's side: its sockets, and the main thread to wake.
pub struct Handing {
    /// Weak, so the engine can be unwrapped and waited for at exit.
    pub engine: Weak<EngineHandle>,
    /// A descriptor on the admin listener while it serves.
    pub admin: Arc<Mutex<Option<TcpListener>>>,
    /// Told [`Event::HandedOver`].
    pub events: Mutex<mpsc::Sender<Event>>,
}

impl HandoverSource for Handing {
    fn listeners(&self) -> std::io::Result<Vec<HandedListener>> {
        let engine = self.engine.upgrade().ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotConnected, "the engine has stopped")
        })?;
        if engine.is_draining() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                "the engine drains",
            ));
        }
        let mut out: Vec<HandedListener> = engine
            .listeners()?
            .into_iter()
            .map(|l| HandedListener {
                info: ListenerInfo {
                    role: ListenerRole::Service(l.service),
                    addr: l.addr,
                },
                socket: l.socket,
            })
            .collect();
        let admin = self
            .admin
            .lock()
            .map_err(|_| std::io::Error::other("the admin listener's lock is poisoned"))?;
        if let Some(socket) = admin.as_ref() {
            out.push(HandedListener {
                info: ListenerInfo {
                    role: ListenerRole::Admin,
                    addr: socket.local_addr()?,
                },
                socket: socket.try_clone()?,
            });
        }
        Ok(out)
    }

    fn confirmed(&self, grace: Option<Duration>) {
        if let Ok(events) = self.events.lock() {
            let _ = events.send(Event::HandedOver(grace));
        }
    }
}
