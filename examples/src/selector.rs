//! A JMS message-selector evaluator (a subset of the SQL-92 conditional syntax JMS defines),
//! used by the example broker for `Selector("colour = 'green'")` receivers.
//!
//! # What is supported
//!
//! * Literals: strings in single quotes (`'it''s'` for a quote), integers (`42`, `42L`,
//!   `0x2A`), decimals (`1.5`, `.5`, `1e3`, `2.5F`), `TRUE`, `FALSE`, `NULL`.
//! * Identifiers: application properties by name; and the JMS header fields `JMSMessageID`,
//!   `JMSCorrelationID`, `JMSType` (the subject), `JMSPriority`, `JMSTimestamp` (creation
//!   time, ms), `JMSDeliveryMode` (`'PERSISTENT'` / `'NON_PERSISTENT'`), `JMSDestination`
//!   (the `to` address), `JMSReplyTo`. A property that is absent, or of a type selectors
//!   cannot compare (binary, list, map, …), is `NULL`.
//! * Comparison: `=`, `<>`, `<`, `>`, `<=`, `>=`. Numbers compare with numbers (integers and
//!   decimals mix), strings and booleans only with `=` and `<>`, as JMS requires; other
//!   combinations are *unknown*.
//! * `AND`, `OR`, `NOT`, parentheses, with SQL's three-valued logic (a comparison with `NULL`
//!   is *unknown*; a message is selected only when the selector is *true*).
//! * `IS NULL`, `IS NOT NULL`, `[NOT] BETWEEN a AND b`, `[NOT] IN ('a', 'b', …)`,
//!   `[NOT] LIKE 'pat%ter_n' [ESCAPE '\']`, and arithmetic `+ - * /` with unary `+`/`-`.
//! * Keywords are case-insensitive; identifiers are case-sensitive.
//!
//! Anything else (a syntax error) makes [`Selector::parse`] fail; the broker then refuses the
//! link with `amqp:not-implemented`, naming the problem.
//!
//! ```
//! use amqp_examples::selector::Selector;
//! use amqp_proto::message::Message;
//!
//! let s = Selector::parse("colour = 'green' AND (size > 3 OR size IS NULL)").unwrap();
//! let m = Message::builder().application_property("colour", "green").body("x").build();
//! assert!(s.matches(&m.into()));
//! ```

use std::cmp::Ordering;
use std::fmt;

use amqp_proto::message::{MessageId, ReceivedMessage};
use amqp_proto::Value;

/// A parsed selector.
#[derive(Clone, Debug, PartialEq)]
pub struct Selector {
    text: String,
    expr: Expr,
}

/// Why a selector did not parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelectorError {
    /// What went wrong.
    pub message: String,
    /// Byte offset into the selector text.
    pub position: usize,
}

impl fmt::Display for SelectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at offset {}", self.message, self.position)
    }
}

impl std::error::Error for SelectorError {}

#[derive(Clone, Debug, PartialEq)]
enum Lit {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum CmpOp {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
}

#[derive(Clone, Debug, PartialEq)]
enum Expr {
    Lit(Lit),
    Ident(String),
    Neg(Box<Expr>),
    Arith(ArithOp, Box<Expr>, Box<Expr>),
    Cmp(CmpOp, Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    IsNull(Box<Expr>, bool),
    Between(Box<Expr>, Box<Expr>, Box<Expr>, bool),
    In(Box<Expr>, Vec<Lit>, bool),
    Like(Box<Expr>, Vec<char>, Option<char>, bool),
}

// ------------------------------------------------------------------------------------------
// Lexer
// ------------------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ident(String),
    Kw(&'static str),
    Str(String),
    Int(i64),
    Float(f64),
    Op(&'static str),
    LParen,
    RParen,
    Comma,
    End,
}

const KEYWORDS: [&str; 11] = [
    "AND", "OR", "NOT", "IS", "NULL", "TRUE", "FALSE", "BETWEEN", "IN", "LIKE", "ESCAPE",
];

fn lex(s: &str) -> Result<Vec<(Tok, usize)>, SelectorError> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    let err = |m: &str, p: usize| SelectorError {
        message: m.to_string(),
        position: p,
    };
    while i < b.len() {
        let c = b[i];
        let start = i;
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c == b'\'' {
            let mut text = String::new();
            i += 1;
            loop {
                let rest = &s[i..];
                let Some(q) = rest.find('\'') else {
                    return Err(err("unterminated string literal", start));
                };
                text.push_str(&rest[..q]);
                i += q + 1;
                if b.get(i) == Some(&b'\'') {
                    text.push('\'');
                    i += 1;
                } else {
                    break;
                }
            }
            out.push((Tok::Str(text), start));
            continue;
        }
        if c.is_ascii_digit() || (c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit)) {
            if c == b'0' && matches!(b.get(i + 1), Some(b'x' | b'X')) {
                i += 2;
                let h = i;
                while i < b.len() && b[i].is_ascii_hexdigit() {
                    i += 1;
                }
                let v = i64::from_str_radix(&s[h..i], 16)
                    .map_err(|_| err("bad hexadecimal literal", start))?;
                if matches!(b.get(i), Some(b'l' | b'L')) {
                    i += 1;
                }
                out.push((Tok::Int(v), start));
                continue;
            }
            let mut float = false;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            if b.get(i) == Some(&b'.') {
                float = true;
                i += 1;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
            }
            if matches!(b.get(i), Some(b'e' | b'E')) {
                let mut j = i + 1;
                if matches!(b.get(j), Some(b'+' | b'-')) {
                    j += 1;
                }
                if b.get(j).is_some_and(u8::is_ascii_digit) {
                    float = true;
                    i = j;
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                }
            }
            let text = &s[start..i];
            match b.get(i) {
                Some(b'f' | b'F' | b'd' | b'D') => {
                    float = true;
                    i += 1;
                }
                Some(b'l' | b'L') if !float => i += 1,
                _ => {}
            }
            if b.get(i)
                .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
            {
                return Err(err("bad numeric literal", start));
            }
            let tok = if float {
                Tok::Float(
                    text.parse()
                        .map_err(|_| err("bad decimal literal", start))?,
                )
            } else {
                Tok::Int(
                    text.parse()
                        .map_err(|_| err("integer literal out of range", start))?,
                )
            };
            out.push((tok, start));
            continue;
        }
        if c.is_ascii_alphabetic() || c == b'_' || c == b'$' {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'$') {
                i += 1;
            }
            let word = &s[start..i];
            let upper = word.to_ascii_uppercase();
            let tok = match KEYWORDS.iter().find(|k| **k == upper) {
                Some(k) => Tok::Kw(k),
                None => Tok::Ident(word.to_string()),
            };
            out.push((tok, start));
            continue;
        }
        let two = s.get(i..i + 2).unwrap_or("");
        let op: Option<&'static str> = match two {
            "<>" => Some("<>"),
            "<=" => Some("<="),
            ">=" => Some(">="),
            _ => None,
        };
        if let Some(op) = op {
            out.push((Tok::Op(op), start));
            i += 2;
            continue;
        }
        let tok = match c {
            b'=' => Tok::Op("="),
            b'<' => Tok::Op("<"),
            b'>' => Tok::Op(">"),
            b'+' => Tok::Op("+"),
            b'-' => Tok::Op("-"),
            b'*' => Tok::Op("*"),
            b'/' => Tok::Op("/"),
            b'(' => Tok::LParen,
            b')' => Tok::RParen,
            b',' => Tok::Comma,
            _ => {
                let ch = s[i..].chars().next().unwrap_or('?');
                return Err(err(&format!("unexpected character '{ch}'"), start));
            }
        };
        out.push((tok, start));
        i += 1;
    }
    out.push((Tok::End, s.len()));
    Ok(out)
}

// ------------------------------------------------------------------------------------------
// Parser (recursive descent; precedence: OR < AND < NOT < comparison < +,- < *,/ < unary)
// ------------------------------------------------------------------------------------------

struct P {
    toks: Vec<(Tok, usize)>,
    pos: usize,
    depth: usize,
}

const MAX_DEPTH: usize = 100;

impl P {
    fn peek(&self) -> &Tok {
        &self.toks[self.pos].0
    }
    fn at(&self) -> usize {
        self.toks[self.pos].1
    }
    fn bump(&mut self) -> Tok {
        let t = self.toks[self.pos].0.clone();
        if self.pos + 1 < self.toks.len() {
            self.pos += 1;
        }
        t
    }
    fn err<T>(&self, m: impl Into<String>) -> Result<T, SelectorError> {
        Err(SelectorError {
            message: m.into(),
            position: self.at(),
        })
    }
    fn kw(&mut self, k: &str) -> bool {
        if matches!(self.peek(), Tok::Kw(x) if *x == k) {
            self.bump();
            true
        } else {
            false
        }
    }
    fn expect_kw(&mut self, k: &str) -> Result<(), SelectorError> {
        if self.kw(k) {
            Ok(())
        } else {
            self.err(format!("expected {k}"))
        }
    }
    fn enter(&mut self) -> Result<(), SelectorError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return self.err("selector nested too deeply");
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Expr, SelectorError> {
        self.enter()?;
        let mut e = self.and()?;
        while self.kw("OR") {
            let r = self.and()?;
            e = Expr::Or(Box::new(e), Box::new(r));
        }
        self.depth -= 1;
        Ok(e)
    }

    fn and(&mut self) -> Result<Expr, SelectorError> {
        let mut e = self.not()?;
        while self.kw("AND") {
            let r = self.not()?;
            e = Expr::And(Box::new(e), Box::new(r));
        }
        Ok(e)
    }

    fn not(&mut self) -> Result<Expr, SelectorError> {
        if self.kw("NOT") {
            self.enter()?;
            let e = self.not()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(e)));
        }
        self.cmp()
    }

    fn cmp(&mut self) -> Result<Expr, SelectorError> {
        let left = self.sum()?;
        let op = match self.peek() {
            Tok::Op("=") => Some(CmpOp::Eq),
            Tok::Op("<>") => Some(CmpOp::Ne),
            Tok::Op("<") => Some(CmpOp::Lt),
            Tok::Op(">") => Some(CmpOp::Gt),
            Tok::Op("<=") => Some(CmpOp::Le),
            Tok::Op(">=") => Some(CmpOp::Ge),
            _ => None,
        };
        if let Some(op) = op {
            self.bump();
            let right = self.sum()?;
            return Ok(Expr::Cmp(op, Box::new(left), Box::new(right)));
        }
        if self.kw("IS") {
            let negated = self.kw("NOT");
            self.expect_kw("NULL")?;
            return Ok(Expr::IsNull(Box::new(left), negated));
        }
        let negated = self.kw("NOT");
        if self.kw("BETWEEN") {
            let lo = self.sum()?;
            self.expect_kw("AND")?;
            let hi = self.sum()?;
            return Ok(Expr::Between(
                Box::new(left),
                Box::new(lo),
                Box::new(hi),
                negated,
            ));
        }
        if self.kw("IN") {
            if self.bump() != Tok::LParen {
                return self.err("expected '(' after IN");
            }
            let mut items = Vec::new();
            loop {
                let item = match self.bump() {
                    Tok::Str(s) => Lit::Str(s),
                    Tok::Int(n) => Lit::Int(n),
                    Tok::Float(f) => Lit::Float(f),
                    Tok::Kw("TRUE") => Lit::Bool(true),
                    Tok::Kw("FALSE") => Lit::Bool(false),
                    _ => return self.err("expected a literal in IN (...)"),
                };
                items.push(item);
                match self.bump() {
                    Tok::Comma => continue,
                    Tok::RParen => break,
                    _ => return self.err("expected ',' or ')' in IN (...)"),
                }
            }
            return Ok(Expr::In(Box::new(left), items, negated));
        }
        if self.kw("LIKE") {
            let Tok::Str(pat) = self.bump() else {
                return self.err("expected a string pattern after LIKE");
            };
            let mut escape = None;
            if self.kw("ESCAPE") {
                let Tok::Str(e) = self.bump() else {
                    return self.err("expected a one-character string after ESCAPE");
                };
                let mut chars = e.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) => escape = Some(c),
                    _ => return self.err("ESCAPE takes exactly one character"),
                }
            }
            return Ok(Expr::Like(
                Box::new(left),
                pat.chars().collect(),
                escape,
                negated,
            ));
        }
        if negated {
            return self.err("expected BETWEEN, IN or LIKE after NOT");
        }
        Ok(left)
    }

    fn sum(&mut self) -> Result<Expr, SelectorError> {
        let mut e = self.product()?;
        loop {
            let op = match self.peek() {
                Tok::Op("+") => ArithOp::Add,
                Tok::Op("-") => ArithOp::Sub,
                _ => return Ok(e),
            };
            self.bump();
            let r = self.product()?;
            e = Expr::Arith(op, Box::new(e), Box::new(r));
        }
    }

    fn product(&mut self) -> Result<Expr, SelectorError> {
        let mut e = self.unary()?;
        loop {
            let op = match self.peek() {
                Tok::Op("*") => ArithOp::Mul,
                Tok::Op("/") => ArithOp::Div,
                _ => return Ok(e),
            };
            self.bump();
            let r = self.unary()?;
            e = Expr::Arith(op, Box::new(e), Box::new(r));
        }
    }

    fn unary(&mut self) -> Result<Expr, SelectorError> {
        match self.peek() {
            Tok::Op("-") => {
                self.bump();
                self.enter()?;
                let e = self.unary()?;
                self.depth -= 1;
                Ok(match e {
                    Expr::Lit(Lit::Int(n)) => Expr::Lit(Lit::Int(n.wrapping_neg())),
                    Expr::Lit(Lit::Float(f)) => Expr::Lit(Lit::Float(-f)),
                    e => Expr::Neg(Box::new(e)),
                })
            }
            Tok::Op("+") => {
                self.bump();
                self.enter()?;
                let e = self.unary()?;
                self.depth -= 1;
                Ok(e)
            }
            _ => self.primary(),
        }
    }

    fn primary(&mut self) -> Result<Expr, SelectorError> {
        Ok(match self.bump() {
            Tok::LParen => {
                let e = self.or()?;
                if self.bump() != Tok::RParen {
                    return self.err("expected ')'");
                }
                e
            }
            Tok::Str(s) => Expr::Lit(Lit::Str(s)),
            Tok::Int(n) => Expr::Lit(Lit::Int(n)),
            Tok::Float(f) => Expr::Lit(Lit::Float(f)),
            Tok::Kw("TRUE") => Expr::Lit(Lit::Bool(true)),
            Tok::Kw("FALSE") => Expr::Lit(Lit::Bool(false)),
            Tok::Kw("NULL") => Expr::Lit(Lit::Null),
            Tok::Ident(name) => Expr::Ident(name),
            Tok::End => return self.err("unexpected end of selector"),
            t => return self.err(format!("unexpected {t:?}")),
        })
    }
}

// ------------------------------------------------------------------------------------------
// Evaluation
// ------------------------------------------------------------------------------------------

fn lit_of_value(v: &Value) -> Lit {
    match v {
        Value::Bool(b) => Lit::Bool(*b),
        Value::Ubyte(n) => Lit::Int(i64::from(*n)),
        Value::Ushort(n) => Lit::Int(i64::from(*n)),
        Value::Uint(n) => Lit::Int(i64::from(*n)),
        Value::Ulong(n) => i64::try_from(*n).map_or(Lit::Float(*n as f64), Lit::Int),
        Value::Byte(n) => Lit::Int(i64::from(*n)),
        Value::Short(n) => Lit::Int(i64::from(*n)),
        Value::Int(n) => Lit::Int(i64::from(*n)),
        Value::Long(n) => Lit::Int(*n),
        Value::Float(f) => Lit::Float(f64::from(*f)),
        Value::Double(f) => Lit::Float(*f),
        Value::Timestamp(t) => Lit::Int(t.0),
        Value::Char(c) => Lit::Str(c.to_string()),
        Value::String(s) => Lit::Str(s.to_string()),
        Value::Symbol(s) => Lit::Str(s.as_str().to_string()),
        _ => Lit::Null,
    }
}

fn id_lit(id: Option<&MessageId>) -> Lit {
    match id {
        None => Lit::Null,
        Some(MessageId::Ulong(n)) => Lit::Str(n.to_string()),
        Some(MessageId::String(s)) => Lit::Str(s.to_string()),
        Some(MessageId::Uuid(u)) => Lit::Str(u.to_string()),
        Some(MessageId::Binary(_)) => Lit::Null,
    }
}

fn resolve(name: &str, m: &ReceivedMessage) -> Lit {
    if let Some(v) = m.application_property(name) {
        return lit_of_value(v);
    }
    let p = m.properties();
    let opt_str = |s: Option<&str>| s.map_or(Lit::Null, |s| Lit::Str(s.to_string()));
    match name {
        "JMSMessageID" => id_lit(m.message_id()),
        "JMSCorrelationID" => id_lit(m.correlation_id()),
        "JMSType" => opt_str(m.subject()),
        "JMSPriority" => Lit::Int(i64::from(m.priority())),
        "JMSTimestamp" => p
            .and_then(|p| p.creation_time)
            .map_or(Lit::Null, |t| Lit::Int(t.0)),
        "JMSDeliveryMode" => Lit::Str(
            if m.durable() {
                "PERSISTENT"
            } else {
                "NON_PERSISTENT"
            }
            .into(),
        ),
        "JMSDestination" => opt_str(m.address()),
        "JMSReplyTo" => opt_str(m.reply_to()),
        _ => Lit::Null,
    }
}

fn num(l: &Lit) -> Option<f64> {
    match l {
        Lit::Int(n) => Some(*n as f64),
        Lit::Float(f) => Some(*f),
        _ => None,
    }
}

fn arith(op: ArithOp, a: Lit, b: Lit) -> Lit {
    match (&a, &b) {
        (Lit::Int(x), Lit::Int(y)) => {
            let r = match op {
                ArithOp::Add => x.checked_add(*y),
                ArithOp::Sub => x.checked_sub(*y),
                ArithOp::Mul => x.checked_mul(*y),
                ArithOp::Div => x.checked_div(*y),
            };
            r.map_or(Lit::Null, Lit::Int)
        }
        _ => match (num(&a), num(&b)) {
            (Some(x), Some(y)) => Lit::Float(match op {
                ArithOp::Add => x + y,
                ArithOp::Sub => x - y,
                ArithOp::Mul => x * y,
                ArithOp::Div => x / y,
            }),
            _ => Lit::Null,
        },
    }
}

/// Compares two values; `None` when the comparison is unknown (NULL, or types JMS does not
/// compare with this operator).
fn compare(op: CmpOp, a: &Lit, b: &Lit) -> Option<bool> {
    let ord: Ordering = match (a, b) {
        (Lit::Null, _) | (_, Lit::Null) => return None,
        (Lit::Int(x), Lit::Int(y)) => x.cmp(y),
        (Lit::Str(x), Lit::Str(y)) => {
            return match op {
                CmpOp::Eq => Some(x == y),
                CmpOp::Ne => Some(x != y),
                _ => None,
            }
        }
        (Lit::Bool(x), Lit::Bool(y)) => {
            return match op {
                CmpOp::Eq => Some(x == y),
                CmpOp::Ne => Some(x != y),
                _ => None,
            }
        }
        _ => match (num(a), num(b)) {
            (Some(x), Some(y)) => x.partial_cmp(&y)?,
            _ => return None,
        },
    };
    Some(match op {
        CmpOp::Eq => ord == Ordering::Equal,
        CmpOp::Ne => ord != Ordering::Equal,
        CmpOp::Lt => ord == Ordering::Less,
        CmpOp::Gt => ord == Ordering::Greater,
        CmpOp::Le => ord != Ordering::Greater,
        CmpOp::Ge => ord != Ordering::Less,
    })
}

fn like(text: &[char], pat: &[char], escape: Option<char>) -> bool {
    // The pattern as tokens: '%', '_', or a literal character.
    #[derive(Clone, Copy)]
    enum Pat {
        Any,
        One,
        Ch(char),
    }
    let mut p = Vec::with_capacity(pat.len());
    let mut i = 0;
    while i < pat.len() {
        let c = pat[i];
        if Some(c) == escape && i + 1 < pat.len() {
            p.push(Pat::Ch(pat[i + 1]));
            i += 2;
            continue;
        }
        p.push(match c {
            '%' => Pat::Any,
            '_' => Pat::One,
            c => Pat::Ch(c),
        });
        i += 1;
    }
    // Classic wildcard matching with backtracking on the last '%'.
    let (mut t, mut q) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match p.get(q) {
            Some(Pat::One) => {
                t += 1;
                q += 1;
            }
            Some(Pat::Ch(c)) if *c == text[t] => {
                t += 1;
                q += 1;
            }
            Some(Pat::Any) => {
                star = Some((q, t));
                q += 1;
            }
            _ => match star {
                Some((sq, st)) => {
                    q = sq + 1;
                    t = st + 1;
                    star = Some((sq, st + 1));
                }
                None => return false,
            },
        }
    }
    while matches!(p.get(q), Some(Pat::Any)) {
        q += 1;
    }
    q == p.len()
}

fn and3(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        (Some(true), Some(true)) => Some(true),
        _ => None,
    }
}

fn or3(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(true), _) | (_, Some(true)) => Some(true),
        (Some(false), Some(false)) => Some(false),
        _ => None,
    }
}

fn truth(l: &Lit) -> Option<bool> {
    match l {
        Lit::Bool(b) => Some(*b),
        _ => None,
    }
}

fn value(e: &Expr, m: &ReceivedMessage) -> Lit {
    match e {
        Expr::Lit(l) => l.clone(),
        Expr::Ident(n) => resolve(n, m),
        Expr::Neg(e) => match value(e, m) {
            Lit::Int(n) => n.checked_neg().map_or(Lit::Null, Lit::Int),
            Lit::Float(f) => Lit::Float(-f),
            _ => Lit::Null,
        },
        Expr::Arith(op, a, b) => arith(*op, value(a, m), value(b, m)),
        other => match eval(other, m) {
            Some(b) => Lit::Bool(b),
            None => Lit::Null,
        },
    }
}

fn eval(e: &Expr, m: &ReceivedMessage) -> Option<bool> {
    match e {
        Expr::And(a, b) => and3(eval(a, m), eval(b, m)),
        Expr::Or(a, b) => or3(eval(a, m), eval(b, m)),
        Expr::Not(a) => eval(a, m).map(|b| !b),
        Expr::Cmp(op, a, b) => compare(*op, &value(a, m), &value(b, m)),
        Expr::IsNull(a, negated) => Some((value(a, m) == Lit::Null) != *negated),
        Expr::Between(a, lo, hi, negated) => {
            let v = value(a, m);
            let r = and3(
                compare(CmpOp::Ge, &v, &value(lo, m)),
                compare(CmpOp::Le, &v, &value(hi, m)),
            );
            r.map(|b| b != *negated)
        }
        Expr::In(a, items, negated) => {
            let v = value(a, m);
            if v == Lit::Null {
                return None;
            }
            let mut r = Some(false);
            for i in items {
                r = or3(r, compare(CmpOp::Eq, &v, i));
            }
            r.map(|b| b != *negated)
        }
        Expr::Like(a, pat, escape, negated) => match value(a, m) {
            Lit::Str(s) => {
                let chars: Vec<char> = s.chars().collect();
                Some(like(&chars, pat, *escape) != *negated)
            }
            _ => None,
        },
        other => truth(&value(other, m)),
    }
}

impl Selector {
    /// Parses a selector.
    pub fn parse(text: &str) -> Result<Selector, SelectorError> {
        let toks = lex(text)?;
        let mut p = P {
            toks,
            pos: 0,
            depth: 0,
        };
        let expr = p.or()?;
        if *p.peek() != Tok::End {
            return p.err("unexpected text after the selector");
        }
        Ok(Selector {
            text: text.to_string(),
            expr,
        })
    }

    /// The selector text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether the message is selected (the selector is *true* for it; *false* and *unknown*
    /// both mean no).
    pub fn matches(&self, m: &ReceivedMessage) -> bool {
        eval(&self.expr, m) == Some(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use amqp_proto::message::Message;

    fn msg() -> ReceivedMessage {
        Message::builder()
            .application_property("colour", "green")
            .application_property("size", 5i64)
            .application_property("weight", 2.5f64)
            .application_property("fragile", true)
            .message_id("id-1")
            .subject("fruit")
            .body("x")
            .build()
            .into()
    }

    fn sel(s: &str) -> bool {
        Selector::parse(s)
            .unwrap_or_else(|e| panic!("{s}: {e}"))
            .matches(&msg())
    }

    #[test]
    fn comparisons_and_logic() {
        assert!(sel("colour = 'green'"));
        assert!(!sel("colour = 'red'"));
        assert!(sel("colour <> 'red'"));
        assert!(sel("size > 3 AND size <= 5"));
        assert!(sel("size >= 5.0 and weight < 3"));
        assert!(sel("NOT size < 5"));
        assert!(sel("size = 1 OR (colour = 'green' AND fragile = TRUE)"));
        assert!(sel("fragile"));
        assert!(sel("fragile <> false"));
        assert!(!sel("colour > 'a'"), "strings only compare with = and <>");
        assert!(sel(
            "JMSType = 'fruit' AND JMSMessageID = 'id-1' AND JMSPriority = 4"
        ));
        assert!(sel("size * 2 + 1 = 11 AND -size = -5 AND size / 2 = 2"));
    }

    #[test]
    fn nulls_are_unknown() {
        assert!(sel("missing IS NULL"));
        assert!(!sel("missing IS NOT NULL"));
        assert!(sel("colour IS NOT NULL"));
        assert!(!sel("missing = 1"));
        assert!(!sel("NOT (missing = 1)"), "NOT unknown is unknown");
        assert!(sel("missing = 1 OR size = 5"));
        assert!(!sel("missing = 1 AND size = 5"));
    }

    #[test]
    fn between_in_like() {
        assert!(sel("size BETWEEN 1 AND 5"));
        assert!(sel("size NOT BETWEEN 6 AND 9"));
        assert!(sel("colour IN ('red', 'green')"));
        assert!(!sel("colour NOT IN ('red', 'green')"));
        assert!(sel("colour LIKE 'gr%'"));
        assert!(sel("colour LIKE '_reen'"));
        assert!(sel("colour like '%e%n'"));
        assert!(!sel("colour LIKE 'gr'"));
        assert!(sel("colour NOT LIKE 'r%'"));
        let m: ReceivedMessage = Message::builder()
            .application_property("p", "50%off")
            .body("")
            .build()
            .into();
        let s = Selector::parse(r"p LIKE '50\%%' ESCAPE '\'").unwrap();
        assert!(s.matches(&m));
        let s = Selector::parse(r"p LIKE '5\%%' ESCAPE '\'").unwrap();
        assert!(!s.matches(&m));
    }

    #[test]
    fn literals() {
        let m: ReceivedMessage = Message::builder()
            .application_property("q", "it's")
            .application_property("n", 42i32)
            .body("")
            .build()
            .into();
        for s in ["q = 'it''s'", "n = 0x2A", "n = 42L", "n = 4.2e1", "n > .5"] {
            assert!(Selector::parse(s).unwrap().matches(&m), "{s}");
        }
    }

    #[test]
    fn errors() {
        for s in [
            "",
            "colour =",
            "colour = 'green",
            "(a = 1",
            "a = 1 b",
            "a ~ 1",
            "a NOT 1",
            "a IN ()",
            "a LIKE 1",
            "12abc = 1",
        ] {
            assert!(Selector::parse(s).is_err(), "{s:?} should not parse");
        }
        let deep = format!("{}a = 1{}", "(".repeat(500), ")".repeat(500));
        assert!(Selector::parse(&deep).is_err());
        let nots = format!("{}a = 1", "NOT ".repeat(500));
        assert!(Selector::parse(&nots).is_err());
    }
}
