//! Dotted JSON paths (`service.name`, `proxy.upstreams.0.localBindPort`, `(root)`) and their order.

use std::cmp::Ordering;
use std::fmt;

use serde_json::Value;

use crate::error::Violation;

/// Where a value sits in the document.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Path(Vec<Segment>);

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Segment {
    Index(usize),
    Key(String),
}

impl Path {
    pub(crate) fn root() -> Path {
        Path(Vec::new())
    }

    pub(crate) fn key(&self, key: &str) -> Path {
        let mut segments = self.0.clone();
        segments.push(Segment::Key(key.to_owned()));
        Path(segments)
    }

    pub(crate) fn index(&self, index: usize) -> Path {
        let mut segments = self.0.clone();
        segments.push(Segment::Index(index));
        Path(segments)
    }

    pub(crate) fn push(&mut self, segment: Segment) {
        self.0.push(segment);
    }

    pub(crate) fn last_key(&self) -> Option<&str> {
        match self.0.last() {
            Some(Segment::Key(key)) => Some(key),
            _ => None,
        }
    }
}

/// How upstream names the top level of the document.
const ROOT: &str = "(root)";

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str(ROOT);
        }
        for (i, segment) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            match segment {
                Segment::Index(index) => write!(f, "{index}")?,
                Segment::Key(key) => f.write_str(key)?,
            }
        }
        Ok(())
    }
}

/// A problem found at a path, before it becomes a public [`Violation`].
#[derive(Debug)]
pub(crate) struct Found {
    pub(crate) path: Path,
    pub(crate) message: String,
}

/// Turns what was found into violations in reading order: in the order the offending values appear in
/// `document`, and an object's own problems (a missing or unknown property) after the problems inside
/// it. Problems at the same path keep the order in which they were found.
pub(crate) fn into_violations(document: &Value, mut found: Vec<Found>) -> Vec<Violation> {
    let mut keyed: Vec<(Vec<usize>, Found)> = found
        .drain(..)
        .map(|f| (positions(document, &f.path), f))
        .collect();
    keyed.sort_by(|(a, _), (b, _)| reading_order(a, b));
    keyed
        .into_iter()
        .map(|(_, f)| Violation {
            path: f.path.to_string(),
            message: f.message,
        })
        .collect()
}

/// For each segment of `path`, the position of that key or item within its parent in `document`.
fn positions(document: &Value, path: &Path) -> Vec<usize> {
    let mut out = Vec::with_capacity(path.0.len());
    let mut current = Some(document);
    for segment in &path.0 {
        let (position, next) = match (current, segment) {
            (Some(Value::Array(items)), Segment::Index(i)) => (*i, items.get(*i)),
            (Some(Value::Object(map)), segment) => {
                let key = match segment {
                    Segment::Key(key) => key.clone(),
                    Segment::Index(i) => i.to_string(),
                };
                // Keys keep the document's order (serde_json's `preserve_order`).
                match map.keys().position(|k| *k == key) {
                    Some(i) => (i, map.get(&key)),
                    None => (usize::MAX, None),
                }
            }
            _ => (usize::MAX, None),
        };
        out.push(position);
        current = next;
    }
    out
}

fn reading_order(a: &[usize], b: &[usize]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        match x.cmp(y) {
            Ordering::Equal => continue,
            other => return other,
        }
    }
    // One path is a prefix of the other: the longer one (the inner problem) comes first.
    b.len().cmp(&a.len())
}
