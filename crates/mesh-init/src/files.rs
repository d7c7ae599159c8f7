//! Files mesh-init leaves on the shared volume: its own executable, CA certificates, and the writes
//! behind the dataplane config.
//!
//! Every file is written to a temporary file in the same directory and renamed into place, so readers
//! never see half a file and a second run replaces read-only files from the first (upstream's direct
//! write of a 0444 file fails on a re-run).

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use crate::Error;

/// Name of the executable copy on the shared volume.
pub const EXECUTABLE_NAME: &str = "consul-ecs";
/// Mode of the executable copy.
pub const EXECUTABLE_MODE: u32 = 0o755;
/// Name of the gRPC CA file written from `CONSUL_GRPC_CACERT_PEM`.
pub const GRPC_CA_FILE: &str = "consul-grpc-ca-cert.pem";
/// Name of the HTTPS CA file written from `CONSUL_HTTPS_CACERT_PEM` (ours; read by our data plane).
pub const HTTPS_CA_FILE: &str = "consul-https-ca-cert.pem";
/// Mode of the CA files: anyone in the task may read them, nobody may change them.
pub const CA_FILE_MODE: u32 = 0o444;

/// Writes `contents` to `path` through a temporary file and a rename, with `mode`.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), Error> {
    write_file(path, contents, mode, None)
}

/// Like [`write_atomic`], and gives the file to user `uid` (which needs root). Fails with
/// `PermissionDenied` (leaving nothing behind) when that is not allowed.
pub fn write_atomic_owned(path: &Path, contents: &[u8], mode: u32, uid: u32) -> Result<(), Error> {
    write_file(path, contents, mode, Some(uid))
}

fn write_file(path: &Path, contents: &[u8], mode: u32, owner: Option<u32>) -> Result<(), Error> {
    let tmp = temp_path(path);
    let io = |what: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { what, path, source }
    };
    let result = (|| {
        // Created private, filled, then opened up: the contents are never readable with a wider mode
        // than the final one.
        let _ = fs::remove_file(&tmp);
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io("creating", &tmp))?;
        file.write_all(contents).map_err(io("writing", &tmp))?;
        file.sync_all().map_err(io("writing", &tmp))?;
        drop(file);
        if let Some(uid) = owner {
            std::os::unix::fs::chown(&tmp, Some(uid), Some(uid))
                .map_err(io("changing the owner of", &tmp))?;
        }
        fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))
            .map_err(io("setting the mode of", &tmp))?;
        fs::rename(&tmp, path).map_err(io("writing", path))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Copies `source` to `<dir>/consul-ecs` with mode 0755, atomically.
pub fn copy_executable(source: &Path, dir: &Path) -> Result<PathBuf, Error> {
    let target = dir.join(EXECUTABLE_NAME);
    let tmp = temp_path(&target);
    let result = (|| {
        let _ = fs::remove_file(&tmp);
        fs::copy(source, &tmp).map_err(|source_err| Error::Io {
            what: "copying the executable to",
            path: tmp.clone(),
            source: source_err,
        })?;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(EXECUTABLE_MODE)).map_err(
            |source| Error::Io {
                what: "setting the mode of",
                path: tmp.clone(),
                source,
            },
        )?;
        fs::rename(&tmp, &target).map_err(|source| Error::Io {
            what: "copying the executable to",
            path: target.clone(),
            source,
        })
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map(|()| target)
}

/// The executable to copy: the configured one, else the running program. When the running program is
/// a dynamic loader (`ld-linux-x86-64.so.2` runs the binary), it is looked up from `argv[0]` instead.
pub fn own_executable(configured: Option<&Path>) -> Result<PathBuf, Error> {
    if let Some(path) = configured {
        return Ok(path.to_path_buf());
    }
    let current = std::env::current_exe().map_err(|source| Error::Io {
        what: "finding the running executable",
        path: PathBuf::from("/proc/self/exe"),
        source,
    })?;
    let name = current
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !is_dynamic_loader(&name) {
        return Ok(current);
    }
    let argv0 = std::env::args_os()
        .next()
        .map(PathBuf::from)
        .unwrap_or_default();
    let found = look_path(&argv0).unwrap_or(argv0);
    fs::canonicalize(&found).map_err(|source| Error::Io {
        what: "finding the running executable",
        path: found,
        source,
    })
}

/// Whether a file name looks like a dynamic loader (`ld-<name>.so.<digits>`).
pub fn is_dynamic_loader(name: &str) -> bool {
    let mut rest = name;
    while let Some(start) = rest.find("ld-") {
        let after = &rest[start + 3..];
        if let Some(dot) = after.find('.') {
            let (stem, tail) = after.split_at(dot);
            if !stem.is_empty()
                && let Some(version) = tail.strip_prefix(".so.")
                && version.starts_with(|c: char| c.is_ascii_digit())
            {
                return true;
            }
        }
        rest = &rest[start + 3..];
    }
    false
}

/// Finds a bare program name on `PATH`, as a shell would.
fn look_path(program: &Path) -> Option<PathBuf> {
    if program.components().count() > 1 {
        return Some(program.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt as _;

    #[test]
    fn dynamic_loaders_are_recognised() {
        assert!(is_dynamic_loader("ld-linux-x86-64.so.2"));
        assert!(is_dynamic_loader("ld-musl-aarch64.so.1"));
        assert!(!is_dynamic_loader("consul-ecs"));
        assert!(!is_dynamic_loader("ld-.so.1"));
        assert!(!is_dynamic_loader("build-tool.so"));
    }

    #[test]
    fn atomic_writes_replace_read_only_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.json");
        write_atomic(&path, b"one", 0o444).unwrap();
        write_atomic(&path, b"two", 0o444).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o444);
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_failed_write_names_the_file() {
        let err = write_atomic(Path::new("/nonexistent-dir/x.json"), b"x", 0o444).unwrap_err();
        assert!(err.to_string().contains("/nonexistent-dir/"), "{err}");
    }

    #[test]
    fn the_executable_copy_is_0755_and_replaceable() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("src-bin");
        fs::write(&source, b"#!/bin/sh\n").unwrap();
        let target = copy_executable(&source, dir.path()).unwrap();
        let target = copy_executable(&source, dir.path())
            .map(|_| target)
            .unwrap();
        assert_eq!(fs::metadata(&target).unwrap().mode() & 0o777, 0o755);
        assert_eq!(fs::read(&target).unwrap(), b"#!/bin/sh\n");
    }
}
