//! Embedding the engine in a host program: build a `Control`, register a
//! scheduler, add a service, start the engine, reconfigure it live, stop it
//! gracefully. The built-in schedulers live in `ktcpvs-sched-wlc` and
//! `ktcpvs-sched-http` (the facade crate `ktcpvs` registers them); this
//! example implements a tiny "first available server" scheduler inline.
//!
//! Run: `cargo run -p ktcpvs-net --example embed -- 127.0.0.1:8081`

use std::sync::Arc;
use std::time::Duration;

use ktcpvs_core::{Command, Control, Dispatch, PickRequest, Picker, Scheduler, SchedulerError};
use ktcpvs_core::{SchedulerRegistry, Selection, ServiceSpec, VirtualService};
use ktcpvs_net::Engine;

struct First;
impl Picker for First {
    fn pick(&self, s: &dyn VirtualService, r: &PickRequest<'_>) -> Option<Selection> {
        (0..s.server_count())
            .find(|&i| s.server(i).is_available() && !r.is_excluded(i))
            .map(Selection::server)
    }
}
impl Scheduler for First {
    fn name(&self) -> &str {
        "first"
    }
    fn dispatch(&self) -> Dispatch {
        Dispatch::Connection
    }
    fn build(&self, _: &dyn VirtualService) -> Result<Box<dyn Picker>, SchedulerError> {
        Ok(Box::new(First))
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let registry = Arc::new(SchedulerRegistry::new());
    registry.register(Arc::new(First))?;
    let control = Control::new(registry);
    let spec = ServiceSpec {
        listen: Some("127.0.0.1:0".parse()?),
        scheduler: Some("first".into()),
        ..Default::default()
    };
    control.execute(Command::AddService {
        name: "web".into(),
        spec,
    })?;
    let server = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8081".into())
        .parse()?;
    control.execute(Command::AddServer {
        service: "web".into(),
        server,
        weight: None,
    })?;
    control.execute(Command::Start { service: None })?;
    let engine = Engine::builder(control.clone()).workers(2).start()?;
    println!("web listens on {:?}", engine.local_addr("web"));
    // Reconfigure live: every change reaches the workers at once.
    control.execute(Command::Set {
        name: "read_timeout".into(),
        value: "60".into(),
    })?;
    engine.shutdown(Duration::from_secs(5));
    engine.wait()?;
    Ok(())
}
