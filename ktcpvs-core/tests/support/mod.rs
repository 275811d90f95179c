//! Shared helpers of the ktcpvs-core integration tests: a small but real
//! rule-following least-connection scheduler, registered under the names
//! of the built-in schedulers (`http`, `hhttp`, `chttp`, `wlc`, `phttp`) so
//! configurations load without the scheduler crates, plus a `strict`
//! scheduler that refuses services whose rules lack `match N`.

#![allow(dead_code)]

use std::sync::Arc;

use ktcpvs_core::scheduler::least_connection;
use ktcpvs_core::view::first_rule_for;
use ktcpvs_core::{
    BackendTls, Control, Dispatch, PickRequest, Picker, Scheduler, SchedulerError,
    SchedulerRegistry, Selection, TlsConfig, TlsError, TlsLoader, TlsMaterial, VirtualService,
};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The names the test scheduler is registered under.
pub const SCHEDULER_NAMES: [&str; 5] = ["http", "hhttp", "chttp", "wlc", "phttp"];

/// Routes by the first matching rule (or over all servers when the service
/// has no rules or no head was read), weighted least-connection within.
pub struct TestScheduler {
    name: &'static str,
}

struct TestPicker;

impl Picker for TestPicker {
    fn pick(&self, service: &dyn VirtualService, request: &PickRequest<'_>) -> Option<Selection> {
        let rules = service.rules();
        match request.head {
            Some(head) if !rules.is_empty() => {
                let _ = head;
                let (index, rule) = first_rule_for(rules, request)?;
                let server = least_connection(
                    rule.servers().iter().map(|&i| (i, service.server(i))),
                    request.exclude,
                )?;
                Some(Selection {
                    server,
                    rule: Some(index),
                    stamp: false,
                })
            }
            _ => least_connection(
                (0..service.server_count()).map(|i| (i, service.server(i))),
                request.exclude,
            )
            .map(Selection::server),
        }
    }
}

impl Scheduler for TestScheduler {
    fn name(&self) -> &str {
        self.name
    }

    fn dispatch(&self) -> Dispatch {
        if self.name == "wlc" {
            Dispatch::Connection
        } else {
            Dispatch::FirstRequest
        }
    }

    fn build(&self, _service: &dyn VirtualService) -> Result<Box<dyn Picker>, SchedulerError> {
        Ok(Box::new(TestPicker))
    }
}

/// Refuses every service that has a rule without `match N`.
pub struct StrictScheduler;

impl Scheduler for StrictScheduler {
    fn name(&self) -> &str {
        "strict"
    }

    fn dispatch(&self) -> Dispatch {
        Dispatch::FirstRequest
    }

    fn build(&self, service: &dyn VirtualService) -> Result<Box<dyn Picker>, SchedulerError> {
        match service.rules().iter().find(|r| r.match_group().is_none()) {
            Some(rule) => Err(SchedulerError {
                scheduler: "strict".to_string(),
                service: service.name().to_string(),
                reason: format!("rule \"{}\" has no 'match N'", rule.pattern()),
            }),
            None => Ok(Box::new(TestPicker)),
        }
    }
}

/// A registry with the test scheduler under every built-in name, and
/// `strict`.
pub fn registry() -> Arc<SchedulerRegistry> {
    let registry = Arc::new(SchedulerRegistry::new());
    for name in SCHEDULER_NAMES {
        registry
            .register(Arc::new(TestScheduler { name }))
            .expect("fresh registry");
    }
    registry
        .register(Arc::new(StrictScheduler))
        .expect("fresh registry");
    registry
}

/// A control handle over [`registry`], with [`NamesOnly`] as its TLS
/// loader.
pub fn control() -> Control {
    let control = Control::new(registry());
    control.set_tls_loader(Arc::new(NamesOnly));
    control
}

/// A TLS loader that reads no file: its material is the list of file
/// names. For tests of the language and the model, where the files are
/// fictitious.
pub struct NamesOnly;

impl TlsLoader for NamesOnly {
    fn load(&self, _service: &str, config: &TlsConfig) -> Result<TlsMaterial, TlsError> {
        Ok(Arc::new(config.certificates.clone()))
    }

    fn load_backend(
        &self,
        _service: &str,
        _server: std::net::SocketAddr,
        tls: &BackendTls,
    ) -> Result<TlsMaterial, TlsError> {
        Ok(Arc::new(tls.clone()))
    }
}

/// A TLS loader that reads every file and refuses one that is missing or
/// holds no PEM block; its material is the text of the files. Counts its
/// loads.
#[derive(Default)]
pub struct PemFiles {
    pub loads: AtomicUsize,
}

impl TlsLoader for PemFiles {
    fn load(&self, _service: &str, config: &TlsConfig) -> Result<TlsMaterial, TlsError> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        let mut text = String::new();
        for files in &config.certificates {
            for file in [&files.chain, &files.key] {
                let content = std::fs::read_to_string(file).map_err(|e| TlsError {
                    file: file.clone(),
                    reason: e.to_string(),
                })?;
                if !content.contains("-----BEGIN ") {
                    return Err(TlsError {
                        file: file.clone(),
                        reason: "no PEM block".to_string(),
                    });
                }
                text.push_str(&content);
            }
        }
        Ok(Arc::new(text))
    }
}
