//! TLS through the real programs: `ktcpvsd --demo --tls` answers curl over
//! HTTPS with its self-signed certificate; a configuration file with
//! certificates serves them, `tcpvsadm --reload-certificates` and SIGHUP
//! swap them without restarting, `tcpvsadm` refuses a bad file naming it
//! and changes nothing, and listings show file names, never key material.
//! Certificates are made here with rcgen; curl is the client (installed by
//! `.ci/run`).

mod common;

use std::process::Command as Process;

use common::*;

/// curl's verdict on `url`: the response body, with `--cacert ca`
/// (`--resolve` pins the name to 127.0.0.1).
fn curl(ca: &std::path::Path, name: &str, port: u16, path: &str) -> Result<String, String> {
    let out = Process::new("curl")
        .args(["-sS", "--max-time", "5", "--cacert"])
        .arg(ca)
        .arg("--resolve")
        .arg(format!("{name}:{port}:127.0.0.1"))
        .arg(format!("https://{name}:{port}{path}"))
        .output()
        .map_err(|e| format!("curl: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// The start date curl reports for the certificate the server at `port`
/// presents to `name` (each certificate here starts on a day of its own).
fn served_start_date(ca: &std::path::Path, name: &str, port: u16) -> String {
    let out = Process::new("curl")
        .args([
            "-sS",
            "-v",
            "-o",
            "/dev/null",
            "--max-time",
            "5",
            "--cacert",
        ])
        .arg(ca)
        .arg("--resolve")
        .arg(format!("{name}:{port}:127.0.0.1"))
        .arg(format!("https://{name}:{port}/"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    text.lines()
        .find_map(|l| l.trim().strip_prefix("*  start date: ").map(str::to_string))
        .unwrap_or(text)
}

/// A CA and a way to issue certificates from it into `dir`.
struct Ca {
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

impl Ca {
    fn new(dir: &TempDir) -> (Ca, std::path::PathBuf) {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "ktcpvs test CA");
        let issuer =
            rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap())
                .unwrap();
        let path = dir.join("ca.pem");
        let cert: &rcgen::Certificate = issuer.as_ref();
        std::fs::write(&path, cert.pem()).unwrap();
        (Ca { issuer }, path)
    }

    /// Writes `STEM.pem` and `STEM.key` for `names`, valid from January
    /// `day` 2025.
    fn issue(&self, dir: &TempDir, stem: &str, names: &[&str], day: u8) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = rcgen::CertificateParams::new(names.clone()).unwrap();
        // A subject of its own: OpenSSL (curl) takes a certificate whose
        // subject is its issuer's for a self-signed one.
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, names[0].as_str());
        params.not_before = rcgen::date_time_ymd(2025, 1, day);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        std::fs::write(dir.join(&format!("{stem}.pem")), cert.pem()).unwrap();
        std::fs::write(dir.join(&format!("{stem}.key")), key.serialize_pem()).unwrap();
    }
}

#[test]
fn the_tls_demo_answers_curl_over_https() {
    let mut daemon = Daemon::start(&["--demo", "--tls"]);
    let lines = daemon.stdout_lines(40, |l| l.starts_with("Stop with"));
    let commands: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.trim().strip_prefix("curl --cacert "))
        .collect();
    assert_eq!(commands.len(), 3, "demo banner: {lines:#?}");
    let mut answered = Vec::new();
    for command in commands {
        let (ca, url) = command.split_once(' ').unwrap();
        let rest = url.strip_prefix("https://localhost:").expect("https URL");
        let (port, path) = rest.split_at(rest.find('/').unwrap());
        let body = curl(ca.as_ref(), "localhost", port.parse().unwrap(), path).unwrap();
        answered.push(body.split_whitespace().next().unwrap_or("").to_string());
    }
    assert_eq!(answered, ["r1", "r2", "r3"]);
}

#[test]
fn certificates_from_a_file_reload_live_and_bad_ones_change_nothing() {
    let dir = TempDir::new("tlsd");
    let (ca, ca_file) = Ca::new(&dir);
    ca.issue(&dir, "site", &["site.test"], 1);
    let servers = three_servers();
    let port = free_port();
    let conf = dir.join("tls.conf");
    std::fs::write(
        &conf,
        format!(
            "Virtual web {{\n    listen = 127.0.0.1:{port}\n    scheduler = chttp\n    \
             certificate = site.pem key site.key\n    server = {} 1\n    \
             rule = pattern \".*\" use server {}\n}}\n",
            servers[0].local_addr(),
            servers[0].local_addr()
        ),
    )
    .unwrap();
    let mut daemon = Daemon::start(&["-f", conf.to_str().unwrap()]);
    daemon.adm_ok(&["--start"]);
    assert!(
        eventually(200, || curl(&ca_file, "site.test", port, "/").is_ok()),
        "{:?}\n{}",
        curl(&ca_file, "site.test", port, "/"),
        daemon.log_text()
    );
    assert!(curl(&ca_file, "site.test", port, "/x")
        .unwrap()
        .starts_with("r1"));
    // chttp stamps its cookie Secure on a TLS listener.
    let head = Process::new("curl")
        .args([
            "-sS",
            "-D",
            "-",
            "-o",
            "/dev/null",
            "--max-time",
            "5",
            "--cacert",
        ])
        .arg(&ca_file)
        .arg("--resolve")
        .arg(format!("site.test:{port}:127.0.0.1"))
        .arg(format!("https://site.test:{port}/"))
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&head.stdout).to_ascii_lowercase();
    assert!(
        head.lines()
            .any(|l| l.starts_with("set-cookie: ktcpvs_sid=") && l.trim_end().ends_with("; secure")),
        "{head}"
    );
    let served = || served_start_date(&ca_file, "site.test", port);
    let first = served();

    // The listing names the files (made absolute) and holds no key.
    let listing = daemon.adm_ok(&["-L"]);
    let chain = dir.join("site.pem");
    assert!(
        listing.contains(&format!("certificate = \"{}\" key", chain.display())),
        "{listing}"
    );
    assert!(
        !listing.contains("PRIVATE KEY") && !listing.contains("BEGIN"),
        "{listing}"
    );

    // New files, then tcpvsadm --reload-certificates: served at once.
    ca.issue(&dir, "site", &["site.test"], 2);
    daemon.adm_ok(&["--reload-certificates"]);
    let second = served();
    assert_ne!(first, second);

    // New files again, then SIGHUP.
    ca.issue(&dir, "site", &["site.test"], 3);
    hangup(daemon.child_mut());
    assert!(
        eventually(200, || served() != second),
        "SIGHUP did not reload the certificates: {}",
        daemon.log_text()
    );
    let third = served();

    // A key of another certificate: refused, naming the key file, exit 1;
    // the certificate in use stays.
    ca.issue(&dir, "other", &["other.test"], 4);
    let bad = daemon.adm(&[
        "-E",
        "-i",
        "web",
        "--certificate",
        dir.join("site.pem").to_str().unwrap(),
        "--key",
        dir.join("other.key").to_str().unwrap(),
    ]);
    assert_eq!(bad.status.code(), Some(1), "{bad:?}");
    let said = String::from_utf8_lossy(&bad.stderr);
    assert!(
        said.contains(&dir.join("other.key").display().to_string())
            && said.contains("does not belong to the certificate"),
        "{said}"
    );
    assert_eq!(served(), third);
    assert!(curl(&ca_file, "site.test", port, "/").is_ok());
}
