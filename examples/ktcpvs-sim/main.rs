//! `ktcpvs-sim`: replays a request trace through a configuration's
//! scheduler on a virtual clock and prints where the requests went (per
//! server and rule), the peak concurrency per server, and with `--remove`
//! or `--add` the share of keys that move. A thin command line over
//! [`ktcpvs::sim`]; the manual is `docs/simulator.md`.
//!
//! Exit status: 0 success; 1 a configuration, trace or option refused
//! (the message names the file and line); 2 usage error.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use ktcpvs::sim::{Change, GenerateSpec, Latency, SimOptions, Simulator, Trace, TraceFormat};

/// Replays a request trace through a ktcpvs scheduler, on a virtual clock.
#[derive(Debug, Parser)]
#[command(name = "ktcpvs-sim", version)]
struct Cli {
    /// The configuration file (the language of `ktcpvsd -f`).
    #[arg(short = 'f', long = "config", value_name = "FILE")]
    config: PathBuf,
    /// The trace: an access log (common or JSON) or `METHOD TARGET [HOST]`
    /// lines. Not with --generate.
    #[arg(value_name = "TRACE", required_unless_present = "generate")]
    trace: Option<PathBuf>,
    /// How the trace is written: auto, common, json or plain.
    #[arg(long, default_value = "auto")]
    format: TraceFormat,
    /// Generate N requests instead of reading a trace.
    #[arg(long, value_name = "N", conflicts_with = "trace")]
    generate: Option<usize>,
    /// Distinct keys of the generated trace.
    #[arg(long, value_name = "K", default_value_t = 1000)]
    keys: usize,
    /// Target of the generated requests; `{key}` becomes k0, k1, ...
    #[arg(long, value_name = "TARGET", default_value = "/users/{key}/profile")]
    template: String,
    /// The service to replay into (needed when the file has several).
    #[arg(short = 's', long, value_name = "NAME")]
    service: Option<String>,
    /// Seeds every random draw; the same seed and inputs print the same.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Poisson arrivals at R requests/s (default: the trace's times when
    /// every line has one, else 1000/s).
    #[arg(long, value_name = "R")]
    rate: Option<f64>,
    /// Server latency: SPEC for every server, or ADDR:PORT=SPEC for one;
    /// SPEC is 20ms, exp:20ms or uniform:10ms..30ms (default 10ms).
    /// Repeatable.
    #[arg(long, value_name = "[ADDR=]SPEC")]
    latency: Vec<String>,
    /// Requests ADDR:PORT works on at once; more wait in its backlog.
    /// Repeatable.
    #[arg(long, value_name = "ADDR=N")]
    capacity: Vec<String>,
    /// Host of HTTP/1.1 requests whose line names none.
    #[arg(long, default_value = ktcpvs::sim::DEFAULT_HOST)]
    host: String,
    /// Replay again without this server and report the keys that move.
    #[arg(long, value_name = "ADDR:PORT", conflicts_with = "add")]
    remove: Option<SocketAddr>,
    /// Replay again with this server added (to every rule) and report the
    /// keys that move.
    #[arg(long, value_name = "ADDR:PORT[,WEIGHT]")]
    add: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// `ADDR:PORT=VALUE`.
fn addr_value<T: std::str::FromStr>(text: &str, what: &str) -> Result<(SocketAddr, T), String>
where
    T::Err: std::fmt::Display,
{
    let (addr, value) = text
        .split_once('=')
        .ok_or_else(|| format!("--{what} {text:?}: expected ADDR:PORT=VALUE"))?;
    let addr = addr
        .parse()
        .map_err(|e| format!("--{what} {text:?}: {addr:?}: {e}"))?;
    let value = value
        .parse()
        .map_err(|e| format!("--{what} {text:?}: {e}"))?;
    Ok((addr, value))
}

/// The simulation options the command line asks for.
fn options(cli: &Cli) -> Result<SimOptions, String> {
    let mut options = SimOptions {
        seed: cli.seed,
        service: cli.service.clone(),
        rate: cli.rate,
        host: cli.host.clone(),
        ..SimOptions::default()
    };
    if let Some(rate) = cli.rate.filter(|r| !(r.is_finite() && *r > 0.0)) {
        return Err(format!("--rate {rate}: must be a positive number"));
    }
    for spec in &cli.latency {
        if spec.contains('=') {
            let (addr, latency) = addr_value::<Latency>(spec, "latency")?;
            options.latency.insert(addr, latency);
        } else {
            options.default_latency = spec.parse().map_err(|e| format!("--latency: {e}"))?;
        }
    }
    for spec in &cli.capacity {
        let (addr, n) = addr_value::<u32>(spec, "capacity")?;
        options.capacity.insert(addr, n);
    }
    options.change = match (cli.remove, &cli.add) {
        (Some(addr), _) => Some(Change::Remove(addr)),
        (None, Some(add)) => {
            let (addr, weight) = match add.split_once(',') {
                Some((a, w)) => (a, w.parse().map_err(|e| format!("--add {add:?}: {e}"))?),
                None => (add.as_str(), 1),
            };
            let addr = addr.parse().map_err(|e| format!("--add {add:?}: {e}"))?;
            Some(Change::Add(addr, weight))
        }
        (None, None) => None,
    };
    Ok(options)
}

fn run(cli: &Cli) -> Result<String, String> {
    let options = options(cli)?;
    let sim = Simulator::from_file(ktcpvs::builtin_schedulers(), &cli.config)
        .map_err(|e| e.to_string())?;
    let trace = match (&cli.trace, cli.generate) {
        (Some(path), _) => Trace::read(path, cli.format),
        (None, Some(requests)) => Trace::generate(&GenerateSpec {
            requests,
            keys: cli.keys,
            template: cli.template.clone(),
            seed: cli.seed,
        }),
        (None, None) => return Err("a trace file or --generate N is needed".to_string()),
    }
    .map_err(|e| e.to_string())?;
    let report = sim.run(&trace, &options).map_err(|e| e.to_string())?;
    Ok(if cli.json {
        report.to_json()
    } else {
        report.to_text()
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("ktcpvs-sim: {message}");
            ExitCode::from(1)
        }
    }
}
