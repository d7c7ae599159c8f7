//! The container shim: the small processes that give a container its own view of the machine.
//!
//! Three roles, each a hidden subcommand of the runtime's executable, reading its instructions as
//! JSON on standard input (so secrets in the environment never touch the disk):
//!
//! * **shim** (one per container, started by the supervisor): joins the task's network namespace,
//!   enters new mount, UTS and PID namespaces, builds the container's root (below), `chroot`s into it,
//!   and starts the init. It forwards the signals it receives to the init and exits with its status.
//! * **init** (PID 1 of the container's PID namespace): applies `ulimits`, switches to the container's
//!   user, starts the container's program, forwards signals to it, reaps orphans, and exits with the
//!   program's status (128+N when signal N ended it). When PID 1 exits the kernel kills whatever is
//!   left in the namespace, and the init asks for SIGKILL if the shim dies, so killing the shim is
//!   enough to end the whole container. Every container thus behaves as if `initProcessEnabled` were
//!   set: the program is not PID 1 and keeps default signal dispositions.
//! * **join** (one per health check run): enters a running container's network, UTS and mount
//!   namespaces and root, switches to its user and runs the check command in place.
//!
//! **The container's root.** A tmpfs is mounted on an empty directory of the task (in the new mount
//! namespace, so nobody else sees it). Every entry of the host's `/` is recreated in it: directories
//! as recursive bind mounts, symbolic links as the same links. Paths that do not exist on the host,
//! such as `/consul`, are then plain directories of the tmpfs, and the task's volumes are bind-mounted
//! onto them. A mount point inside an existing host directory (say `/bin/consul-inject`) gets an
//! overlay over that directory whose upper layer lives in the tmpfs, so the host directory is never
//! written. The container's `/etc/hosts`, `/etc/hostname` and `/etc/resolv.conf` are the task's own
//! files bound over the host's. Nothing is mounted in the host's namespace, and everything goes away
//! with the container's last process.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, setns, unshare};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{Gid, Pid, Uid, chdir, chroot, setgid, setgroups, sethostname, setuid};
use serde::{Deserialize, Serialize};

use super::ResolvedUser;

/// The exit code when the container could not be set up (Docker uses 125 for its own failures).
pub(crate) const EXIT_SETUP_FAILED: u8 = 125;
/// The exit code when the program exists but cannot be run.
pub(crate) const EXIT_CANNOT_EXECUTE: u8 = 126;
/// The exit code when the program does not exist.
pub(crate) const EXIT_NOT_FOUND: u8 = 127;

/// What the shim needs to start a container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LaunchSpec {
    /// The task's network namespace file; `None` for host networking.
    pub(crate) netns: Option<PathBuf>,
    /// The container's host name (needs its own namespace, so only with `netns`).
    pub(crate) hostname: Option<String>,
    /// An empty directory the container's root is built on.
    pub(crate) root_dir: PathBuf,
    /// Bind mounts, in order: volumes, then the task's `/etc` files.
    pub(crate) binds: Vec<Bind>,
    /// tmpfs mounts: container path and size in MiB.
    pub(crate) tmpfs: Vec<(String, u64)>,
    /// How to start the init: arguments after `/proc/self/exe`.
    pub(crate) init_args: Vec<String>,
    /// The container's program.
    pub(crate) process: ProcessSpec,
}

/// A bind mount of a host path into the container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Bind {
    /// The host file or directory.
    pub(crate) source: PathBuf,
    /// Where the container sees it.
    pub(crate) target: String,
    /// Whether it is read-only.
    pub(crate) read_only: bool,
}

/// A program to run, and as whom.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ProcessSpec {
    /// The program and its arguments (a program without `/` is looked up in the `PATH` of `env`).
    pub(crate) argv: Vec<String>,
    /// The complete environment.
    pub(crate) env: Vec<(String, String)>,
    /// The working directory.
    pub(crate) cwd: String,
    /// The user.
    pub(crate) user: ResolvedUser,
    /// Resource limits: name, soft, hard.
    pub(crate) rlimits: Vec<(String, u64, u64)>,
    /// The shim's pid (as the host sees it), filled in by the shim for the init.
    #[serde(default)]
    pub(crate) parent_pid: Option<u32>,
}

/// What a health check run needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct JoinSpec {
    /// A process of the container (its shim).
    pub(crate) pid: i32,
    /// The check command.
    pub(crate) process: ProcessSpec,
}

fn fail(context: &str, error: impl std::fmt::Display) -> ExitCode {
    eprintln!("consul-ecs-local: {context}: {error}");
    ExitCode::from(EXIT_SETUP_FAILED)
}

fn read_stdin<T: for<'de> Deserialize<'de>>() -> Result<T, String> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(|e| format!("reading instructions: {e}"))?;
    serde_json::from_str(&text).map_err(|e| format!("decoding instructions: {e}"))
}

/// The Rust runtime ignores SIGPIPE, and an ignored signal stays ignored across `exec`; a handled
/// one does not. Installing a handler (through tokio) gives the next program the default.
fn default_sigpipe_after_exec() {
    if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
    {
        let _guard = runtime.enter();
        let _ = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::pipe());
    }
}

/// Exit code for a wait status: the code, or 128+N for signal N.
fn exit_code(status: WaitStatus) -> Option<u8> {
    match status {
        WaitStatus::Exited(_, code) => Some(u8::try_from(code & 0xff).unwrap_or(1)),
        WaitStatus::Signaled(_, signal, _) => {
            Some(128u8.saturating_add(u8::try_from(signal as i32).unwrap_or(0)))
        }
        _ => None,
    }
}

/// The shim role.
pub(crate) fn shim_main() -> ExitCode {
    let spec: LaunchSpec = match read_stdin() {
        Ok(spec) => spec,
        Err(e) => return fail("shim", e),
    };
    if let Err(e) = enter_container(&spec) {
        return fail("setting up the container", e);
    }
    let mut process = spec.process.clone();
    process.parent_pid = Some(std::process::id());
    let input = serde_json::to_string(&process).unwrap_or_default();
    let mut command = Command::new("/proc/self/exe");
    command.args(&spec.init_args).stdin(Stdio::piped());
    relay(command, Some(input), false)
}

/// Starts `command` and passes it the forwarded signals until it exits; exits with its status.
/// With `reap_all` (PID 1's duty), also reaps every orphan that ends up a child.
///
/// Signals are caught with handlers rather than blocked: the child starts with an empty signal mask,
/// and the dispositions it inherits are handled ones, which `exec` turns back into the defaults
/// (SIGPIPE included, which the Rust runtime would otherwise pass on as ignored).
fn relay(mut command: Command, input: Option<String>, reap_all: bool) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail("starting the signal relay", e),
    };
    runtime.block_on(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let listen = |signal_kind: Signal| signal(SignalKind::from_raw(signal_kind as i32));
        let streams = (
            listen(Signal::SIGHUP),
            listen(Signal::SIGINT),
            listen(Signal::SIGQUIT),
            listen(Signal::SIGUSR1),
            listen(Signal::SIGUSR2),
            listen(Signal::SIGTERM),
            listen(Signal::SIGWINCH),
            listen(Signal::SIGALRM),
            listen(Signal::SIGCHLD),
            listen(Signal::SIGPIPE),
        );
        let (
            Ok(mut hup),
            Ok(mut int),
            Ok(mut quit),
            Ok(mut usr1),
            Ok(mut usr2),
            Ok(mut term),
            Ok(mut winch),
            Ok(mut alrm),
            Ok(mut chld),
            Ok(_pipe),
        ) = streams
        else {
            return fail("listening for signals", "a handler could not be installed");
        };
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) => {
                let program = command.get_program().to_string_lossy().into_owned();
                return spawn_failure(&[program], &e);
            }
        };
        let pid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(0));
        if let (Some(mut stdin), Some(input)) = (child.stdin.take(), input)
            && let Err(e) = stdin.write_all(input.as_bytes())
        {
            let _ = kill(pid, Signal::SIGKILL);
            return fail("instructing the container's init", e);
        }
        loop {
            let forward = tokio::select! {
                _ = hup.recv() => Signal::SIGHUP,
                _ = int.recv() => Signal::SIGINT,
                _ = quit.recv() => Signal::SIGQUIT,
                _ = usr1.recv() => Signal::SIGUSR1,
                _ = usr2.recv() => Signal::SIGUSR2,
                _ = term.recv() => Signal::SIGTERM,
                _ = winch.recv() => Signal::SIGWINCH,
                _ = alrm.recv() => Signal::SIGALRM,
                _ = chld.recv() => Signal::SIGCHLD,
            };
            if forward != Signal::SIGCHLD {
                if !reap_all {
                    // The child is the container's PID 1, which the kernel spares every signal it does
                    // not catch: one sent before its relay is listening would be lost.
                    wait_until_caught(pid, forward).await;
                }
                let _ = kill(pid, forward);
                continue;
            }
            let target = if reap_all { Pid::from_raw(-1) } else { pid };
            loop {
                match waitpid(target, Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::StillAlive) | Err(_) => break,
                    Ok(status) => {
                        if status.pid() == Some(pid)
                            && let Some(code) = exit_code(status)
                        {
                            return ExitCode::from(code);
                        }
                    }
                }
            }
        }
    })
}

/// Waits (at most two seconds) until `pid` catches `signal`, as its `/proc/<pid>/status` `SigCgt` mask
/// shows; returns early when the process is gone or its status cannot be read.
async fn wait_until_caught(pid: Pid, signal: Signal) {
    let bit = 1u64 << (signal as i32 - 1);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
    while tokio::time::Instant::now() < deadline {
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            return;
        };
        let caught = status
            .lines()
            .find_map(|l| l.strip_prefix("SigCgt:"))
            .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok());
        match caught {
            Some(mask) if mask & bit == 0 => {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            _ => return,
        }
    }
}

fn enter_container(spec: &LaunchSpec) -> Result<(), String> {
    let own_network = spec.netns.is_some();
    if let Some(netns) = &spec.netns {
        let file = std::fs::File::open(netns)
            .map_err(|e| format!("opening network namespace {}: {e}", netns.display()))?;
        setns(&file, CloneFlags::CLONE_NEWNET)
            .map_err(|e| format!("joining network namespace {}: {e}", netns.display()))?;
    }
    let mut flags = CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID;
    if own_network {
        flags |= CloneFlags::CLONE_NEWUTS;
    }
    unshare(flags).map_err(|e| format!("creating namespaces: {e}"))?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| format!("making mounts private: {e}"))?;
    build_root(&spec.root_dir)?;
    chroot(&spec.root_dir).map_err(|e| format!("chroot {}: {e}", spec.root_dir.display()))?;
    chdir("/").map_err(|e| format!("chdir /: {e}"))?;
    if own_network && let Some(hostname) = &spec.hostname {
        sethostname(hostname).map_err(|e| format!("setting the host name: {e}"))?;
    }
    let mut view = View::default();
    for bind in &spec.binds {
        view.bind(bind)?;
    }
    for (target, size_mib) in &spec.tmpfs {
        view.ensure(Path::new(target), true)?;
        mount(
            Some("tmpfs"),
            target.as_str(),
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some(format!("size={size_mib}m,mode=1777").as_str()),
        )
        .map_err(|e| format!("mounting a tmpfs on {target}: {e}"))?;
        view.owned.insert(PathBuf::from(target));
    }
    // Docker creates a missing working directory.
    view.ensure(Path::new(&spec.process.cwd), true)?;
    Ok(())
}

/// Mounts a tmpfs on `root` and recreates the host's `/` in it.
fn build_root(root: &Path) -> Result<(), String> {
    mount(
        Some("tmpfs"),
        root,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=755"),
    )
    .map_err(|e| format!("mounting the root tmpfs on {}: {e}", root.display()))?;
    let entries = std::fs::read_dir("/").map_err(|e| format!("listing /: {e}"))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let host = Path::new("/").join(&name);
        let inside = root.join(&name);
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let result = if kind.is_symlink() {
            std::fs::read_link(&host)
                .and_then(|target| std::os::unix::fs::symlink(target, &inside))
                .map_err(|e| e.to_string())
        } else if kind.is_dir() {
            std::fs::create_dir(&inside)
                .map_err(|e| e.to_string())
                .and_then(|()| {
                    mount(
                        Some(&host),
                        &inside,
                        None::<&str>,
                        MsFlags::MS_BIND | MsFlags::MS_REC,
                        None::<&str>,
                    )
                    .map_err(|e| e.to_string())
                })
        } else if kind.is_file() {
            std::fs::File::create(&inside)
                .map_err(|e| e.to_string())
                .and_then(|_| {
                    mount(
                        Some(&host),
                        &inside,
                        None::<&str>,
                        MsFlags::MS_BIND,
                        None::<&str>,
                    )
                    .map_err(|e| e.to_string())
                })
        } else {
            Ok(())
        };
        if let Err(e) = result {
            // One odd entry of / (a socket, a file system that refuses binds) is not worth failing
            // the container for; say so in its log.
            eprintln!(
                "consul-ecs-local: warning: {} is not visible in the container: {e}",
                host.display()
            );
        }
    }
    Ok(())
}

/// The container's view while it is being assembled (after `chroot`).
#[derive(Default)]
struct View {
    /// Paths mounted by us (volumes, tmpfs): creating inside them is fine.
    owned: BTreeSet<PathBuf>,
    overlays: u32,
}

impl View {
    fn bind(&mut self, bind: &Bind) -> Result<(), String> {
        let target = Path::new(&bind.target);
        let is_dir = std::fs::metadata(&bind.source)
            .map_err(|e| format!("volume source {}: {e}", bind.source.display()))?
            .is_dir();
        self.ensure(target, is_dir)?;
        mount(
            Some(&bind.source),
            target,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(|e| format!("binding {} on {}: {e}", bind.source.display(), bind.target))?;
        if bind.read_only {
            mount(
                None::<&str>,
                target,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
                None::<&str>,
            )
            .map_err(|e| format!("making {} read-only: {e}", bind.target))?;
        }
        self.owned.insert(target.to_path_buf());
        Ok(())
    }

    /// Makes `path` exist without writing to a host directory.
    fn ensure(&mut self, path: &Path, dir: bool) -> Result<(), String> {
        if path.exists() {
            return Ok(());
        }
        let mut ancestor = path.parent();
        while let Some(candidate) = ancestor {
            if candidate.exists() {
                break;
            }
            ancestor = candidate.parent();
        }
        let ancestor = ancestor.unwrap_or(Path::new("/"));
        let root_dev = std::fs::metadata("/").map(|m| m.dev()).unwrap_or(0);
        let ancestor_dev = std::fs::metadata(ancestor)
            .map_err(|e| format!("{}: {e}", ancestor.display()))?
            .dev();
        let ours = ancestor_dev == root_dev || self.owned.iter().any(|o| ancestor.starts_with(o));
        if !ours {
            self.overlay(ancestor)?;
        }
        let made = if dir {
            std::fs::create_dir_all(path)
        } else {
            path.parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| std::fs::File::create(path).map(|_| ()))
        };
        made.map_err(|e| format!("creating {}: {e}", path.display()))
    }

    /// Puts a writable overlay (upper layer in the container's tmpfs) over a host directory.
    fn overlay(&mut self, dir: &Path) -> Result<(), String> {
        let text = dir.to_string_lossy();
        if text.contains([',', ':', '\\']) {
            return Err(format!(
                "cannot create a mount point under {text}: the path holds a character overlayfs \
                 options cannot carry"
            ));
        }
        self.overlays += 1;
        let base = PathBuf::from(format!("/.ecs-local/overlay/{}", self.overlays));
        let upper = base.join("upper");
        let work = base.join("work");
        for d in [&upper, &work] {
            std::fs::create_dir_all(d).map_err(|e| format!("creating {}: {e}", d.display()))?;
        }
        let options = format!(
            "lowerdir={text},upperdir={},workdir={}",
            upper.display(),
            work.display()
        );
        mount(
            Some("overlay"),
            dir,
            Some("overlay"),
            MsFlags::empty(),
            Some(options.as_str()),
        )
        .map_err(|e| format!("overlaying {text}: {e}"))?;
        self.owned.insert(dir.to_path_buf());
        Ok(())
    }
}

/// The init role.
pub(crate) fn init_main() -> ExitCode {
    let spec: ProcessSpec = match read_stdin() {
        Ok(spec) => spec,
        Err(e) => return fail("init", e),
    };
    for (name, soft, hard) in &spec.rlimits {
        if let Err(e) = set_rlimit(name, *soft, *hard) {
            eprintln!("consul-ecs-local: warning: ulimit {name}: {e}");
        }
    }
    if let Err(e) = become_user(&spec.user) {
        return fail("switching user", e);
    }
    // Credentials changes clear the parent-death signal, so ask for it after switching.
    if let Err(e) = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL) {
        return fail("asking for SIGKILL when the shim dies", e);
    }
    // The shim may have died before that request: then this process was already handed to another
    // parent, and must not start the program. (The host's /proc numbers the parent the host's way.)
    if let Some(parent) = spec.parent_pid
        && host_parent_pid() != Some(parent)
    {
        return fail("init", "the shim is gone");
    }
    if let Err(e) = chdir(spec.cwd.as_str()) {
        return fail(&format!("chdir {}", spec.cwd), e);
    }
    let mut command = process_command(&spec);
    command.stdin(Stdio::null());
    relay(command, None, true)
}

/// The join role (health checks).
pub(crate) fn join_main() -> ExitCode {
    let spec: JoinSpec = match read_stdin() {
        Ok(spec) => spec,
        Err(e) => return fail("join", e),
    };
    let ns = |kind: &str| std::fs::File::open(format!("/proc/{}/ns/{kind}", spec.pid));
    let (net, uts, mnt) = match (ns("net"), ns("uts"), ns("mnt")) {
        (Ok(net), Ok(uts), Ok(mnt)) => (net, uts, mnt),
        _ => return fail("join", format!("container process {} is gone", spec.pid)),
    };
    let joined = setns(&net, CloneFlags::CLONE_NEWNET)
        .and_then(|()| setns(&uts, CloneFlags::CLONE_NEWUTS))
        .and_then(|()| setns(&mnt, CloneFlags::CLONE_NEWNS));
    if let Err(e) = joined {
        return fail("joining the container's namespaces", e);
    }
    if let Err(e) = chroot(format!("/proc/{}/root", spec.pid).as_str()) {
        return fail("entering the container's root", e);
    }
    if chdir(spec.process.cwd.as_str()).is_err() {
        let _ = chdir("/");
    }
    if let Err(e) = become_user(&spec.process.user) {
        return fail("switching user", e);
    }
    default_sigpipe_after_exec();
    let error = process_command(&spec.process).exec();
    spawn_failure(&spec.process.argv, &error)
}

fn process_command(spec: &ProcessSpec) -> Command {
    let (program, args) = spec
        .argv
        .split_first()
        .map_or(("", &[][..]), |(p, a)| (p.as_str(), a));
    let mut command = Command::new(program);
    command
        .args(args)
        .env_clear()
        .envs(spec.env.iter().cloned());
    command
}

fn spawn_failure(argv: &[String], error: &std::io::Error) -> ExitCode {
    let program = argv.first().map_or("", String::as_str);
    eprintln!("consul-ecs-local: starting {program:?}: {error}");
    match error.kind() {
        std::io::ErrorKind::NotFound => ExitCode::from(EXIT_NOT_FOUND),
        std::io::ErrorKind::PermissionDenied => ExitCode::from(EXIT_CANNOT_EXECUTE),
        _ => ExitCode::from(EXIT_SETUP_FAILED),
    }
}

/// This process's parent as the host's /proc shows it.
fn host_parent_pid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("PPid:"))
        .and_then(|pid| pid.trim().parse().ok())
}

fn become_user(user: &ResolvedUser) -> Result<(), String> {
    let groups: Vec<Gid> = user.groups.iter().map(|g| Gid::from_raw(*g)).collect();
    setgroups(&groups).map_err(|e| format!("setgroups: {e}"))?;
    setgid(Gid::from_raw(user.gid)).map_err(|e| format!("setgid {}: {e}", user.gid))?;
    setuid(Uid::from_raw(user.uid)).map_err(|e| format!("setuid {}: {e}", user.uid))?;
    Ok(())
}

fn set_rlimit(name: &str, soft: u64, hard: u64) -> Result<(), String> {
    use nix::sys::resource::{Resource, setrlimit};
    let resource = match name {
        "core" => Resource::RLIMIT_CORE,
        "cpu" => Resource::RLIMIT_CPU,
        "data" => Resource::RLIMIT_DATA,
        "fsize" => Resource::RLIMIT_FSIZE,
        "locks" => Resource::RLIMIT_LOCKS,
        "memlock" => Resource::RLIMIT_MEMLOCK,
        "msgqueue" => Resource::RLIMIT_MSGQUEUE,
        "nice" => Resource::RLIMIT_NICE,
        "nofile" => Resource::RLIMIT_NOFILE,
        "nproc" => Resource::RLIMIT_NPROC,
        "rss" => Resource::RLIMIT_RSS,
        "rtprio" => Resource::RLIMIT_RTPRIO,
        "rttime" => Resource::RLIMIT_RTTIME,
        "sigpending" => Resource::RLIMIT_SIGPENDING,
        "stack" => Resource::RLIMIT_STACK,
        other => return Err(format!("unknown limit {other:?}")),
    };
    setrlimit(resource, soft, hard).map_err(|e| e.to_string())
}
