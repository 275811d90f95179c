//! Configuration files: never a panic, and nothing accepted that the
//! printer cannot print back. A text that parses and applies is printed,
//! and the printed text must load into a fresh control to the identical
//! configuration. (Texts naming hosts rather than IP literals are only
//! parsed: resolving names would make the target depend on the network.)
#![no_main]

use ktcpvs_core::config::{parse, print, PrintOptions};
use ktcpvs_core::{Command, Control, Endpoint};
use libfuzzer_sys::fuzz_target;

/// Whether every endpoint the commands name is an IP literal.
fn literal_addresses(commands: &[ktcpvs_core::config::Located<Command>]) -> bool {
    let literal = |e: &Endpoint| e.host.parse::<std::net::IpAddr>().is_ok();
    commands.iter().all(|c| match &c.value {
        Command::AddService { spec, .. } | Command::EditService { spec, .. } => {
            spec.listen.as_ref().map_or(true, literal)
                && spec.redirect.as_ref().map_or(true, |r| r.as_ref().map_or(true, literal))
        }
        Command::AddServer { server, .. }
        | Command::EditServer { server, .. }
        | Command::DeleteServer { server, .. }
        | Command::AddRule { server, .. }
        | Command::DeleteRule { server, .. } => literal(server),
        Command::SetAdmin { addr: Some(addr) } => literal(addr),
        _ => true,
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(commands) = parse(text, None) else {
        return;
    };
    if !literal_addresses(&commands) {
        return;
    }
    let control = Control::new(ktcpvs::builtin_schedulers());
    if control.load_config(text, None).is_err() {
        return;
    }
    let config = control.config();
    for numeric in [false, true] {
        let printed = print(&config, &PrintOptions { numeric });
        let again = Control::new(ktcpvs::builtin_schedulers());
        again
            .load_config(&printed, None)
            .unwrap_or_else(|e| panic!("{text:?} prints as {printed:?}, which does not load: {e}"));
        assert_eq!(again.config(), config, "{text:?} -> {printed:?}");
    }
});
