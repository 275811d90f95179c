//! `tcpvsadm`'s own form of a control request: what `--dry-run` prints for
//! each line of the daemon's `plan` reply. A request that `tcpvsadm` has
//! flags for becomes the `tcpvsadm` command line that sends it, its words
//! quoted for a POSIX shell so the line can be pasted; any other request
//! (a setting `-E` has no flag for, say `maxclients`) stays the
//! control-socket request line, and a `#` line stays as it is.

use ktcpvs::control_socket::{Request, ServiceArgs, SysctlRequest};
use ktcpvs::core::endpoint::Endpoint;

/// The line to print for one line of a `plan` reply.
pub fn plan_line(line: &str) -> String {
    if line.starts_with('#') {
        return line.to_string();
    }
    match Request::parse(line).ok().as_ref().and_then(arguments) {
        Some(args) => {
            let mut out = String::from("tcpvsadm");
            for arg in &args {
                out.push(' ');
                out.push_str(&shell_quote(arg));
            }
            out
        }
        None => line.to_string(),
    }
}

/// Quotes `word` for a POSIX shell: as it is when it holds only
/// characters no shell treats specially, else in single quotes.
pub fn shell_quote(word: &str) -> String {
    let plain = |b: u8| b.is_ascii_alphanumeric() || b"_-+=:,./@%^".contains(&b);
    if !word.is_empty() && word.bytes().all(plain) {
        return word.to_string();
    }
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// An option with its value: `-x VALUE`, or `--long=VALUE` when the value
/// starts with `-` (which would read as an option of its own).
fn option(out: &mut Vec<String>, short: &str, long: &str, value: &str) {
    if value.starts_with('-') {
        out.push(format!("{long}={value}"));
    } else {
        out.push(short.to_string());
        out.push(value.to_string());
    }
}

/// A command on one server: the flag, `-i SERVICE` and `-r ADDR`.
fn server(out: &mut Vec<String>, flag: &str, service: &str, addr: &Endpoint) {
    out.push(flag.to_string());
    option(out, "-i", "--ident", service);
    option(out, "-r", "--real-server", &addr.to_string());
}

/// The arguments of the `tcpvsadm` command that sends `request`, or
/// `None` when `tcpvsadm` has no flags for all of it.
fn arguments(request: &Request) -> Option<Vec<String>> {
    let mut out = Vec::new();
    match request {
        Request::AddService { name, args } => service_arguments(&mut out, "-A", name, args)?,
        Request::EditService { name, args } => service_arguments(&mut out, "-E", name, args)?,
        Request::DeleteService { name } => {
            out.push("-D".into());
            option(&mut out, "-i", "--ident", name);
        }
        Request::Flush => out.push("-F".into()),
        Request::AddServer {
            service,
            server: addr,
            weight,
        }
        | Request::EditServer {
            service,
            server: addr,
            weight,
        } => {
            let flag = if matches!(request, Request::AddServer { .. }) {
                "-a"
            } else {
                "-e"
            };
            server(&mut out, flag, service, addr);
            if let Some(w) = weight {
                option(&mut out, "-w", "--weight", &w.to_string());
            }
        }
        Request::DeleteServer {
            service,
            server: addr,
        } => server(&mut out, "-d", service, addr),
        Request::AddRule {
            service,
            pattern,
            match_group,
            server: addr,
        } => {
            server(&mut out, "--add-rule", service, addr);
            option(&mut out, "-p", "--pattern", pattern);
            if let Some(m) = match_group {
                option(&mut out, "-m", "--match", &m.to_string());
            }
        }
        Request::DeleteRule {
            service,
            pattern,
            server: addr,
        } => {
            server(&mut out, "--del-rule", service, addr);
            option(&mut out, "-p", "--pattern", pattern);
        }
        Request::AddRuleStatement { service, statement }
        | Request::DeleteRuleStatement { service, statement } => {
            let add = matches!(request, Request::AddRuleStatement { .. });
            out.push(if add { "--add-rule" } else { "--del-rule" }.to_string());
            option(&mut out, "-i", "--ident", service);
            out.push(format!("--rule={statement}"));
        }
        Request::SetServerLimit {
            service,
            server: addr,
            maxconn,
        } => {
            server(&mut out, "--server-limit", service, addr);
            option(&mut out, "-x", "--max-connections", &maxconn.to_string());
        }
        Request::SetServerProxy {
            service,
            server: addr,
            version,
        } => {
            server(&mut out, "--server-proxy", service, addr);
            let version = version.map_or("off".to_string(), |v| v.to_string());
            out.push(format!("--send-proxy={version}"));
        }
        Request::SetServerTls {
            service,
            server: addr,
            tls,
        } => {
            server(&mut out, "--server-tls", service, addr);
            let Some(tls) = tls else {
                out.push("--tls-off".into());
                return Some(out);
            };
            if let Some(name) = &tls.name {
                out.push(format!("--tls-name={name}"));
            }
            if let Some(ca) = &tls.ca {
                out.push(format!("--tls-ca={}", absolute(ca)?));
            }
            if let Some(c) = &tls.certificate {
                out.push(format!("--client-certificate={}", absolute(&c.chain)?));
                out.push(format!("--client-key={}", absolute(&c.key)?));
            }
        }
        Request::Start { service } | Request::Stop { service } => {
            let start = matches!(request, Request::Start { .. });
            out.push(if start { "--start" } else { "--stop" }.into());
            if let Some(name) = service {
                option(&mut out, "-i", "--ident", name);
            }
        }
        Request::Sysctl(SysctlRequest::Set(name, value)) => {
            out.push(format!("--sysctl={name}={value}"));
        }
        Request::ReloadCertificates => out.push("--reload-certificates".into()),
        _ => return None,
    }
    Some(out)
}

/// A file name as `tcpvsadm` passes it on (it makes relative names
/// absolute from its own directory): only an absolute one means the same.
fn absolute(path: &std::path::Path) -> Option<String> {
    path.is_absolute()
        .then(|| path.to_str().map(str::to_string))
        .flatten()
}

/// The flags of `-A`/`-E`; `None` when a field has none (`-E` takes no
/// `maxclients`, timeouts, options…).
fn service_arguments(
    out: &mut Vec<String>,
    flag: &str,
    name: &str,
    args: &ServiceArgs,
) -> Option<()> {
    let s = &args.spec;
    let unflagged = args.port.is_some()
        || s.listen_port.is_some()
        || s.startservers.is_some()
        || s.maxclients.is_some()
        || s.minspareservers.is_some()
        || s.maxspareservers.is_some()
        || s.redirect.is_some()
        || s.connect_timeout.is_some()
        || s.read_timeout.is_some()
        || s.keepalive_timeout.is_some()
        || s.header_timeout.is_some()
        || s.response_timeout.is_some()
        || s.forward_for.is_some()
        || s.upgrades.is_some()
        || !s.options.is_empty();
    if unflagged {
        return None;
    }
    out.push(flag.to_string());
    option(out, "-i", "--ident", name);
    if let Some(listen) = &s.listen {
        option(out, "-l", "--listen", &listen.to_string());
    }
    if let Some(scheduler) = &s.scheduler {
        option(out, "-s", "--scheduler", scheduler);
    }
    match &s.certificates {
        Some(list) if list.is_empty() && flag == "-E" => out.push("--no-certificates".into()),
        Some(list) if list.is_empty() => return None,
        Some(list) => {
            for files in list {
                out.push(format!("--certificate={}", absolute(&files.chain)?));
                out.push(format!("--key={}", absolute(&files.key)?));
            }
        }
        None => {}
    }
    if let Some(check) = s.host_check {
        out.push(format!(
            "--sni-host-check={}",
            if check { "on" } else { "off" }
        ));
    }
    if let Some(on) = s.http2 {
        out.push(format!("--http2={}", if on { "on" } else { "off" }));
    }
    if let Some(networks) = &s.proxy_protocol {
        out.push(format!("--proxy-protocol={networks}"));
    }
    match &s.discover {
        Some(list) if list.is_empty() => out.push("--discover=none".into()),
        Some(list) => out.extend(list.iter().map(|d| format!("--discover={d}"))),
        None => {}
    }
    for (key, value) in &s.health {
        out.push(format!("--health={key}={value}"));
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Action, Cli};
    use clap::Parser;

    /// Reads a `tcpvsadm …` line back the way a shell would (single quotes
    /// and `\'`, which is all [`shell_quote`] writes).
    fn shell_words(line: &str) -> Vec<String> {
        let mut words = Vec::new();
        let mut word = String::new();
        let (mut quoted, mut any) = (false, false);
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' if !quoted => word.extend(chars.next()),
                '\'' => {
                    quoted = !quoted;
                    any = true;
                }
                ' ' if !quoted => {
                    if any || !word.is_empty() {
                        words.push(std::mem::take(&mut word));
                    }
                    any = false;
                }
                c => word.push(c),
            }
        }
        if any || !word.is_empty() {
            words.push(word);
        }
        words
    }

    #[test]
    fn each_tcpvsadm_line_sends_the_same_request() {
        let lines = [
            "add-service api listen=127.0.0.1:8081 scheduler=rr",
            "edit-service web scheduler=wlc proxy_protocol=10.0.0.0/8 discover=\"dns a.test:80 2,srv b.test 1\" health.check=http health.check_host=",
            "edit-service web certificate=none",
            "edit-service web certificate.1=\"/etc/a b.pem\" certificate_key.1=/etc/a.key sni_host_check=off",
            "edit-service web discover=none",
            "delete-service -odd",
            "add-server web server=10.0.0.1:80 weight=3",
            "add-server web server=[::1]:80",
            "edit-server web server=10.0.0.1:80 weight=0",
            "delete-server web server=10.0.0.1:80",
            "add-rule web pattern=\"-it's a \\\"test\\\" $HOME\" server=10.0.0.1:80 match=1",
            "delete-rule web pattern=/img/.* server=10.0.0.1:80",
            "server-limit web server=10.0.0.1:80 maxconn=7",
            "server-proxy web server=10.0.0.1:80 send_proxy=v2",
            "server-proxy web server=10.0.0.1:80 send_proxy=off",
            "server-tls web server=10.0.0.1:443 name=api.internal ca=/etc/ca.pem client_certificate=/etc/c.pem client_key=/etc/c.key",
            "server-tls web server=10.0.0.1:443 tls=off",
        ];
        for line in lines {
            let request = Request::parse(line).unwrap();
            let printed = plan_line(line);
            assert!(printed.starts_with("tcpvsadm "), "{line} -> {printed}");
            let cli = Cli::try_parse_from(shell_words(&printed))
                .unwrap_or_else(|e| panic!("{printed}: {e}"));
            match cli.action() {
                Ok(Action::Request(r)) => assert_eq!(*r, request, "{printed}"),
                other => panic!("{printed}: {other:?}"),
            }
        }
    }

    #[test]
    fn requests_without_flags_stay_request_lines() {
        for line in [
            "edit-service web maxclients=512",
            "add-service web listen=127.0.0.1:80 forwardfor=on",
            "edit-service web option.cookie=none",
            "edit-service web certificate.1=a.pem certificate_key.1=a.key",
            "# admin = 127.0.0.1:9100 (only a load changes it)",
        ] {
            assert_eq!(plan_line(line), line);
        }
    }

    #[test]
    fn shell_quoting() {
        assert_eq!(shell_quote("10.0.0.1:80"), "10.0.0.1:80");
        assert_eq!(shell_quote("/img/.*"), "'/img/.*'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_words(&shell_quote("a 'b' $c")), ["a 'b' $c"]);
    }
}
