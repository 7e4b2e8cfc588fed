//! The continuations an injection writes after leaving its context, as a small grammar
//! over the tokens.

use super::lexer::{Kind, Kw, Tok};

/// What an operand turned out to be; the evidence a bare value needs depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Operand {
    /// Number, string, variable, TRUE/FALSE/NULL.
    Literal,
    Ident,
    Call {
        known: bool,
    },
    Subquery,
    Paren,
}

pub(super) struct Parser<'t> {
    src: &'t [u8],
    toks: &'t [Tok],
    /// A bare value: no quote was broken, so demand stronger evidence.
    strict: bool,
}

impl Parser<'_> {
    fn kind(&self, i: usize) -> Option<Kind> {
        self.toks.get(i).map(|t| t.kind)
    }

    fn word(&self, i: usize) -> Option<Kw> {
        match self.kind(i) {
            Some(Kind::Word(k)) => Some(k),
            _ => None,
        }
    }

    fn at_end(&self, i: usize) -> bool {
        matches!(self.kind(i), None | Some(Kind::Comment))
    }

    /// Index after the parenthesised group opening at `i` (which is `(`).
    fn skip_group(&self, i: usize) -> Option<usize> {
        let mut depth = 0usize;
        for (j, t) in self.toks.iter().enumerate().skip(i) {
            match t.kind {
                Kind::LParen => depth += 1,
                Kind::RParen => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        return Some(j + 1);
                    }
                }
                _ => {}
            }
        }
        // Unclosed: the rest of the query closes it. Fine as evidence, if bounded.
        Some(self.toks.len())
    }

    /// Parses one operand at `i`: returns what it is and the index after it.
    fn operand(&self, mut i: usize) -> Option<(Operand, usize)> {
        // Unary minus, plus, bitwise not, NOT, `!` before an operand.
        while self.word(i) == Some(Kw::Not)
            || self.kind(i) == Some(Kind::Bang)
            || (self.kind(i) == Some(Kind::Arith)
                && matches!(self.src.get(self.toks[i].start), Some(b'-' | b'+' | b'~')))
        {
            i += 1;
        }
        let t = self.toks.get(i)?;
        match t.kind {
            Kind::Num | Kind::Var | Kind::Str { .. } => Some((Operand::Literal, i + 1)),
            Kind::Word(Kw::Constant) => Some((Operand::Literal, i + 1)),
            Kind::LParen => {
                let inner = match self.word(i + 1) {
                    Some(Kw::Select) => Operand::Subquery,
                    _ => Operand::Paren,
                };
                Some((inner, self.skip_group(i)?))
            }
            Kind::Word(Kw::Exists) if t.call => Some((Operand::Subquery, self.skip_group(i + 1)?)),
            Kind::Word(Kw::Case) => Some((Operand::Call { known: true }, i + 1)),
            Kind::Word(Kw::Ident | Kw::If | Kw::Object | Kw::ArithWord) => {
                // Dotted names: schema.table, dbms_pipe.receive_message
                let mut j = i + 1;
                let mut last = i;
                while self.kind(j) == Some(Kind::Dot)
                    && matches!(self.kind(j + 1), Some(Kind::Word(_)))
                {
                    last = j + 1;
                    j += 2;
                }
                if self.toks[last].call {
                    let known = self.toks[i].known || self.toks[last].known;
                    Some((Operand::Call { known }, self.skip_group(j)?))
                } else {
                    Some((Operand::Ident, j))
                }
            }
            _ => None,
        }
    }

    /// operand (arith operand)*: returns the kinds seen (the strongest) and the index after.
    fn expression(&self, i: usize) -> Option<(Operand, usize)> {
        let (mut best, mut j) = self.operand(i)?;
        while matches!(self.kind(j), Some(Kind::Arith)) || self.word(j) == Some(Kw::ArithWord) {
            match self.operand(j + 1) {
                Some((o, next)) => {
                    best = stronger(best, o);
                    j = next;
                }
                None => break,
            }
        }
        Some((best, j))
    }

    /// A comparison at `i` (after a left operand): returns the right side and the index after.
    fn comparison(&self, i: usize) -> Option<(Operand, usize)> {
        match self.kind(i)? {
            Kind::Cmp => self.expression(i + 1),
            Kind::Word(Kw::Like) => {
                let j = if self.word(i + 1) == Some(Kw::Like) {
                    i + 2
                } else {
                    i + 1
                };
                self.expression(j)
            }
            Kind::Word(Kw::Not) => match self.word(i + 1) {
                Some(Kw::Like | Kw::In | Kw::Between) => self.comparison(i + 1),
                _ => None,
            },
            Kind::Word(Kw::Is) => {
                let j = if self.word(i + 1) == Some(Kw::Not) {
                    i + 2
                } else {
                    i + 1
                };
                (self.word(j) == Some(Kw::Constant)).then_some((Operand::Literal, j + 1))
            }
            Kind::Word(Kw::In) => {
                if self.kind(i + 1) == Some(Kind::LParen) {
                    let inner = if self.word(i + 2) == Some(Kw::Select) {
                        Operand::Subquery
                    } else {
                        Operand::Literal
                    };
                    Some((inner, self.skip_group(i + 1)?))
                } else {
                    None
                }
            }
            Kind::Word(Kw::Between) => {
                let (a, j) = self.expression(i + 1)?;
                if self.word(j) != Some(Kw::And) {
                    return None;
                }
                let (b, k) = self.expression(j + 1)?;
                Some((stronger(a, b), k))
            }
            _ => None,
        }
    }

    /// A boolean condition after OR/AND/XOR at `i - 1`.
    fn condition(&self, i: usize) -> Option<usize> {
        let (left, j) = self.expression(i)?;
        if let Some((right, k)) = self.comparison(j) {
            let evidence = !self.strict
                || matches!(
                    left,
                    Operand::Literal | Operand::Call { known: true } | Operand::Subquery
                )
                || matches!(
                    right,
                    Operand::Literal | Operand::Call { known: true } | Operand::Subquery
                )
                || (k == j + 2 && self.same_word(i, j + 1)); // x=x
            return evidence.then_some(k);
        }
        match left {
            Operand::Subquery | Operand::Call { known: true } => Some(j),
            Operand::Call { known: false } | Operand::Paren if !self.strict => Some(j),
            Operand::Literal
                if !self.strict
                    && (self.at_end(j)
                        || matches!(self.kind(j), Some(Kind::Semi | Kind::RParen))) =>
            {
                Some(j)
            }
            Operand::Ident if !self.strict && self.kind(j) == Some(Kind::Comment) => Some(j + 1),
            _ => None,
        }
    }

    /// `WAITFOR DELAY '0:0:5'` / `WAITFOR TIME '...'` at `i`.
    fn waitfor(&self, i: usize) -> Option<usize> {
        (self.word(i + 1) == Some(Kw::Delay)
            && matches!(self.kind(i + 2), Some(Kind::Str { .. } | Kind::Num)))
        .then_some(i + 3)
    }

    fn same_word(&self, a: usize, b: usize) -> bool {
        let text = |i: usize| {
            let t = self.toks.get(i)?;
            matches!(t.kind, Kind::Word(Kw::Ident)).then(|| &self.src[t.start..t.end])
        };
        matches!((text(a), text(b)), (Some(x), Some(y)) if x.eq_ignore_ascii_case(y))
    }

    /// Skips what closes the surrounding construct: `)` and the rest of a value list
    /// (`,NULL,NULL)`). Returns the index after it, and whether a list element was itself a
    /// subquery or known function (`,(select ...)`).
    fn list_tail(&self, mut i: usize) -> (usize, bool) {
        let mut strong = false;
        loop {
            if self.kind(i) == Some(Kind::RParen) {
                i += 1;
            } else if self.kind(i) == Some(Kind::Comma) {
                match self.expression(i + 1) {
                    Some((o, next)) => {
                        strong |= matches!(o, Operand::Subquery | Operand::Call { known: true });
                        i = next;
                    }
                    None => return (i, strong),
                }
            } else {
                return (i, strong);
            }
        }
    }

    /// A statement that starts a bare value without `;`: only forms no prose has.
    fn leading_statement(&self) -> Option<usize> {
        let name = |i: usize| self.toks.get(i).map(|t| &self.src[t.start..t.end]);
        match self.word(0)? {
            Kw::Exec => {
                let target = name(1)?;
                let lower =
                    |p: &[u8]| target.len() >= p.len() && target[..p.len()].eq_ignore_ascii_case(p);
                (lower(b"xp_") || lower(b"sp_") || lower(b"master")).then_some(2)
            }
            Kw::Declare => (self.kind(1) == Some(Kind::Var)).then_some(2),
            Kw::Waitfor => self.waitfor(0),
            _ => None,
        }
    }

    /// The query could stop here: end of value, a comment, `;`, `)` or another condition.
    fn ends_clause(&self, i: usize) -> bool {
        self.at_end(i)
            || matches!(self.kind(i), Some(Kind::Semi | Kind::RParen | Kind::Logic))
            || matches!(
                self.word(i),
                Some(Kw::Or | Kw::And | Kw::Xor | Kw::Limit | Kw::Order)
            )
    }

    /// A statement that may follow `;`.
    fn statement(&self, i: usize) -> Option<usize> {
        let w = self.word(i)?;
        let next = self.word(i + 1);
        match w {
            Kw::Select => self.select_list(i + 1),
            Kw::Insert => (next == Some(Kw::Into)).then_some(i + 2),
            Kw::Delete => (next == Some(Kw::From)).then_some(i + 2),
            Kw::Update => {
                (next == Some(Kw::Ident) && self.word(i + 2) == Some(Kw::Set)).then_some(i + 3)
            }
            Kw::Drop | Kw::Create | Kw::Alter | Kw::Truncate => {
                (next == Some(Kw::Object)).then_some(i + 2)
            }
            Kw::Exec => match self.kind(i + 1) {
                Some(Kind::Word(_) | Kind::LParen | Kind::Var) => Some(i + 2),
                _ => None,
            },
            Kw::Declare => (self.kind(i + 1) == Some(Kind::Var)).then_some(i + 2),
            Kw::Set => (self.kind(i + 1) == Some(Kind::Var)).then_some(i + 2),
            Kw::Shutdown => {
                (self.at_end(i + 1) || self.kind(i + 1) == Some(Kind::Semi)).then_some(i + 1)
            }
            Kw::Waitfor => self.waitfor(i),
            Kw::If => matches!(self.kind(i + 1), Some(Kind::LParen)).then_some(i + 2),
            Kw::Call => self.toks[i + 1..].first().filter(|t| t.call).map(|_| i + 2),
            Kw::Copy => match self.kind(i + 1) {
                Some(Kind::LParen) => Some(i + 2),
                Some(Kind::Word(_))
                    if matches!(self.word(i + 2), Some(Kw::From) | Some(Kw::Ident)) =>
                {
                    Some(i + 3)
                }
                _ => None,
            },
            _ => None,
        }
    }

    /// After SELECT: a select list that is SQL, not "select the best plan".
    fn select_list(&self, i: usize) -> Option<usize> {
        let mut j = i;
        if self.word(j) == Some(Kw::AllDistinct) {
            j += 1;
        }
        match self.kind(j)? {
            Kind::Num | Kind::Var | Kind::Str { .. } | Kind::Word(Kw::Constant | Kw::Case) => {
                Some(j + 1)
            }
            Kind::Arith if self.src.get(self.toks[j].start) == Some(&b'*') => Some(j + 1),
            Kind::LParen => Some(j + 1),
            Kind::Word(_) if self.toks[j].call => Some(j + 1),
            Kind::Word(Kw::Ident) => {
                let mut k = j + 1;
                while self.kind(k) == Some(Kind::Dot)
                    && matches!(self.kind(k + 1), Some(Kind::Word(_)))
                {
                    k += 2;
                }
                match self.kind(k) {
                    Some(Kind::Comma) => Some(k + 1),
                    Some(Kind::Word(Kw::From)) => Some(k + 1),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// Does the query continue at `i` in a way that changes it? Returns the index after the
    /// evidence.
    fn continuation(&self, i: usize) -> Option<usize> {
        let t = self.toks.get(i)?;
        match t.kind {
            Kind::Logic => self.condition(i + 1),
            Kind::Word(Kw::Or | Kw::And | Kw::Xor) => self.condition(i + 1),
            Kind::Word(Kw::Union) => {
                let mut j = i + 1;
                while self.word(j) == Some(Kw::AllDistinct) || self.kind(j) == Some(Kind::LParen) {
                    j += 1;
                }
                (self.word(j) == Some(Kw::Select)).then_some(j + 1)
            }
            Kind::Semi => {
                if let Some(end) = self.statement(i + 1) {
                    return Some(end);
                }
                (!self.strict && self.at_end(i + 1)).then_some(i + 1)
            }
            Kind::Comment => (!self.strict).then_some(i + 1),
            // A list (ORDER BY columns, IN lists) extended with a function or subquery.
            Kind::Arith | Kind::Comma | Kind::Word(Kw::ArithWord) => match self.operand(i + 1)? {
                (Operand::Subquery | Operand::Call { known: true }, j) => Some(j),
                _ => None,
            },
            Kind::Cmp if !self.strict => {
                let (right, j) = self.expression(i + 1)?;
                let strong = matches!(right, Operand::Call { known: true } | Operand::Subquery);
                (strong || (right == Operand::Literal && self.ends_clause(j))).then_some(j)
            }
            Kind::Word(Kw::Order | Kw::Group) if self.word(i + 1) == Some(Kw::By) => {
                let (o, j) = self.operand(i + 2)?;
                match o {
                    Operand::Subquery | Operand::Call { known: true } => Some(j),
                    Operand::Literal if self.kind(i + 2) == Some(Kind::Num) => {
                        let cut = self.at_end(j)
                            || matches!(
                                self.kind(j),
                                Some(Kind::Comma | Kind::Semi | Kind::RParen)
                            );
                        (cut || !self.strict).then_some(j)
                    }
                    Operand::Ident | Operand::Literal if !self.strict => Some(j),
                    _ => None,
                }
            }
            Kind::Word(Kw::Having) => {
                let (left, j) = self.expression(i + 1)?;
                let (right, k) = self.comparison(j)?;
                let evidence =
                    !self.strict || (left == Operand::Literal && right == Operand::Literal);
                evidence.then_some(k)
            }
            Kind::Word(Kw::Limit) if !self.strict => {
                (self.kind(i + 1) == Some(Kind::Num)).then_some(i + 2)
            }
            Kind::Word(Kw::Procedure) => (self.word(i + 1) == Some(Kw::Analyse)).then_some(i + 2),
            Kind::Word(Kw::Into) => (self.word(i + 1) == Some(Kw::Outfile)).then_some(i + 2),
            Kind::Word(Kw::Waitfor) => self.waitfor(i),
            Kind::Word(Kw::Like | Kw::In | Kw::Between | Kw::Is | Kw::Not) => {
                let (right, j) = self.comparison(i)?;
                let strong = matches!(right, Operand::Subquery | Operand::Call { known: true });
                (strong || (!self.strict && self.ends_clause(j))).then_some(j)
            }
            _ => None,
        }
    }
}

pub(super) fn stronger(a: Operand, b: Operand) -> Operand {
    let rank = |o: Operand| match o {
        Operand::Subquery => 4,
        Operand::Call { known: true } => 3,
        Operand::Literal => 2,
        Operand::Call { known: false } => 1,
        Operand::Paren | Operand::Ident => 0,
    };
    if rank(b) > rank(a) {
        b
    } else {
        a
    }
}

/// After a closing quote: skip closing parentheses, then look for a continuation.
pub(super) fn after_break(src: &[u8], toks: &[Tok]) -> Option<usize> {
    let p = Parser {
        src,
        toks,
        strict: false,
    };
    let (i, strong) = p.list_tail(0);
    let end = if strong { i } else { p.continuation(i)? };
    Some(toks.get(end.saturating_sub(1)).or(toks.last())?.end)
}

/// A bare value: an optional first operand, closing parentheses, then a strict continuation.
pub(super) fn bare(src: &[u8], toks: &[Tok]) -> Option<usize> {
    let p = Parser {
        src,
        toks,
        strict: true,
    };
    let mut i = 0;
    if matches!(p.kind(i), Some(Kind::Arith)) {
        i += 1; // sign
    }
    if matches!(
        p.kind(i),
        Some(Kind::Num | Kind::Var | Kind::Word(Kw::Ident | Kw::Constant))
    ) && !toks[i].call
    {
        i += 1;
        if p.word(i) == Some(Kw::AscDesc) {
            i += 1;
        }
    }
    if i == 0 {
        if let Some(end) = p.leading_statement() {
            return Some(toks[end - 1].end);
        }
    }
    let (i, strong) = p.list_tail(i);
    let end = if strong { i } else { p.continuation(i)? };
    Some(toks.get(end.saturating_sub(1)).or(toks.last())?.end)
}
