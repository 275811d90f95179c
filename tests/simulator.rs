//! The scheduler simulator (`ktcpvs::sim` and the `ktcpvs-sim` example):
//! `hhttp` moves about 1/n of the keys when one of n servers goes or
//! comes, `wlc` shares follow the weights under load, the same seed
//! prints the same report, `maxconn` and the service queue behave as in
//! the engine, a host program's scheduler runs through it, and the command
//! line names the file and line of a bad trace or configuration. Nothing
//! is sent anywhere.

mod common;

use std::process::Command;
use std::time::Duration;

use ktcpvs::sim::{Change, GenerateSpec, Latency, SimOptions, Simulator, Trace};

const HHTTP: &str = r#"
Virtual users {
    listen = 127.0.0.1:8080
    scheduler = hhttp
    server = 10.0.0.10:80 1
    server = 10.0.0.11:80 1
    server = 10.0.0.12:80 1
    server = 10.0.0.13:80 1
    server = 10.0.0.14:80 1
    rule = pattern "^/users/([^/]+)/" match 1 use server 10.0.0.10:80
    rule = pattern "^/users/([^/]+)/" match 1 use server 10.0.0.11:80
    rule = pattern "^/users/([^/]+)/" match 1 use server 10.0.0.12:80
    rule = pattern "^/users/([^/]+)/" match 1 use server 10.0.0.13:80
    rule = pattern "^/users/([^/]+)/" match 1 use server 10.0.0.14:80
}
"#;

const WLC: &str = r#"
Virtual db {
    listen = 127.0.0.1:3306
    scheduler = wlc
    server = 10.0.0.1:3306 5
    server = 10.0.0.2:3306 3
    server = 10.0.0.3:3306 2
}
"#;

fn simulator(config: &str) -> Simulator {
    Simulator::new(ktcpvs::builtin_schedulers(), config, None).expect("configuration loads")
}

/// 20,000 distinct keys (one request each).
fn twenty_thousand_keys() -> Trace {
    let mut trace = Trace::generate(&GenerateSpec {
        requests: 20_000,
        keys: 20_000,
        ..GenerateSpec::default()
    })
    .unwrap();
    for (i, r) in trace.requests.iter_mut().enumerate() {
        if let Some(http) = r.http.as_mut() {
            http.target = format!("/users/u{i}/profile");
        }
    }
    trace
}

#[test]
fn hhttp_moves_at_most_about_one_nth_of_the_keys() {
    let sim = simulator(HHTTP);
    let trace = twenty_thousand_keys();
    for change in [
        Change::Remove("10.0.0.12:80".parse().unwrap()),
        Change::Add("10.0.0.15:80".parse().unwrap(), 1),
    ] {
        let options = SimOptions {
            change: Some(change),
            ..SimOptions::default()
        };
        let report = sim.run(&trace, &options).unwrap();
        let moved = report.change.expect("a change report");
        assert_eq!(moved.keys, 20_000);
        let n = moved.servers_before.max(moved.servers_after) as f64;
        println!(
            "{change}: {} of {} keys moved ({:.4}), 1/n = {:.4}",
            moved.moved,
            moved.keys,
            moved.moved_share,
            1.0 / n
        );
        assert!(
            moved.moved_share <= 1.0 / n + 0.01,
            "{change}: {} of {} keys moved ({:.4}), 1/n = {:.4}",
            moved.moved,
            moved.keys,
            moved.moved_share,
            1.0 / n
        );
        // Rendezvous hashing moves the removed (or added) server's keys
        // and nothing else, so not far below 1/n either.
        assert!(moved.moved_share > 1.0 / n - 0.02, "{change}: {moved:?}");
    }
}

#[test]
fn wlc_shares_follow_weights_5_3_2_under_load() {
    let sim = simulator(WLC);
    let trace = Trace::generate(&GenerateSpec {
        requests: 20_000,
        ..GenerateSpec::default()
    })
    .unwrap();
    // 5,000 requests/s of 20 ms each: about 100 in flight.
    let options = SimOptions {
        rate: Some(5_000.0),
        default_latency: Latency::Exponential(Duration::from_millis(20)),
        ..SimOptions::default()
    };
    let report = sim.run(&trace, &options).unwrap();
    let shares: Vec<f64> = report.servers.iter().map(|s| s.share).collect();
    println!("wlc 5/3/2 shares: {shares:?}");
    for (share, want) in shares.iter().zip([0.5, 0.3, 0.2]) {
        assert!((share - want).abs() < 0.03, "shares {shares:?}");
    }
    assert!(
        report.servers[0].peak > report.servers[2].peak,
        "{report:?}"
    );
}

#[test]
fn the_same_seed_gives_the_same_report_byte_for_byte() {
    let sim = simulator(WLC);
    let trace = Trace::generate(&GenerateSpec {
        requests: 5_000,
        ..GenerateSpec::default()
    })
    .unwrap();
    let run = |seed| {
        let options = SimOptions {
            seed,
            rate: Some(3_000.0),
            default_latency: "exp:15ms".parse().unwrap(),
            ..SimOptions::default()
        };
        let report = sim.run(&trace, &options).unwrap();
        (report.to_json(), report.to_text())
    };
    assert_eq!(run(7), run(7));
    assert_ne!(run(7).0, run(8).0);
}

#[test]
fn maxconn_holds_and_the_queue_takes_the_overflow() {
    let config = r#"
Virtual small {
    listen = 127.0.0.1:8081
    scheduler = phttp
    queue = 100
    queue_timeout = 1s
    server = 10.0.0.1:80 1 maxconn 2
    server = 10.0.0.2:80 1 maxconn 2
    rule = pattern ".*" use server 10.0.0.1:80
    rule = pattern ".*" use server 10.0.0.2:80
}
"#;
    let sim = simulator(config);
    let trace = Trace::parse(&"GET /x\n".repeat(500), "<t>", Default::default()).unwrap();
    // 1,000/s of 5 ms each: about 5 in flight for 4 slots.
    let options = SimOptions {
        rate: Some(1_000.0),
        default_latency: "5ms".parse().unwrap(),
        ..SimOptions::default()
    };
    let report = sim.run(&trace, &options).unwrap();
    assert!(report.servers.iter().all(|s| s.peak <= 2), "{report:?}");
    assert!(report.queued > 0, "{report:?}");
    let served: u64 = report.servers.iter().map(|s| s.requests).sum();
    let r = report.refused;
    assert_eq!(
        served + r.no_server + r.queue_full + r.queue_timeout,
        500,
        "{report:?}"
    );
}

#[test]
fn access_log_traces_replay_with_their_own_times() {
    let sim = simulator(HHTTP);
    let json = (0..30)
        .map(|i| {
            format!(
                r#"{{"time":"2026-11-29T23:16:{:02}.{:03}Z","client":"127.0.0.1:5000","service":"users","rule":0,"server":"10.0.0.10:80","method":"GET","target":"/users/u{i}/x","protocol":"HTTP/1.1","status":200,"bytes_in":80,"bytes_out":10,"connect_ms":0.400,"first_byte_ms":1.000,"total_ms":1.200,"retries":0,"end":"done"}}"#,
                i / 10,
                i % 10 * 100
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    let trace = Trace::parse(&json, "<json>", Default::default()).unwrap();
    let report = sim.run(&trace, &SimOptions::default()).unwrap();
    assert_eq!(report.arrivals, "the trace's times");
    assert_eq!(report.rules[0].hits, 30);
    // The last arrival is 2.9 s after the first, then 10 ms of work.
    assert_eq!(report.simulated_ms, 2910.0);
}

#[test]
fn the_plugin_example_runs_its_own_scheduler() {
    let out = Command::new(common::example("sim_plugin"))
        .arg("--json")
        .output()
        .expect("run sim_plugin");
    assert!(out.status.success(), "{out:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(report["scheduler"], "spill");
    let requests: Vec<u64> = report["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["requests"].as_u64().unwrap())
        .collect();
    assert_eq!(requests.iter().sum::<u64>(), 5_000);
    assert!(requests.windows(2).all(|w| w[0] >= w[1]), "{requests:?}");
}

#[test]
fn the_cli_names_the_file_and_line_of_a_bad_trace_or_config() {
    let dir = common::TempDir::new("sim");
    let config = dir.join("users.conf");
    std::fs::write(&config, HHTTP).unwrap();
    let trace = dir.join("trace.txt");
    std::fs::write(
        &trace,
        "GET /users/a/\n# a comment\nGET /users/b/ host extra\n",
    )
    .unwrap();
    let sim = |args: &[&std::ffi::OsStr]| {
        Command::new(common::example("ktcpvs-sim"))
            .args(args)
            .output()
            .unwrap()
    };
    let out = sim(&["-f".as_ref(), config.as_os_str(), trace.as_os_str()]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:3: ", trace.display())),
        "{stderr}"
    );

    std::fs::write(&trace, "GET /users/a/\n").unwrap();
    std::fs::write(
        &config,
        HHTTP.replace("scheduler = hhttp", "scheduler = nope"),
    )
    .unwrap();
    let out = sim(&["-f".as_ref(), config.as_os_str(), trace.as_os_str()]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:2:", config.display())),
        "{stderr}"
    );

    std::fs::write(&config, HHTTP).unwrap();
    let out = sim(&[
        "-f".as_ref(),
        config.as_os_str(),
        trace.as_os_str(),
        "--remove".as_ref(),
        "10.0.0.10:80".as_ref(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("keys moved: "), "{stdout}");
}
