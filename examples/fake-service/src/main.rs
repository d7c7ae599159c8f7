//! `fake-service`: a tiny HTTP service for trying the mesh locally.
//!
//! Run it with `NAME=web UPSTREAM_URIS=http://localhost:1234 cargo run -p fake-service`; see the library
//! documentation for what it answers. It stops on SIGTERM or SIGINT with exit code 0.

use std::process::ExitCode;

fn main() -> ExitCode {
    let config = match fake_service::Config::from_env(|key| std::env::var(key).ok()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("fake-service: {err}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("fake-service: starting the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!(
        "fake-service: {} listening on {} with {} upstream(s)",
        config.name,
        config.listen_addr,
        config.upstream_uris.len()
    );
    match runtime.block_on(fake_service::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("fake-service: {err}");
            ExitCode::FAILURE
        }
    }
}
