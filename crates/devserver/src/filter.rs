//! Consul's `?filter=` expression language (go-bexpr), evaluated against the JSON shape of each result.
//!
//! Grammar (keywords are lower case, as in go-bexpr):
//!
//! ```text
//! expr     := and ("or" and)*
//! and      := unary ("and" unary)*
//! unary    := "not" unary | "(" expr ")" | match
//! match    := selector ("==" | "!=") value
//!           | selector "is" ["not"] "empty"
//!           | value ["not"] "in" selector
//!           | selector ["not"] ("contains" | "matches") value
//! selector := name ("." name | "[" quoted "]")*
//! value    := "double quoted" | `back quoted` | bare-word
//! ```
//!
//! A selector that walks through a list fans out over its elements (`Checks.Status == passing` is true when
//! any check passes); a missing field or map key selects nothing, so `==` is false and `!=` is true.
//! Because results are matched by their JSON shape, an unknown selector is not an error here (go-bexpr
//! rejects it against the Go type); it simply matches nothing.

use regex::Regex;
use serde_json::Value;

/// A parsed filter expression.
#[derive(Debug, Clone)]
pub(crate) struct Filter {
    root: Expr,
}

/// A filter that failed to parse, with the position at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{line}:{col} ({offset}): {msg}")]
pub(crate) struct FilterError {
    line: usize,
    col: usize,
    offset: usize,
    msg: String,
}

#[derive(Debug, Clone)]
enum Expr {
    Or(Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Match(Match),
}

#[derive(Debug, Clone)]
enum Match {
    Equal(Selector, String),
    NotEqual(Selector, String),
    IsEmpty(Selector),
    IsNotEmpty(Selector),
    In(String, Selector),
    NotIn(String, Selector),
    Matches(Selector, Box<Regex>),
    NotMatches(Selector, Box<Regex>),
}

type Selector = Vec<String>;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    LParen,
    RParen,
    LBracket,
    RBracket,
    Eq,
    Ne,
    Quoted(String),
    Word(String),
    End,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::LParen => "\"(\"".into(),
            Tok::RParen => "\")\"".into(),
            Tok::LBracket => "\"[\"".into(),
            Tok::RBracket => "\"]\"".into(),
            Tok::Eq => "\"==\"".into(),
            Tok::Ne => "\"!=\"".into(),
            Tok::Quoted(s) => format!("{s:?}"),
            Tok::Word(w) => format!("{w:?}"),
            Tok::End => "end of input".into(),
        }
    }

    fn is_word(&self, w: &str) -> bool {
        matches!(self, Tok::Word(x) if x == w)
    }
}

const KEYWORDS: &[&str] = &[
    "and", "or", "not", "in", "is", "empty", "contains", "matches",
];

fn lex(src: &str) -> Result<Vec<(Tok, usize)>, (usize, String)> {
    let mut out = Vec::new();
    let bytes = src.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        match c {
            b'(' => {
                out.push((Tok::LParen, start));
                i += 1;
            }
            b')' => {
                out.push((Tok::RParen, start));
                i += 1;
            }
            b'[' => {
                out.push((Tok::LBracket, start));
                i += 1;
            }
            b']' => {
                out.push((Tok::RBracket, start));
                i += 1;
            }
            b'=' | b'!' => {
                if bytes.get(i + 1) == Some(&b'=') {
                    out.push((if c == b'=' { Tok::Eq } else { Tok::Ne }, start));
                    i += 2;
                } else {
                    return Err((
                        start,
                        format!("unexpected {:?}, expected \"==\" or \"!=\"", c as char),
                    ));
                }
            }
            b'"' => {
                let mut s = String::new();
                let mut chars = src[i + 1..].char_indices();
                let mut closed = None;
                while let Some((off, ch)) = chars.next() {
                    match ch {
                        '"' => {
                            closed = Some(i + 1 + off + 1);
                            break;
                        }
                        '\\' => match chars.next() {
                            Some((_, 'n')) => s.push('\n'),
                            Some((_, 't')) => s.push('\t'),
                            Some((_, 'r')) => s.push('\r'),
                            Some((_, e @ ('"' | '\\' | '/'))) => s.push(e),
                            Some((_, e)) => {
                                s.push('\\');
                                s.push(e);
                            }
                            None => break,
                        },
                        ch => s.push(ch),
                    }
                }
                match closed {
                    Some(end) => {
                        out.push((Tok::Quoted(s), start));
                        i = end;
                    }
                    None => return Err((start, "unterminated double-quoted string".into())),
                }
            }
            b'`' => match src[i + 1..].find('`') {
                Some(len) => {
                    out.push((Tok::Quoted(src[i + 1..i + 1 + len].to_owned()), start));
                    i += len + 2;
                }
                None => return Err((start, "unterminated back-quoted string".into())),
            },
            _ => {
                let rest = &src[i..];
                let len = rest
                    .char_indices()
                    .find(|(_, ch)| {
                        ch.is_whitespace()
                            || matches!(ch, '(' | ')' | '[' | ']' | '"' | '`' | '=' | '!')
                    })
                    .map_or(rest.len(), |(n, _)| n);
                out.push((Tok::Word(rest[..len].to_owned()), start));
                i += len;
            }
        }
    }
    out.push((Tok::End, src.len()));
    Ok(out)
}

struct Parser<'a> {
    src: &'a str,
    toks: Vec<(Tok, usize)>,
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        self.toks.get(self.pos).map_or(&Tok::End, |(t, _)| t)
    }

    fn peek2(&self) -> &Tok {
        self.toks.get(self.pos + 1).map_or(&Tok::End, |(t, _)| t)
    }

    fn offset(&self) -> usize {
        self.toks.get(self.pos).map_or(self.src.len(), |(_, o)| *o)
    }

    fn next(&mut self) -> Tok {
        let t = self.peek().clone();
        if self.pos < self.toks.len() {
            self.pos += 1;
        }
        t
    }

    fn err<T>(&self, msg: impl Into<String>) -> Result<T, FilterError> {
        Err(error_at(self.src, self.offset(), msg.into()))
    }

    fn expr(&mut self) -> Result<Expr, FilterError> {
        let mut left = self.and()?;
        while self.peek().is_word("or") {
            self.next();
            let right = self.and()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, FilterError> {
        let mut left = self.unary()?;
        while self.peek().is_word("and") {
            self.next();
            let right = self.unary()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, FilterError> {
        match self.peek().clone() {
            Tok::Word(w) if w == "not" => {
                self.next();
                Ok(Expr::Not(Box::new(self.unary()?)))
            }
            Tok::LParen => {
                self.next();
                let e = self.expr()?;
                if self.peek() != &Tok::RParen {
                    return self.err(format!("expected \")\", found {}", self.peek().describe()));
                }
                self.next();
                Ok(e)
            }
            _ => Ok(Expr::Match(self.matcher()?)),
        }
    }

    fn matcher(&mut self) -> Result<Match, FilterError> {
        match self.peek().clone() {
            Tok::Quoted(v) => {
                self.next();
                self.value_in(v)
            }
            Tok::Word(w) if !KEYWORDS.contains(&w.as_str()) => {
                // A bare word followed by "in" / "not in" is a value; otherwise it starts a selector.
                let after = self.peek2().clone();
                if after.is_word("in")
                    || (after.is_word("not")
                        && self
                            .toks
                            .get(self.pos + 2)
                            .is_some_and(|(t, _)| t.is_word("in")))
                {
                    self.next();
                    return self.value_in(w);
                }
                let sel = self.selector()?;
                self.selector_op(sel)
            }
            other => self.err(format!(
                "expected a selector or a value, found {}",
                other.describe()
            )),
        }
    }

    fn value_in(&mut self, value: String) -> Result<Match, FilterError> {
        let negate = if self.peek().is_word("not") {
            self.next();
            true
        } else {
            false
        };
        if !self.peek().is_word("in") {
            return self.err(format!(
                "expected \"in\" after a value, found {}",
                self.peek().describe()
            ));
        }
        self.next();
        let sel = self.selector()?;
        Ok(if negate {
            Match::NotIn(value, sel)
        } else {
            Match::In(value, sel)
        })
    }

    fn selector(&mut self) -> Result<Selector, FilterError> {
        let first = match self.peek().clone() {
            Tok::Word(w) if !KEYWORDS.contains(&w.as_str()) => w,
            other => return self.err(format!("expected a selector, found {}", other.describe())),
        };
        let start = self.offset();
        self.next();
        let mut sel = Vec::new();
        push_segments(self.src, start, &first, &mut sel)?;
        loop {
            match self.peek().clone() {
                Tok::LBracket => {
                    self.next();
                    let key = match self.next() {
                        Tok::Quoted(k) => k,
                        other => {
                            self.pos -= 1;
                            return self.err(format!(
                                "expected a quoted map key, found {}",
                                other.describe()
                            ));
                        }
                    };
                    if self.peek() != &Tok::RBracket {
                        return self
                            .err(format!("expected \"]\", found {}", self.peek().describe()));
                    }
                    self.next();
                    sel.push(key);
                    // A bracket may be followed directly by ".Field".
                    if let Tok::Word(w) = self.peek().clone()
                        && let Some(rest) = w.strip_prefix('.')
                    {
                        let at = self.offset() + 1;
                        self.next();
                        push_segments(self.src, at, rest, &mut sel)?;
                    }
                }
                _ => return Ok(sel),
            }
        }
    }

    fn selector_op(&mut self, sel: Selector) -> Result<Match, FilterError> {
        match self.next() {
            Tok::Eq => Ok(Match::Equal(sel, self.value("==")?)),
            Tok::Ne => Ok(Match::NotEqual(sel, self.value("!=")?)),
            Tok::Word(w) if w == "is" => {
                let negate = if self.peek().is_word("not") {
                    self.next();
                    true
                } else {
                    false
                };
                if !self.peek().is_word("empty") {
                    return self.err(format!(
                        "expected \"empty\", found {}",
                        self.peek().describe()
                    ));
                }
                self.next();
                Ok(if negate {
                    Match::IsNotEmpty(sel)
                } else {
                    Match::IsEmpty(sel)
                })
            }
            Tok::Word(w) if w == "contains" => Ok(Match::In(self.value("contains")?, sel)),
            Tok::Word(w) if w == "matches" => Ok(Match::Matches(sel, self.regex()?)),
            Tok::Word(w) if w == "not" => match self.next() {
                Tok::Word(w) if w == "contains" => Ok(Match::NotIn(self.value("contains")?, sel)),
                Tok::Word(w) if w == "matches" => Ok(Match::NotMatches(sel, self.regex()?)),
                other => {
                    self.pos -= 1;
                    self.err(format!(
                        "expected \"contains\" or \"matches\" after \"not\", found {}",
                        other.describe()
                    ))
                }
            },
            other => {
                self.pos -= 1;
                self.err(format!(
                    "expected an operator (==, !=, is, contains, matches) after the selector, found {}",
                    other.describe()
                ))
            }
        }
    }

    fn value(&mut self, after: &str) -> Result<String, FilterError> {
        match self.peek().clone() {
            Tok::Quoted(v) => {
                self.next();
                Ok(v)
            }
            Tok::Word(w) if !KEYWORDS.contains(&w.as_str()) => {
                self.next();
                Ok(w)
            }
            other => self.err(format!(
                "expected a value after \"{after}\", found {}",
                other.describe()
            )),
        }
    }

    fn regex(&mut self) -> Result<Box<Regex>, FilterError> {
        let at = self.offset();
        let pattern = self.value("matches")?;
        Regex::new(&pattern).map(Box::new).map_err(|e| {
            error_at(
                self.src,
                at,
                format!("invalid regular expression {pattern:?}: {e}"),
            )
        })
    }
}

fn push_segments(
    src: &str,
    start: usize,
    word: &str,
    out: &mut Selector,
) -> Result<(), FilterError> {
    let mut off = start;
    for seg in word.split('.') {
        if seg.is_empty() {
            return Err(error_at(
                src,
                off,
                format!("invalid selector {word:?}: empty field name"),
            ));
        }
        out.push(seg.to_owned());
        off += seg.len() + 1;
    }
    Ok(())
}

fn error_at(src: &str, offset: usize, msg: String) -> FilterError {
    let offset = offset.min(src.len());
    let before = &src[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    FilterError {
        line,
        col,
        offset,
        msg,
    }
}

impl Filter {
    /// Parses an expression; the error names the line, column and byte offset at fault.
    pub(crate) fn parse(src: &str) -> Result<Filter, FilterError> {
        let toks = lex(src).map_err(|(off, msg)| error_at(src, off, msg))?;
        let mut p = Parser { src, toks, pos: 0 };
        if p.peek() == &Tok::End {
            return p.err("empty filter expression");
        }
        let root = p.expr()?;
        if p.peek() != &Tok::End {
            return p.err(format!(
                "unexpected {} after a complete expression",
                p.peek().describe()
            ));
        }
        Ok(Filter { root })
    }

    /// Whether `value` (one result element, as JSON) matches.
    pub(crate) fn matches(&self, value: &Value) -> bool {
        eval(&self.root, value)
    }
}

fn eval(e: &Expr, v: &Value) -> bool {
    match e {
        Expr::Or(a, b) => eval(a, v) || eval(b, v),
        Expr::And(a, b) => eval(a, v) && eval(b, v),
        Expr::Not(a) => !eval(a, v),
        Expr::Match(m) => eval_match(m, v),
    }
}

fn select<'a>(root: &'a Value, sel: &[String]) -> Vec<&'a Value> {
    let mut cur = vec![root];
    for seg in sel {
        let mut next = Vec::new();
        for v in cur {
            step(v, seg, &mut next);
        }
        cur = next;
    }
    cur
}

fn step<'a>(v: &'a Value, seg: &str, out: &mut Vec<&'a Value>) {
    match v {
        Value::Object(m) => {
            if let Some(x) = m.get(seg) {
                out.push(x);
            }
        }
        Value::Array(items) => {
            for item in items {
                step(item, seg, out);
            }
        }
        _ => {}
    }
}

fn scalar_eq(v: &Value, lit: &str) -> bool {
    match v {
        Value::String(s) => s == lit,
        Value::Number(n) => match (lit.parse::<f64>(), n.as_f64()) {
            (Ok(l), Some(x)) => l == x,
            _ => false,
        },
        Value::Bool(b) => lit.parse::<bool>().is_ok_and(|l| l == *b),
        Value::Null => lit.is_empty(),
        _ => false,
    }
}

fn contains(v: &Value, lit: &str) -> bool {
    match v {
        Value::Array(items) => items.iter().any(|i| scalar_eq(i, lit)),
        Value::Object(m) => m.contains_key(lit),
        Value::String(s) => s.contains(lit),
        _ => false,
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
        _ => false,
    }
}

fn eval_match(m: &Match, root: &Value) -> bool {
    match m {
        Match::Equal(sel, lit) => select(root, sel).iter().any(|v| scalar_eq(v, lit)),
        Match::NotEqual(sel, lit) => !select(root, sel).iter().any(|v| scalar_eq(v, lit)),
        Match::IsEmpty(sel) => select(root, sel).iter().all(|v| is_empty(v)),
        Match::IsNotEmpty(sel) => !select(root, sel).iter().all(|v| is_empty(v)),
        Match::In(lit, sel) => select(root, sel).iter().any(|v| contains(v, lit)),
        Match::NotIn(lit, sel) => !select(root, sel).iter().any(|v| contains(v, lit)),
        Match::Matches(sel, re) => select(root, sel)
            .iter()
            .any(|v| v.as_str().is_some_and(|s| re.is_match(s))),
        Match::NotMatches(sel, re) => !select(root, sel)
            .iter()
            .any(|v| v.as_str().is_some_and(|s| re.is_match(s))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry() -> Value {
        json!({
            "Node": {"Node": "n1", "Meta": {"synthetic-node": "true"}},
            "Service": {
                "ID": "web-1", "Service": "web", "Port": 8080, "Tags": ["v1", "primary"],
                "Meta": {"task-id": "abc", "a b": "spaced"}, "EnableTagOverride": false,
                "Proxy": {"Upstreams": [{"DestinationName": "db"}, {"DestinationName": "cache"}]}
            },
            "Checks": [{"Status": "passing", "ServiceID": ""}, {"Status": "critical", "ServiceID": "web-1"}],
            "ServiceMeta": {"a b": "c"}
        })
    }

    fn check(expr: &str, expected: bool) {
        let f = Filter::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
        assert_eq!(f.matches(&entry()), expected, "{expr}");
    }

    #[test]
    fn equality_on_strings_numbers_and_bools() {
        check("Service.Service == web", true);
        check("Service.Service == \"web\"", true);
        check("Service.Service == `web`", true);
        check("Service.Service != web", false);
        check("Service.Port == 8080", true);
        check("Service.Port == 80", false);
        check("Service.EnableTagOverride == false", true);
        check("Service.ID == \"web-1\"", true);
    }

    #[test]
    fn maps_and_missing_keys() {
        check("Service.Meta.task-id == abc", true);
        check("Service.Meta[\"a b\"] == spaced", true);
        check("ServiceMeta[\"a b\"] == c", true);
        check("Service.Meta.missing == x", false);
        check("Service.Meta.missing != x", true);
        check("Node.Meta.synthetic-node == \"true\"", true);
        check("Nope.Nothing == x", false);
    }

    #[test]
    fn membership_and_emptiness() {
        check("v1 in Service.Tags", true);
        check("\"v2\" in Service.Tags", false);
        check("v2 not in Service.Tags", true);
        check("Service.Tags contains primary", true);
        check("Service.Tags not contains primary", false);
        check("task-id in Service.Meta", true);
        check("Service.Tags is empty", false);
        check("Service.Tags is not empty", true);
        check("Service.Meta.missing is empty", true);
        check("eb in Service.Service", true);
    }

    #[test]
    fn lists_fan_out() {
        check("Checks.Status == critical", true);
        check("Checks.Status != critical", false);
        check("Service.Proxy.Upstreams.DestinationName == db", true);
        check("Service.Proxy.Upstreams.DestinationName == api", false);
        check("Checks.ServiceID == \"web-1\"", true);
    }

    #[test]
    fn regular_expressions() {
        check("Service.Service matches \"^w.b$\"", true);
        check("Service.Service not matches \"^db\"", true);
        check("Service.ID matches `-[0-9]+$`", true);
    }

    #[test]
    fn boolean_logic_and_precedence() {
        check("Service.Service == web and Service.Port == 8080", true);
        check("Service.Service == db or Service.Port == 8080", true);
        check("not Service.Service == db", true);
        check("not (Service.Service == web and Service.Port == 1)", true);
        check(
            "Service.Service == db and Service.Port == 1 or Service.ID == \"web-1\"",
            true,
        );
        check(
            "Service.Service == db and (Service.Port == 1 or Service.ID == \"web-1\")",
            false,
        );
    }

    #[test]
    fn errors_name_the_position() {
        let e = Filter::parse("Service.Service ==").unwrap_err();
        assert_eq!((e.line, e.col, e.offset), (1, 19, 18), "{e}");
        assert!(
            e.to_string().contains("expected a value after \"==\""),
            "{e}"
        );
        let e = Filter::parse("Service.Service = web").unwrap_err();
        assert_eq!(e.col, 17, "{e}");
        let e = Filter::parse("(Service.Service == web").unwrap_err();
        assert!(e.to_string().contains("expected \")\""), "{e}");
        let e = Filter::parse("Service.Service == \"web").unwrap_err();
        assert!(e.to_string().contains("unterminated"), "{e}");
        let e = Filter::parse("Service.Service matches \"(\"").unwrap_err();
        assert!(e.to_string().contains("invalid regular expression"), "{e}");
        let e = Filter::parse("Service.Service == web extra").unwrap_err();
        assert!(e.to_string().contains("after a complete expression"), "{e}");
        let e = Filter::parse("").unwrap_err();
        assert!(e.to_string().contains("empty filter"), "{e}");
        let e = Filter::parse("Service..Service == x").unwrap_err();
        assert!(e.to_string().contains("empty field name"), "{e}");
        let e = Filter::parse("a == b and\n  c ==").unwrap_err();
        assert_eq!((e.line, e.col), (2, 7), "{e}");
    }
}
