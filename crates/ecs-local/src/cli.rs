//! The `local` commands: `run`, `ps`, `logs`, `stop`, and the hidden commands the runtime invokes on
//! itself (`supervise`, `shim`, `shim-init`, `shim-join`, `fake-service`).
//!
//! `run` stays in the foreground by default: it prints each container's output prefixed
//! `[<family>-<task8>/<container>]`, stops every task on Ctrl-C or SIGTERM (a second signal kills
//! them), and exits 0 when every task ended because it was asked to or because its essential
//! containers exited 0. `run --detach` starts one supervisor process per task (its own session, so
//! it outlives the shell), waits until the task is set up, prints the task ID and returns; the
//! supervisor's own messages go to `<state-dir>/supervisors/<task-id>.log`. `ps`, `logs` and `stop`
//! read the state directory, so they work with either.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use clap::{Args, Subcommand};

use crate::runtime::{RunningTask, Runtime, STOPPED_BY_USER, SupervisorRequest};
use crate::state::{DEFAULT_STATE_DIR, StateDir, Status, TaskRecord};
use crate::taskdef::TaskDefinition;
use crate::{Launcher, RunSettings, TaskOptions};

/// How long `run --detach` waits for a supervisor to report the task started.
const DETACH_PATIENCE: Duration = Duration::from_secs(120);

/// The `local` commands.
#[derive(Debug, Subcommand)]
pub enum LocalCommand {
    /// Runs ECS task definitions as local processes (in the foreground unless --detach)
    Run(Box<RunArgs>),
    /// Lists tasks
    Ps(PsArgs),
    /// Prints the output of a task's containers
    Logs(LogsArgs),
    /// Stops tasks (SIGTERM in reverse dependency order, SIGKILL after stopTimeout)
    Stop(StopArgs),
    /// Supervises one task (started by `run --detach`)
    #[command(hide = true)]
    Supervise(HiddenArgs),
    /// Sets up and runs one container (started by a supervisor)
    #[command(hide = true)]
    Shim(HiddenArgs),
    /// A container's PID 1 (started by the shim)
    #[command(hide = true)]
    ShimInit(HiddenArgs),
    /// Runs a health check inside a container (started by a supervisor)
    #[command(hide = true)]
    ShimJoin(HiddenArgs),
    /// The example app behind the fake-service images
    #[command(hide = true)]
    FakeService(HiddenArgs),
}

/// Arguments of the hidden commands: a label for `ps`, otherwise ignored (instructions come on
/// standard input).
#[derive(Debug, Args)]
pub struct HiddenArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    rest: Vec<String>,
}

/// Where state lives.
#[derive(Debug, Args)]
pub struct StateArgs {
    /// The state directory (task records, logs, volumes)
    #[arg(long, env = "CONSUL_ECS_LOCAL_STATE_DIR", default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
}

/// `local run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Task definition files (RegisterTaskDefinition or DescribeTaskDefinition JSON)
    #[arg(required = true, value_name = "TASKDEF.json")]
    pub task_definitions: Vec<PathBuf>,
    /// The state directory.
    #[command(flatten)]
    pub state: StateArgs,
    /// Maps an image to a program: IMAGE=PROGRAM (repeatable; IMAGE may end in *)
    #[arg(long = "image-map", value_name = "IMAGE=PROGRAM")]
    pub image_map: Vec<String>,
    /// A JSON image map: {"images": {"IMAGE": {"entryPoint": [...], "command": [...], ...}}}
    #[arg(long, value_name = "FILE")]
    pub image_map_file: Option<PathBuf>,
    /// Starts the tasks under background supervisors and returns
    #[arg(short, long)]
    pub detach: bool,
    /// The host bridge tasks attach to
    #[arg(long, default_value = crate::network::DEFAULT_BRIDGE)]
    pub bridge: String,
    /// The range task addresses come from (the bridge takes the first)
    #[arg(long, default_value = crate::network::DEFAULT_SUBNET)]
    pub subnet: String,
    /// The cluster named in task ARNs and metadata
    #[arg(long, default_value = "default")]
    pub cluster: String,
    /// The region named in ARNs and given to containers (default: AWS_REGION, else us-east-1)
    #[arg(long)]
    pub region: Option<String>,
    /// The account named in ARNs
    #[arg(long, default_value = "123456789012")]
    pub account: String,
    /// Serves task-role credentials obtained with STS AssumeRole (AWS_ENDPOINT_URL is honoured)
    #[arg(long)]
    pub assume_task_role: bool,
    /// Adds a variable to every container: KEY=VALUE (repeatable)
    #[arg(long = "env", short = 'e', value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Does not copy container output to standard output (foreground only)
    #[arg(short, long)]
    pub quiet: bool,
}

/// `local ps`.
#[derive(Debug, Args)]
pub struct PsArgs {
    /// The state directory.
    #[command(flatten)]
    pub state: StateArgs,
    /// Includes stopped tasks
    #[arg(short, long)]
    pub all: bool,
    /// Prints the task records as JSON
    #[arg(long)]
    pub json: bool,
}

/// `local logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The task (its ID or a unique prefix)
    pub task: String,
    /// One container (default: all, each line prefixed with its name)
    pub container: Option<String>,
    /// Keeps printing new output until the task stops
    #[arg(short, long)]
    pub follow: bool,
    /// The state directory.
    #[command(flatten)]
    pub state: StateArgs,
}

/// `local stop`.
#[derive(Debug, Args)]
pub struct StopArgs {
    /// Tasks to stop (IDs or unique prefixes)
    pub tasks: Vec<String>,
    /// Stops every running task of the state directory
    #[arg(long, conflicts_with = "tasks")]
    pub all: bool,
    /// The state directory.
    #[command(flatten)]
    pub state: StateArgs,
}

/// Runs a `local` command. `self_args` are the arguments that lead from the executable to the
/// `local` command table (`["local"]` for `consul-ecs`), for the runtime's calls to itself.
pub fn run(command: LocalCommand, self_args: &[&str]) -> ExitCode {
    match command {
        // The shim roles enter namespaces, which needs a single-threaded process: they run before
        // anything else is set up.
        LocalCommand::Shim(_) => crate::sys::shim::shim_main(),
        LocalCommand::ShimInit(_) => crate::sys::shim::init_main(),
        LocalCommand::ShimJoin(_) => crate::sys::shim::join_main(),
        LocalCommand::FakeService(_) => fake_service_main(),
        LocalCommand::Ps(args) => ps(&args),
        LocalCommand::Logs(args) => logs(&args),
        LocalCommand::Stop(args) => stop(&args),
        LocalCommand::Run(args) => {
            init_tracing();
            match Launcher::current(self_args) {
                Ok(launcher) if args.detach => run_detached(&args, &launcher),
                Ok(launcher) => block_on(run_foreground(&args, launcher)),
                Err(e) => failure(&format!("finding the running executable: {e}")),
            }
        }
        LocalCommand::Supervise(_) => {
            init_tracing();
            match Launcher::current(self_args) {
                Ok(launcher) => block_on(supervise(launcher)),
                Err(e) => failure(&format!("finding the running executable: {e}")),
            }
        }
    }
}

fn failure(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::FAILURE
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CONSUL_ECS_LOCAL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

fn block_on(future: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(future),
        Err(e) => failure(&format!("starting the async runtime: {e}")),
    }
}

fn fake_service_main() -> ExitCode {
    let config = match fake_service::Config::from_env(|k| std::env::var(k).ok()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("fake-service: {e}");
            return ExitCode::from(2);
        }
    };
    eprintln!(
        "fake-service: {} listening on {} with {} upstream(s)",
        config.name,
        config.listen_addr,
        config.upstream_uris.len()
    );
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return failure(&format!("starting the async runtime: {e}")),
    };
    match runtime.block_on(fake_service::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => failure(&format!("fake-service: {e}")),
    }
}

impl RunArgs {
    fn settings(&self) -> RunSettings {
        RunSettings {
            state_dir: self.state.state_dir.clone(),
            bridge: self.bridge.clone(),
            subnet: self.subnet.clone(),
            image_map: self.image_map.clone(),
            image_map_file: self.image_map_file.clone(),
            cluster: self.cluster.clone(),
            region: self.region.clone(),
            account: self.account.clone(),
            assume_task_role: self.assume_task_role,
        }
    }

    fn options(&self) -> Result<TaskOptions, String> {
        let mut options = TaskOptions::default();
        for pair in &self.env {
            match pair.split_once('=') {
                Some((key, value)) if !key.is_empty() => {
                    options.environment.push((key.to_owned(), value.to_owned()));
                }
                _ => return Err(format!("--env {pair:?} is not KEY=VALUE")),
            }
        }
        Ok(options)
    }
}

/// Reads and checks every definition before anything starts.
fn load_definitions(
    args: &RunArgs,
    runtime: &Runtime,
    options: &TaskOptions,
) -> Result<Vec<(PathBuf, serde_json::Value, TaskDefinition)>, String> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for path in &args.task_definitions {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) => {
                errors.push(format!("{}: {e}", path.display()));
                continue;
            }
        };
        let value: serde_json::Value = match serde_json::from_str(&text) {
            Ok(value) => value,
            Err(e) => {
                errors.push(format!("{}: not valid JSON: {e}", path.display()));
                continue;
            }
        };
        let checked = TaskDefinition::from_value(&value)
            .map_err(|e| e.to_string())
            .and_then(|def| {
                runtime
                    .check(&def, options)
                    .map(|()| def)
                    .map_err(|e| e.to_string())
            });
        match checked {
            Ok(def) => out.push((path.clone(), value, def)),
            Err(e) => errors.push(format!("{}: {e}", path.display())),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors.join("\n"))
    }
}

async fn run_foreground(args: &RunArgs, launcher: Launcher) -> ExitCode {
    let config = match args.settings().runtime_config(launcher, !args.quiet) {
        Ok(config) => config,
        Err(e) => return failure(&e),
    };
    let options = match args.options() {
        Ok(options) => options,
        Err(e) => return failure(&e),
    };
    let runtime = match Runtime::new(config) {
        Ok(runtime) => runtime,
        Err(e) => return failure(&e.to_string()),
    };
    let definitions = match load_definitions(args, &runtime, &options) {
        Ok(definitions) => definitions,
        Err(e) => return failure(&e),
    };
    let mut tasks: Vec<RunningTask> = Vec::new();
    for (path, _, def) in &definitions {
        match runtime.start_task(def, options.clone()).await {
            Ok(task) => {
                announce(&task, &def.family);
                tasks.push(task);
            }
            Err(e) => {
                eprintln!("error: {}: {e}", path.display());
                for task in tasks {
                    task.stop().await;
                }
                return ExitCode::FAILURE;
            }
        }
    }
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        for task in tasks {
            task.stop().await;
        }
        return failure("cannot listen for signals");
    };
    let handles: Vec<_> = tasks
        .iter()
        .map(|t| (t.id().to_owned(), t.subscribe()))
        .collect();
    let mut waits = tokio::task::JoinSet::new();
    for task in tasks {
        waits.spawn(task.wait());
    }
    let mut signals = 0;
    let mut finished = Vec::new();
    loop {
        tokio::select! {
            done = waits.join_next() => match done {
                Some(Ok(record)) => finished.push(record),
                Some(Err(_)) => {}
                None => break,
            },
            _ = term.recv() => signals += 1,
            _ = int.recv() => signals += 1,
        }
        if signals == 1 {
            signals += 1;
            eprintln!("stopping tasks (signal again to kill them)");
            for (id, _) in &handles {
                let _ = std::fs::write(runtime.state().stop_marker(id), b"");
            }
        } else if signals > 2 {
            signals = 2;
            eprintln!("killing tasks");
            for (_, record) in &handles {
                for container in &record.borrow().containers {
                    if let Some(process) = container.process {
                        process.kill();
                    }
                }
            }
        }
    }
    let mut ok = true;
    for record in &finished {
        ok &= summarize(record);
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn announce(task: &RunningTask, family: &str) {
    let ip = task
        .ip()
        .map_or_else(|| "host network".to_owned(), |ip| ip.to_string());
    eprintln!("task {} ({family}) started at {ip}", task.id());
}

/// Prints how a task ended; true when it ended as asked or with its essential containers at 0.
fn summarize(record: &TaskRecord) -> bool {
    let codes: Vec<String> = record
        .containers
        .iter()
        .map(|c| match c.exit_code {
            Some(code) => format!("{}={code}", c.name),
            None => format!("{}=not started", c.name),
        })
        .collect();
    let reason = record.stopped_reason.as_deref().unwrap_or("stopped");
    eprintln!(
        "task {} ({}) stopped: {reason} [{}]",
        record.id,
        record.family,
        codes.join(" ")
    );
    reason == STOPPED_BY_USER
        || record
            .containers
            .iter()
            .filter(|c| c.essential)
            .all(|c| c.exit_code == Some(0))
}

fn run_detached(args: &RunArgs, launcher: &Launcher) -> ExitCode {
    let settings = args.settings();
    let options = match args.options() {
        Ok(options) => options,
        Err(e) => return failure(&e),
    };
    let config = match settings.runtime_config(launcher.clone(), false) {
        Ok(config) => config,
        Err(e) => return failure(&e),
    };
    let runtime = match Runtime::new(config) {
        Ok(runtime) => runtime,
        Err(e) => return failure(&e.to_string()),
    };
    let definitions = match load_definitions(args, &runtime, &options) {
        Ok(definitions) => definitions,
        Err(e) => return failure(&e),
    };
    let mut started: Vec<String> = Vec::new();
    for (path, value, _) in definitions {
        let mut task_options = options.clone();
        let id = uuid::Uuid::new_v4().simple().to_string();
        task_options.task_id = Some(id.clone());
        let request = SupervisorRequest {
            settings: settings.clone(),
            definition: value,
            options: task_options,
        };
        match spawn_supervisor(launcher, &settings.state_dir, &id, &request) {
            Ok(line) => {
                println!("{id}");
                eprintln!("{line}");
                started.push(id);
            }
            Err(e) => {
                eprintln!("error: {}: {e}", path.display());
                let state = runtime.state();
                for id in &started {
                    let _ = crate::stop_recorded_task(state, id, Duration::from_secs(120));
                }
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}

/// Starts a supervisor and waits for its first line: `started …` or `error: …`.
fn spawn_supervisor(
    launcher: &Launcher,
    state_dir: &Path,
    id: &str,
    request: &SupervisorRequest,
) -> Result<String, String> {
    let log_dir = state_dir.join("supervisors");
    std::fs::create_dir_all(&log_dir).map_err(|e| format!("{}: {e}", log_dir.display()))?;
    let log_path = log_dir.join(format!("{id}.log"));
    let log =
        std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    let mut child = std::process::Command::new(&launcher.program)
        .args(&launcher.args)
        .arg("supervise")
        .arg(id)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("starting a supervisor: {e}"))?;
    let text = serde_json::to_string(request).map_err(|e| e.to_string())?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(text.as_bytes())
            .map_err(|e| format!("instructing the supervisor: {e}"))?;
    }
    let Some(stdout) = child.stdout.take() else {
        return Err("the supervisor has no output".to_owned());
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    match rx.recv_timeout(DETACH_PATIENCE) {
        Ok(line) if line.starts_with("started") => Ok(line.trim().to_owned()),
        Ok(line) => {
            let _ = child.wait();
            let message = line.trim().trim_start_matches("error: ").to_owned();
            if message.is_empty() {
                Err(format!(
                    "the supervisor ended without starting the task (see {})",
                    log_path.display()
                ))
            } else {
                Err(message)
            }
        }
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(format!(
                "the supervisor did not report within {DETACH_PATIENCE:?} (see {})",
                log_path.display()
            ))
        }
    }
}

async fn supervise(launcher: Launcher) -> ExitCode {
    // A session of its own: the shell that ran `run --detach` may go away.
    let _ = nix::unistd::setsid();
    let mut input = String::new();
    if let Err(e) = std::io::Read::read_to_string(&mut std::io::stdin(), &mut input) {
        return report_failure(&format!("reading instructions: {e}"));
    }
    let request: SupervisorRequest = match serde_json::from_str(&input) {
        Ok(request) => request,
        Err(e) => return report_failure(&format!("decoding instructions: {e}")),
    };
    let config = match request.settings.runtime_config(launcher, false) {
        Ok(config) => config,
        Err(e) => return report_failure(&e),
    };
    let runtime = match Runtime::new(config) {
        Ok(runtime) => runtime,
        Err(e) => return report_failure(&e.to_string()),
    };
    let def = match TaskDefinition::from_value(&request.definition) {
        Ok(def) => def,
        Err(e) => return report_failure(&e.to_string()),
    };
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        return report_failure("cannot listen for signals");
    };
    let task = match runtime.start_task(&def, request.options).await {
        Ok(task) => task,
        Err(e) => return report_failure(&e.to_string()),
    };
    let ip = task
        .ip()
        .map_or_else(|| "host network".to_owned(), |ip| ip.to_string());
    println!("started task {} ({}) at {ip}", task.id(), def.family);
    let _ = std::io::stdout().flush();
    let marker = runtime.state().stop_marker(task.id());
    let mut wait = Box::pin(task.wait());
    loop {
        tokio::select! {
            record = &mut wait => {
                tracing::info!(reason = ?record.stopped_reason, "task ended");
                return ExitCode::SUCCESS;
            }
            _ = term.recv() => { let _ = std::fs::write(&marker, b""); }
            _ = int.recv() => { let _ = std::fs::write(&marker, b""); }
            // Losing the terminal is no reason to stop.
            _ = hup.recv() => {}
        }
    }
}

fn report_failure(message: &str) -> ExitCode {
    println!("error: {message}");
    let _ = std::io::stdout().flush();
    tracing::error!("{message}");
    ExitCode::FAILURE
}

fn ps(args: &PsArgs) -> ExitCode {
    let state = StateDir::new(&args.state.state_dir);
    let records: Vec<TaskRecord> = state
        .list()
        .into_iter()
        .filter(|r| args.all || r.is_active())
        .collect();
    if args.json {
        return match serde_json::to_string_pretty(&records) {
            Ok(text) => print_out(&format!("{text}\n")),
            Err(e) => failure(&e.to_string()),
        };
    }
    let mut out = String::from(
        "TASK ID                           FAMILY:REV      STATUS    IP               CONTAINERS\n",
    );
    for record in &records {
        let mut status = record.last_status.as_str().to_owned();
        if record.is_active() && !record.supervisor.is_some_and(|p| p.is_alive()) {
            status.push('!');
        }
        let containers: Vec<String> = record
            .containers
            .iter()
            .map(|c| {
                let mut text = format!("{}:{}", c.name, c.last_status.as_str());
                if let Some(health) = c.health {
                    text.push_str(&format!("/{}", health.as_str()));
                }
                if let Some(code) = c.exit_code {
                    text.push_str(&format!("({code})"));
                }
                text
            })
            .collect();
        let ip = record
            .ip
            .map_or_else(|| "host".to_owned(), |ip| ip.to_string());
        out.push_str(&format!(
            "{:<33} {:<15} {:<9} {:<16} {}\n",
            record.id,
            format!("{}:{}", record.family, record.revision),
            status,
            ip,
            containers.join(" ")
        ));
    }
    if records
        .iter()
        .any(|r| r.is_active() && !r.supervisor.is_some_and(|p| p.is_alive()))
    {
        out.push_str("! its supervisor is gone; `stop` cleans up what is left\n");
    }
    print_out(&out)
}

fn print_out(text: &str) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => failure(&format!("writing to standard output: {e}")),
    }
}

fn logs(args: &LogsArgs) -> ExitCode {
    let state = StateDir::new(&args.state.state_dir);
    let record = match state.find(&args.task) {
        Ok(record) => record,
        Err(e) => return failure(&e.to_string()),
    };
    let names: Vec<String> = match &args.container {
        Some(name) if record.container(name).is_some() => vec![name.clone()],
        Some(name) => {
            return failure(&format!(
                "task {} has no container named {name:?}",
                record.id
            ));
        }
        None => record.containers.iter().map(|c| c.name.clone()).collect(),
    };
    let files: Vec<(String, PathBuf)> = names
        .into_iter()
        .map(|name| {
            let path = state.log_path(&record.id, &name);
            (name, path)
        })
        .collect();
    let id = record.id.clone();
    let done = || state.read(&id).map_or(true, |r| !r.is_active());
    let mut out = std::io::stdout().lock();
    match crate::logs::print_logs(&files, args.follow, &done, &mut out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => failure(&e.to_string()),
    }
}

fn stop(args: &StopArgs) -> ExitCode {
    if let Err(e) = crate::check_privileges() {
        return failure(&e.to_string());
    }
    let state = StateDir::new(&args.state.state_dir);
    let targets: Vec<TaskRecord> = if args.all {
        state
            .list()
            .into_iter()
            .filter(TaskRecord::is_active)
            .collect()
    } else if args.tasks.is_empty() {
        return failure("name the tasks to stop, or use --all");
    } else {
        let mut targets = Vec::new();
        for task in &args.tasks {
            match state.find(task) {
                Ok(record) => targets.push(record),
                Err(e) => return failure(&e.to_string()),
            }
        }
        targets
    };
    let results: Vec<(String, Result<TaskRecord, String>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = targets
            .iter()
            .map(|record| {
                let state = &state;
                // Enough for every container to use its whole stopTimeout one after the other.
                let patience = Duration::from_secs_f64(
                    record
                        .containers
                        .iter()
                        .map(|c| c.stop_timeout_secs)
                        .sum::<f64>()
                        + 30.0,
                );
                let id = record.id.clone();
                (
                    id.clone(),
                    scope.spawn(move || {
                        crate::stop_recorded_task(state, &id, patience).map_err(|e| e.to_string())
                    }),
                )
            })
            .collect();
        handles
            .into_iter()
            .map(|(id, handle)| {
                let result = handle
                    .join()
                    .unwrap_or_else(|_| Err("the stopping thread failed".to_owned()));
                (id, result)
            })
            .collect()
    });
    let mut ok = true;
    for (id, result) in results {
        match result {
            Ok(record) if record.last_status == Status::Stopped => {
                println!("{id}");
            }
            Ok(_) => {
                ok = false;
                eprintln!("error: {id}: still running");
            }
            Err(e) => {
                ok = false;
                eprintln!("error: {id}: {e}");
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
