//! `consul-dataplane`: the sidecar binary. Reads the config (file, `DP_*` env vars, Go-style flags)
//! without binding anything, exits 2 on a bad config, then sizes the runtime from the cgroup CPU
//! quota and runs until SIGTERM/SIGINT and the drain that follows (exit 0), or a fatal error
//! (exit 1).

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-version" || a == "--version") {
        println!("consul-dataplane (rust) {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    if args
        .iter()
        .any(|a| a == "-h" || a == "-help" || a == "--help")
    {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let check_health = args
        .iter()
        .any(|a| a == "-check-proxy-health" || a == "--check-proxy-health");
    let args: Vec<String> = args
        .into_iter()
        .filter(|a| a != "-check-proxy-health" && a != "--check-proxy-health")
        .collect();
    let config = match dataplane::Config::load(&args, |name| std::env::var(name).ok()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("consul-dataplane: {e}");
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    if check_health {
        return check_proxy_health(config.proxy.admin_addr);
    }
    init_tracing(&config);
    let threads =
        dataplane::worker_threads(config.concurrency, std::path::Path::new("/sys/fs/cgroup"));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .max_blocking_threads(2)
        .thread_stack_size(256 * 1024)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("consul-dataplane: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(worker_threads = threads, "starting");
    match runtime.block_on(dataplane::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "consul-dataplane failed");
            ExitCode::FAILURE
        }
    }
}

const USAGE: &str = "usage: consul-dataplane -config-file <path.json> [-flag value ...]
  flags use consul-dataplane's names (-addresses, -proxy-id, -proxy-node-name, -log-level,
  -envoy-ready-bind-port, -envoy-drain-time-seconds, -graceful-port, ...); each also reads its DP_* env var.
  -check-proxy-health  GET http://<admin address>/ready; exit 0 when ready, 1 otherwise
  -version             print the version";

fn init_tracing(config: &dataplane::Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("DP_LOG_FILTER")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if config.log_json {
        let _ = builder.json().try_init();
    } else {
        let _ = builder.with_ansi(false).try_init();
    }
}

/// `-check-proxy-health`: one HTTP/1.0 GET of `/ready` with a 3 s bound.
fn check_proxy_health(admin: std::net::SocketAddr) -> ExitCode {
    use std::io::{Read, Write};
    use std::time::Duration;
    let timeout = Duration::from_secs(3);
    let probe = || -> std::io::Result<bool> {
        let mut s = std::net::TcpStream::connect_timeout(&admin, timeout)?;
        s.set_read_timeout(Some(timeout))?;
        s.set_write_timeout(Some(timeout))?;
        s.write_all(b"GET /ready HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
        let mut head = [0u8; 12];
        s.read_exact(&mut head)?;
        Ok(head.starts_with(b"HTTP/1.") && (head[9] == b'2' || head[9] == b'3'))
    };
    match probe() {
        Ok(true) => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}
