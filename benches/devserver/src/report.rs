//! The figures table: one row per figure, our value next to etcd's and their ratio.

use std::fmt::Write as _;

/// One figure for both servers.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    /// What is measured, with its unit and which direction is better.
    pub(crate) label: String,
    /// Our dev server's value.
    pub(crate) ours: f64,
    /// etcd's value.
    pub(crate) etcd: f64,
    /// Decimal places to print.
    pub(crate) decimals: usize,
}

impl Row {
    /// A row.
    pub(crate) fn new(label: impl Into<String>, ours: f64, etcd: f64, decimals: usize) -> Row {
        Row {
            label: label.into(),
            ours,
            etcd,
            decimals,
        }
    }
}

/// ours / etcd, or `n/a` when etcd's value is zero (or the result is not a number).
pub(crate) fn ratio(ours: f64, etcd: f64) -> String {
    let r = ours / etcd;
    if etcd == 0.0 || !r.is_finite() {
        "n/a".to_owned()
    } else {
        format!("{r:.2}")
    }
}

/// The rows as an aligned plain-text table.
pub(crate) fn render(rows: &[Row]) -> String {
    let headers = ["figure", "consul-ecs", "etcd", "ours/etcd"];
    let cells: Vec<[String; 4]> = rows
        .iter()
        .map(|r| {
            [
                r.label.clone(),
                format!("{:.*}", r.decimals, r.ours),
                format!("{:.*}", r.decimals, r.etcd),
                ratio(r.ours, r.etcd),
            ]
        })
        .collect();
    let mut widths = headers.map(str::len);
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, row: [&str; 4]| {
        let _ = writeln!(
            out,
            "{:<w0$}  {:>w1$}  {:>w2$}  {:>w3$}",
            row[0],
            row[1],
            row[2],
            row[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3]
        );
    };
    line(&mut out, headers);
    let rule = widths.map(|w| "-".repeat(w));
    line(&mut out, [&rule[0], &rule[1], &rule[2], &rule[3]]);
    for c in &cells {
        line(&mut out, [&c[0], &c[1], &c[2], &c[3]]);
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ratios() {
        assert_eq!(ratio(50.0, 100.0), "0.50");
        assert_eq!(ratio(3.0, 0.0), "n/a");
        assert_eq!(ratio(0.0, 0.0), "n/a");
        assert_eq!(ratio(0.0, 4.0), "0.00");
    }

    #[test]
    fn table_is_aligned() {
        let t = render(&[
            Row::new("writes/s (higher is better)", 1234.56, 4321.0, 1),
            Row::new("idle CPU ms", 0.0, 40.0, 0),
        ]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines.iter().all(|l| l.len() == lines[0].len()), "{t}");
        assert!(lines[2].starts_with("writes/s (higher is better)"));
        assert!(lines[2].ends_with("1234.6  4321.0       0.29"), "{t}");
        assert!(lines[3].ends_with("0.00"), "{t}");
    }
}
