//! Operating-system pieces: privilege checks, users and groups, resource limits, process identity,
//! and the container shim (`shim`).

pub(crate) mod shim;

use std::path::Path;

use serde::{Deserialize, Serialize};

/// The `ulimits` names ECS accepts.
pub(crate) const ULIMIT_NAMES: &[&str] = &[
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

/// Capability bits the runtime needs: CAP_NET_ADMIN (12) and CAP_SYS_ADMIN (21).
const NEEDED_CAPS: &[(u32, &str)] = &[(12, "CAP_NET_ADMIN"), (21, "CAP_SYS_ADMIN")];

/// Why this process cannot run tasks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PrivilegeError(pub String);

/// Checks that this is Linux, that the process is root or holds CAP_NET_ADMIN and CAP_SYS_ADMIN,
/// and that the `ip` command is installed.
pub fn check_privileges() -> Result<(), PrivilegeError> {
    if !cfg!(target_os = "linux") {
        return Err(PrivilegeError(
            "consul-ecs local requires Linux (network namespaces, veth pairs, mount namespaces)"
                .to_owned(),
        ));
    }
    if !nix::unistd::geteuid().is_root() {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let effective = status
            .lines()
            .find_map(|line| line.strip_prefix("CapEff:"))
            .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
            .unwrap_or(0);
        let missing: Vec<&str> = NEEDED_CAPS
            .iter()
            .filter(|(bit, _)| effective & (1 << bit) == 0)
            .map(|(_, name)| *name)
            .collect();
        if !missing.is_empty() {
            return Err(PrivilegeError(format!(
                "consul-ecs local must run as root (or with CAP_NET_ADMIN and CAP_SYS_ADMIN): it \
                 creates network namespaces, veth pairs and mounts; missing {}",
                missing.join(" and ")
            )));
        }
    }
    if !["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
        .iter()
        .any(|p| Path::new(p).exists())
        && crate::network::ip(&["-V"]).is_err()
    {
        return Err(PrivilegeError(
            "consul-ecs local needs the ip command (install iproute2)".to_owned(),
        ));
    }
    Ok(())
}

/// A user resolved to numbers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ResolvedUser {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    /// Supplementary groups (from /etc/group membership).
    pub(crate) groups: Vec<u32>,
    /// The home directory (`/` when unknown).
    pub(crate) home: String,
}

impl ResolvedUser {
    pub(crate) fn root() -> Self {
        Self {
            uid: 0,
            gid: 0,
            groups: Vec::new(),
            home: "/root".to_owned(),
        }
    }
}

/// Resolves an ECS `user` value (`uid`, `uid:gid`, `name`, `name:group`) against passwd and group
/// texts. A numeric uid without a passwd entry gets gid 0, as Docker does.
pub(crate) fn resolve_user(spec: &str, passwd: &str, group: &str) -> Result<ResolvedUser, String> {
    struct Pw<'a> {
        name: &'a str,
        uid: u32,
        gid: u32,
        home: &'a str,
    }
    let users: Vec<Pw<'_>> = passwd
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            Some(Pw {
                name: fields.first()?,
                uid: fields.get(2)?.parse().ok()?,
                gid: fields.get(3)?.parse().ok()?,
                home: fields.get(5).copied().unwrap_or("/"),
            })
        })
        .collect();
    let groups: Vec<(&str, u32, Vec<&str>)> = group
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            let members = fields
                .get(3)
                .map(|m| m.split(',').filter(|s| !s.is_empty()).collect())
                .unwrap_or_default();
            Some((*fields.first()?, fields.get(2)?.parse().ok()?, members))
        })
        .collect();
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if user_part.is_empty() || group_part.is_some_and(str::is_empty) {
        return Err(format!("{spec:?} is not uid, uid:gid, name or name:group"));
    }
    let entry = match user_part.parse::<u32>() {
        Ok(uid) => users.iter().find(|u| u.uid == uid),
        Err(_) => Some(
            users
                .iter()
                .find(|u| u.name == user_part)
                .ok_or_else(|| format!("no user named {user_part:?} in /etc/passwd"))?,
        ),
    };
    let uid = match (user_part.parse::<u32>(), &entry) {
        (Ok(uid), _) => uid,
        (Err(_), Some(entry)) => entry.uid,
        (Err(_), None) => return Err(format!("no user named {user_part:?} in /etc/passwd")),
    };
    let gid = match group_part {
        None => entry.map_or(0, |e| e.gid),
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => groups
                .iter()
                .find(|(name, _, _)| *name == g)
                .map(|(_, gid, _)| *gid)
                .ok_or_else(|| format!("no group named {g:?} in /etc/group"))?,
        },
    };
    let supplementary = match &entry {
        Some(entry) => groups
            .iter()
            .filter(|(_, gid_, members)| *gid_ != gid && members.contains(&entry.name))
            .map(|(_, gid, _)| *gid)
            .collect(),
        None => Vec::new(),
    };
    Ok(ResolvedUser {
        uid,
        gid,
        groups: supplementary,
        home: entry.map_or_else(|| "/".to_owned(), |e| e.home.to_owned()),
    })
}

/// Resolves a user against this machine's /etc/passwd and /etc/group.
pub(crate) fn resolve_user_on_host(spec: &str) -> Result<ResolvedUser, String> {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
    resolve_user(spec, &passwd, &group)
}

/// A process, identified by its pid and its start time (so a reused pid is not mistaken for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessId {
    /// The pid.
    pub pid: i32,
    /// Its start time in clock ticks since boot (field 22 of `/proc/<pid>/stat`).
    pub start_time: u64,
}

impl ProcessId {
    /// The process with this pid as it is now, if it exists.
    pub fn of(pid: i32) -> Option<Self> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name may hold spaces and parentheses; fields resume after the last ')'.
        let rest = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // `rest` starts at field 3 (state), so field 22 is at index 19.
        let start_time = fields.get(19)?.parse().ok()?;
        // A zombie has finished running.
        if fields.first() == Some(&"Z") {
            return None;
        }
        Some(Self { pid, start_time })
    }

    /// This process.
    pub fn current() -> Option<Self> {
        Self::of(i32::try_from(std::process::id()).ok()?)
    }

    /// Whether the same process is still running.
    pub fn is_alive(&self) -> bool {
        Self::of(self.pid).is_some_and(|now| now.start_time == self.start_time)
    }

    /// Sends SIGKILL if it is still the same process.
    pub fn kill(&self) {
        if self.is_alive() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
                          app:x:1000:1000::/home/app:/bin/sh\n\
                          broken line\n";
    const GROUP: &str = "root:x:0:\nwheel:x:10:app,other\napp:x:1000:\nextra:x:2000:\n";

    #[test]
    fn users_resolve_like_docker() {
        let r = |spec| resolve_user(spec, PASSWD, GROUP);
        let app = r("app").unwrap();
        assert_eq!(
            (app.uid, app.gid, app.groups.as_slice()),
            (1000, 1000, &[10][..])
        );
        assert_eq!(app.home, "/home/app");
        assert_eq!(r("1000").unwrap(), app);
        let unknown = r("5995").unwrap();
        assert_eq!(
            (unknown.uid, unknown.gid, unknown.home.as_str()),
            (5995, 0, "/")
        );
        assert!(unknown.groups.is_empty());
        assert_eq!(r("5995:5995").unwrap().gid, 5995);
        assert_eq!(r("app:extra").unwrap().gid, 2000);
        assert_eq!(r("0").unwrap().home, "/root");
        assert!(r("nobody-here").unwrap_err().contains("no user named"));
        assert!(r("app:nogroup").unwrap_err().contains("no group named"));
        assert!(r(":").is_err());
        assert!(r("app:").is_err());
    }

    #[test]
    fn process_identity_survives_reads_and_sees_the_end() {
        let me = ProcessId::current().unwrap();
        assert!(me.is_alive());
        let other = ProcessId {
            start_time: me.start_time + 1,
            ..me
        };
        assert!(!other.is_alive());
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let id = ProcessId::of(i32::try_from(child.id()).unwrap());
        child.wait().unwrap();
        if let Some(id) = id {
            assert!(!id.is_alive());
        }
    }
}
