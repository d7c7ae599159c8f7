//! Container output: copied line by line from the shim's pipes into the container's log file, and
//! optionally to the runtime's standard output prefixed `[<family>-<task8>/<container>]`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

/// Copies `stream` into `file` (appending) and, with a prefix, to standard output. Ends at EOF.
pub(crate) async fn pump(
    stream: impl AsyncRead + Unpin,
    file: PathBuf,
    echo_prefix: Option<String>,
) {
    let mut reader = BufReader::new(stream);
    let mut out = match std::fs::File::options()
        .create(true)
        .append(true)
        .open(&file)
    {
        Ok(out) => Some(out),
        Err(e) => {
            tracing::warn!(file = %file.display(), error = %e, "cannot open the container log");
            None
        }
    };
    let mut line = Vec::with_capacity(256);
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if let Some(out) = out.as_mut() {
            let _ = out.write_all(&line);
        }
        if let Some(prefix) = &echo_prefix {
            let text = String::from_utf8_lossy(&line);
            let mut stdout = std::io::stdout().lock();
            let _ = write!(stdout, "{prefix} {}", text);
            if !text.ends_with('\n') {
                let _ = writeln!(stdout);
            }
        }
    }
}

/// Writes what a log file holds from `offset` on to `out`, prefixing each line; returns the new
/// offset. A partial last line is left for the next call.
pub fn copy_new_lines(
    path: &Path,
    offset: u64,
    prefix: Option<&str>,
    out: &mut dyn Write,
) -> std::io::Result<u64> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(offset),
        Err(e) => return Err(e),
    };
    file.seek(SeekFrom::Start(offset))?;
    let mut data = Vec::new();
    file.read_to_end(&mut data)?;
    let complete = data.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    for line in data[..complete].split_inclusive(|b| *b == b'\n') {
        if let Some(prefix) = prefix {
            out.write_all(prefix.as_bytes())?;
            out.write_all(b" ")?;
        }
        out.write_all(line)?;
    }
    out.flush()?;
    Ok(offset + complete as u64)
}

/// Prints the logs of `containers` (all lines, then, with `follow`, new lines until `done` says
/// the task has stopped and nothing new arrived).
pub fn print_logs(
    files: &[(String, PathBuf)],
    follow: bool,
    done: &dyn Fn() -> bool,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let prefix = files.len() > 1;
    let mut offsets = vec![0u64; files.len()];
    loop {
        let finished = done();
        let mut progressed = false;
        for ((name, path), offset) in files.iter().zip(offsets.iter_mut()) {
            let label = format!("[{name}]");
            let new = copy_new_lines(path, *offset, prefix.then_some(label.as_str()), out)?;
            progressed |= new != *offset;
            *offset = new;
        }
        if !follow || (finished && !progressed) {
            return Ok(());
        }
        if !progressed {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn new_lines_are_copied_once_with_prefixes_and_partial_lines_wait() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        std::fs::write(&path, "one\ntwo\npart").unwrap();
        let mut out = Vec::new();
        let offset = copy_new_lines(&path, 0, Some("[c]"), &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "[c] one\n[c] two\n");
        assert_eq!(offset, 8);
        std::fs::write(&path, "one\ntwo\npartial\n").unwrap();
        let mut out = Vec::new();
        let offset = copy_new_lines(&path, offset, None, &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "partial\n");
        assert_eq!(offset, 16);
        let missing = dir.path().join("missing.log");
        assert_eq!(
            copy_new_lines(&missing, 3, None, &mut Vec::new()).unwrap(),
            3
        );
    }
}
