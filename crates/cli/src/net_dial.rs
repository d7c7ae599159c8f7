//! `consul-ecs net-dial <host>:<port>`: a TCP probe for ECS health checks.
//!
//! Exit codes, as upstream: 0 when the connection opens, 1 for a bad invocation, 2 when the connection fails.

use std::net::TcpStream;
use std::process::ExitCode;

/// Arguments of `net-dial`.
#[derive(clap::Args)]
#[command(
    after_help = "Attempts to open a TCP connection to <host>:<port>.\nAn exit code of 0 is returned if the connection succeeds.\nA non zero exit code is returned if the connection fails for any reason."
)]
pub(crate) struct Args {
    /// The address to dial, as host:port (host may be a name).
    #[arg(value_name = "HOST:PORT", num_args = 0..)]
    target: Vec<String>,
}

/// Dials the target once and reports the outcome through the exit code.
pub(crate) fn run(args: &Args) -> ExitCode {
    let [target] = args.target.as_slice() else {
        eprintln!("invalid invocation, expected one positional argument: <host>:<port>");
        return ExitCode::from(1);
    };
    match TcpStream::connect(target.as_str()) {
        Ok(stream) => {
            if let Err(err) = stream.shutdown(std::net::Shutdown::Both) {
                eprintln!("warning: closing the connection: {err}");
            }
            ExitCode::SUCCESS
        }
        Err(_) => ExitCode::from(2),
    }
}
