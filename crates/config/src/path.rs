//! Dotted JSON paths (`service.name`, `proxy.upstreams.0.localBindPort`, `(root)`) and their order.

use std::cmp::Ordering;
use std::fmt;

/// Where a value sits in the document.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Path(Vec<Segment>);

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
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

    /// Parses the dotted form back; used to order violations. A segment of digits is an array index.
    pub(crate) fn parse(dotted: &str) -> Path {
        if dotted == ROOT {
            return Path::root();
        }
        Path(
            dotted
                .split('.')
                .map(|part| match part.parse::<usize>() {
                    Ok(index) => Segment::Index(index),
                    Err(_) => Segment::Key(part.to_owned()),
                })
                .collect(),
        )
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

/// Orders violations for reading: depth first in key order, array items by index, and an object's own
/// problems (a missing or unknown property) after the problems inside it.
pub(crate) fn reading_order(a: &Path, b: &Path) -> Ordering {
    for (x, y) in a.0.iter().zip(&b.0) {
        match x.cmp(y) {
            Ordering::Equal => continue,
            other => return other,
        }
    }
    // One path is a prefix of the other: the longer (the inner problem) comes first.
    b.0.len().cmp(&a.0.len())
}
