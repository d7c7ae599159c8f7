//! Images → local executables.
//!
//! There is no image store: an image name stands for a program of this machine, through a table. An
//! entry plays the part of the image's configuration: its `entryPoint` (the image's ENTRYPOINT, a
//! program and its first arguments), `command` (its CMD), `environment` (its ENV), `user` (its USER)
//! and `workingDirectory` (its WORKDIR). A container's own `entryPoint` replaces the entry's, and its
//! `command` replaces the entry's `command`, exactly as with Docker.
//!
//! Lookup order for an image such as `public.ecr.aws/hashicorp/consul-ecs:0.9.3`:
//! 1. the exact image string;
//! 2. the repository without registry, with the tag (`hashicorp/consul-ecs:0.9.3`);
//! 3. the repository without registry or tag (`hashicorp/consul-ecs`);
//! 4. a key ending in `*` that is a prefix of (3), longest first (`hashicorp/*`).
//!
//! Entries given by the user (a JSON file, `--image-map` flags) are searched before the built-in ones:
//!
//! | Images | Program |
//! | --- | --- |
//! | `hashicorp/consul-ecs`, `consul-ecs`, `consul-ecs-rs` | `consul-ecs` |
//! | `hashicorp/consul-dataplane`, `consul-dataplane`, `consul-dataplane-rs` | `consul-dataplane` |
//! | `nicholasjackson/fake-service`, `fake-service` | `fake-service`, else the runtime's built-in copy |
//!
//! A program given as a bare name is looked for in the search directories (by default the directory
//! of the running executable, its parent when that is Cargo's `deps` folder, then `PATH`). A path
//! with a `/` is used as is. The word `@self` stands for the runtime's own executable and the
//! arguments that reach its `local` commands (see [`crate::Launcher`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::Launcher;

/// What an image stands for.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImageEntry {
    /// The image's ENTRYPOINT: a program (a path, a bare name, or `@self`) and its first arguments.
    pub entry_point: Vec<String>,
    /// The image's CMD: default arguments, replaced by a container's `command`.
    #[serde(default)]
    pub command: Vec<String>,
    /// The image's ENV.
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    /// The image's USER (default: root).
    #[serde(default)]
    pub user: Option<String>,
    /// The image's WORKDIR (default: `/`).
    #[serde(default)]
    pub working_directory: Option<String>,
    /// Entry points to try, in order, when the first program cannot be found (built-in entries only).
    #[serde(skip)]
    pub fallbacks: Vec<Vec<String>>,
}

impl ImageEntry {
    /// An entry whose ENTRYPOINT is just `program`.
    pub fn program(program: impl Into<String>) -> Self {
        Self {
            entry_point: vec![program.into()],
            ..Self::default()
        }
    }
}

/// The JSON file given with `--image-map-file`: `{"images": {"<image or pattern>": {entry}}}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImageMapFile {
    images: BTreeMap<String, ImageEntry>,
}

/// An image the table cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    /// No entry matches.
    #[error(
        "image {image:?} is not in the image map (add it with --image-map {image}=/path/to/program)"
    )]
    Unknown {
        /// The image.
        image: String,
    },
    /// The entry's program is not on this machine.
    #[error("image {image:?} maps to {program:?}, which was not found in {searched}")]
    ProgramNotFound {
        /// The image.
        image: String,
        /// The program named by the entry.
        program: String,
        /// Where it was looked for.
        searched: String,
    },
    /// The entry has no program.
    #[error("image {image:?} maps to an empty entry point")]
    Empty {
        /// The image.
        image: String,
    },
    /// A `--image-map` flag or file is malformed.
    #[error("image map: {0}")]
    Malformed(String),
}

/// An image resolved to what the container runs before its own `entryPoint`/`command` apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedImage {
    /// The ENTRYPOINT with its program made absolute (or `@self` expanded).
    pub entry_point: Vec<String>,
    /// The CMD.
    pub command: Vec<String>,
    /// The ENV.
    pub environment: BTreeMap<String, String>,
    /// The USER.
    pub user: Option<String>,
    /// The WORKDIR.
    pub working_directory: Option<String>,
}

/// The image table.
#[derive(Debug, Clone)]
pub struct ImageMap {
    user: BTreeMap<String, ImageEntry>,
    builtin: BTreeMap<String, ImageEntry>,
    search_dirs: Vec<PathBuf>,
}

impl Default for ImageMap {
    fn default() -> Self {
        Self::new()
    }
}

impl ImageMap {
    /// The built-in table, searching the default directories.
    pub fn new() -> Self {
        let mut builtin = BTreeMap::new();
        for image in ["hashicorp/consul-ecs", "consul-ecs", "consul-ecs-rs"] {
            builtin.insert(image.to_owned(), ImageEntry::program("consul-ecs"));
        }
        for image in [
            "hashicorp/consul-dataplane",
            "consul-dataplane",
            "consul-dataplane-rs",
        ] {
            builtin.insert(image.to_owned(), ImageEntry::program("consul-dataplane"));
        }
        for image in ["nicholasjackson/fake-service", "fake-service"] {
            let mut entry = ImageEntry::program("fake-service");
            entry.fallbacks = vec![vec!["@self".to_owned(), "fake-service".to_owned()]];
            builtin.insert(image.to_owned(), entry);
        }
        Self {
            user: BTreeMap::new(),
            builtin,
            search_dirs: default_search_dirs(),
        }
    }

    /// A table with no built-in entries (tests, or users who want only their own).
    pub fn empty() -> Self {
        Self {
            user: BTreeMap::new(),
            builtin: BTreeMap::new(),
            search_dirs: default_search_dirs(),
        }
    }

    /// Adds (or replaces) an entry searched before the built-in ones.
    pub fn insert(&mut self, image: impl Into<String>, entry: ImageEntry) -> &mut Self {
        self.user.insert(image.into(), entry);
        self
    }

    /// Adds the entries of a JSON file: `{"images": {"<image>": {"entryPoint": [...], ...}}}`.
    pub fn load_file(&mut self, path: &Path) -> Result<&mut Self, ImageError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ImageError::Malformed(format!("reading {}: {e}", path.display())))?;
        let file: ImageMapFile = serde_json::from_str(&text)
            .map_err(|e| ImageError::Malformed(format!("{}: {e}", path.display())))?;
        for (image, entry) in file.images {
            if entry.entry_point.is_empty() {
                return Err(ImageError::Malformed(format!(
                    "{}: image {image:?}: entryPoint must name a program",
                    path.display()
                )));
            }
            self.user.insert(image, entry);
        }
        Ok(self)
    }

    /// Adds an `image=program` flag (the program becomes the image's whole ENTRYPOINT).
    pub fn add_flag(&mut self, flag: &str) -> Result<&mut Self, ImageError> {
        match flag.split_once('=') {
            Some((image, program)) if !image.is_empty() && !program.is_empty() => {
                self.user
                    .insert(image.to_owned(), ImageEntry::program(program));
                Ok(self)
            }
            _ => Err(ImageError::Malformed(format!(
                "{flag:?} is not image=program"
            ))),
        }
    }

    /// Replaces the directories bare program names are looked for in (before `PATH`).
    pub fn set_search_dirs(&mut self, dirs: Vec<PathBuf>) -> &mut Self {
        self.search_dirs = dirs;
        self
    }

    /// The entry for `image`, if any.
    pub fn entry(&self, image: &str) -> Option<&ImageEntry> {
        let candidates = candidates(image);
        for table in [&self.user, &self.builtin] {
            for candidate in &candidates {
                if let Some(entry) = table.get(candidate) {
                    return Some(entry);
                }
            }
            let repo = candidates.last().map_or("", String::as_str);
            let wildcard = table
                .iter()
                .filter_map(|(key, entry)| {
                    let prefix = key.strip_suffix('*')?;
                    repo.starts_with(prefix).then_some((prefix.len(), entry))
                })
                .max_by_key(|(len, _)| *len);
            if let Some((_, entry)) = wildcard {
                return Some(entry);
            }
        }
        None
    }

    /// Resolves `image` to a runnable entry, checking that its program exists.
    pub fn resolve(&self, image: &str, launcher: &Launcher) -> Result<ResolvedImage, ImageError> {
        let entry = self.entry(image).ok_or_else(|| ImageError::Unknown {
            image: image.to_owned(),
        })?;
        let mut first_error = None;
        for entry_point in std::iter::once(&entry.entry_point).chain(&entry.fallbacks) {
            match self.expand(image, entry_point, launcher) {
                Ok(entry_point) => {
                    return Ok(ResolvedImage {
                        entry_point,
                        command: entry.command.clone(),
                        environment: entry.environment.clone(),
                        user: entry.user.clone(),
                        working_directory: entry.working_directory.clone(),
                    });
                }
                Err(err) => {
                    first_error.get_or_insert(err);
                }
            }
        }
        Err(first_error.unwrap_or_else(|| ImageError::Empty {
            image: image.to_owned(),
        }))
    }

    fn expand(
        &self,
        image: &str,
        entry_point: &[String],
        launcher: &Launcher,
    ) -> Result<Vec<String>, ImageError> {
        let Some((program, rest)) = entry_point.split_first() else {
            return Err(ImageError::Empty {
                image: image.to_owned(),
            });
        };
        let mut out = Vec::with_capacity(entry_point.len() + launcher.args.len());
        if program == "@self" {
            out.push(launcher.program.to_string_lossy().into_owned());
            out.extend(launcher.args.iter().cloned());
        } else {
            let found = self
                .find_program(program)
                .ok_or_else(|| ImageError::ProgramNotFound {
                    image: image.to_owned(),
                    program: program.clone(),
                    searched: self.searched(program),
                })?;
            out.push(found.to_string_lossy().into_owned());
        }
        out.extend(rest.iter().cloned());
        Ok(out)
    }

    fn find_program(&self, program: &str) -> Option<PathBuf> {
        if program.contains('/') {
            let path = std::path::absolute(program).ok()?;
            return is_executable(&path).then_some(path);
        }
        self.search_dirs
            .iter()
            .cloned()
            .chain(path_dirs())
            .map(|dir| dir.join(program))
            .find(|candidate| is_executable(candidate))
    }

    fn searched(&self, program: &str) -> String {
        if program.contains('/') {
            return "this machine".to_owned();
        }
        let mut dirs: Vec<String> = self
            .search_dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        dirs.push("PATH".to_owned());
        dirs.join(", ")
    }
}

/// The keys an image is looked up under, most specific first; the last is the bare repository.
fn candidates(image: &str) -> Vec<String> {
    let without_digest = image.split_once('@').map_or(image, |(name, _)| name);
    let mut parts: Vec<&str> = without_digest.split('/').collect();
    // A first component with a dot or a port, or `localhost`, is a registry.
    if parts.len() > 1 {
        let first = parts[0];
        if first.contains('.') || first.contains(':') || first == "localhost" {
            parts.remove(0);
        }
    }
    if parts.len() > 1 && parts[0] == "library" {
        parts.remove(0);
    }
    let path = parts.join("/");
    let (repo, tag) = match path.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo.to_owned(), Some(tag.to_owned())),
        _ => (path.clone(), None),
    };
    let mut out = vec![image.to_owned()];
    if let Some(tag) = tag {
        out.push(format!("{repo}:{tag}"));
    }
    out.push(repo);
    out.dedup();
    out
}

fn default_search_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
    {
        // Test binaries live in target/<profile>/deps; the programs sit one level up.
        if dir.file_name().is_some_and(|n| n == "deps")
            && let Some(parent) = dir.parent()
        {
            dirs.push(dir.clone());
            dirs.push(parent.to_path_buf());
            return dirs;
        }
        dirs.push(dir);
    }
    dirs
}

fn path_dirs() -> Vec<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default()
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn lookup_keys_drop_registry_library_and_digest() {
        assert_eq!(
            candidates("public.ecr.aws/hashicorp/consul-ecs:0.9.3"),
            [
                "public.ecr.aws/hashicorp/consul-ecs:0.9.3",
                "hashicorp/consul-ecs:0.9.3",
                "hashicorp/consul-ecs"
            ]
        );
        assert_eq!(
            candidates("localhost:5000/app@sha256:abc"),
            ["localhost:5000/app@sha256:abc", "app"]
        );
        assert_eq!(
            candidates("library/busybox"),
            ["library/busybox", "busybox"]
        );
        assert_eq!(candidates("nginx"), ["nginx"]);
    }

    #[test]
    fn user_entries_win_and_wildcards_match_the_longest_prefix() {
        let mut map = ImageMap::new();
        map.insert("hashicorp/*", ImageEntry::program("/bin/a"));
        map.insert("hashicorp/consul-*", ImageEntry::program("/bin/b"));
        map.insert("hashicorp/consul-ecs:1.0", ImageEntry::program("/bin/c"));
        let program = |image: &str| map.entry(image).unwrap().entry_point[0].clone();
        assert_eq!(program("hashicorp/consul-ecs:1.0"), "/bin/c");
        assert_eq!(program("docker.io/hashicorp/consul-ecs:0.9"), "/bin/b");
        assert_eq!(program("hashicorp/vault"), "/bin/a");
        assert_eq!(
            program("ghcr.io/nicholasjackson/fake-service:v0.26.2"),
            "fake-service"
        );
        assert!(map.entry("nginx:latest").is_none());
    }

    #[test]
    fn resolve_finds_programs_expands_self_and_names_what_is_missing() {
        let launcher = Launcher {
            program: PathBuf::from("/opt/ecsl"),
            args: vec!["local".to_owned()],
        };
        let mut map = ImageMap::empty();
        map.set_search_dirs(vec![PathBuf::from("/nonexistent-dir")]);
        map.add_flag("sh=/bin/sh").unwrap();
        map.insert(
            "me",
            ImageEntry {
                entry_point: vec!["@self".to_owned(), "fake-service".to_owned()],
                ..ImageEntry::default()
            },
        );
        map.insert("missing", ImageEntry::program("no-such-program-here"));
        assert_eq!(
            map.resolve("sh", &launcher).unwrap().entry_point,
            ["/bin/sh"]
        );
        assert_eq!(
            map.resolve("me:1", &launcher).unwrap().entry_point,
            ["/opt/ecsl", "local", "fake-service"]
        );
        let err = map.resolve("missing", &launcher).unwrap_err().to_string();
        assert!(err.contains("\"no-such-program-here\""), "{err}");
        assert!(err.contains("/nonexistent-dir, PATH"), "{err}");
        let err = map.resolve("nginx", &launcher).unwrap_err();
        assert_eq!(
            err,
            ImageError::Unknown {
                image: "nginx".to_owned()
            }
        );
        assert!(map.add_flag("nonsense").is_err());
    }

    #[test]
    fn the_builtin_fake_service_falls_back_to_the_runtime_itself() {
        let launcher = Launcher {
            program: PathBuf::from("/opt/ecsl"),
            args: vec![],
        };
        let mut map = ImageMap::new();
        map.set_search_dirs(vec![PathBuf::from("/nonexistent-dir")]);
        // Unless a fake-service program happens to be on PATH, the built-in copy is used.
        let resolved = map
            .resolve("nicholasjackson/fake-service:v0.26.2", &launcher)
            .unwrap();
        let last = resolved.entry_point.last().unwrap();
        assert!(last.ends_with("fake-service"), "{resolved:?}");
    }

    #[test]
    fn a_map_file_is_read_strictly() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.json");
        std::fs::write(
            &good,
            r#"{"images": {"my/app": {"entryPoint": ["/bin/sh", "-c"], "command": ["echo hi"],
               "environment": {"A": "1"}, "user": "1000", "workingDirectory": "/tmp"}}}"#,
        )
        .unwrap();
        let mut map = ImageMap::empty();
        map.load_file(&good).unwrap();
        let entry = map.entry("my/app:2").unwrap();
        assert_eq!(entry.command, ["echo hi"]);
        assert_eq!(entry.user.as_deref(), Some("1000"));
        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, r#"{"images": {"x": {"entrypoint": ["/bin/sh"]}}}"#).unwrap();
        let err = map.load_file(&bad).unwrap_err().to_string();
        assert!(err.contains("entrypoint"), "{err}");
    }
}
