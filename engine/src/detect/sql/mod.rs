//! SQL injection by structure. The value is tokenised as SQL in the contexts an application
//! puts it in: inside a `'` string, inside a `"` string, or bare (a number or name). An
//! injection has to leave that context (the first quote closes the string; a bare value ends
//! after its first operand) and then continue the query in a way that changes it: a boolean
//! condition, UNION SELECT, a stacked statement, a comment that cuts the rest off, an
//! arithmetic splice with a function or subquery, ORDER/GROUP BY, INTO OUTFILE, WAITFOR.
//!
//! Prose has quotes and SQL words too ("O'Brien", "select the best plan", "1 or 2 rooms"):
//! what it lacks is that continuation right after the break. Bare values, which have no quote
//! to break, must show stronger evidence (a comparison with a literal, a known SQL function,
//! a subquery).

/// Each quote followed by what may start a continuation (see [`may_continue`]), so that
/// apostrophes in words (O'Brien, it's) never start the tokenizer.
macro_rules! after_quotes {
    ($($s:literal),* $(,)?) => {
        &[$(concat!("'", $s), concat!("\"", $s)),*]
    };
}

/// Literals that gate [`detect_after_quote`].
pub const AFTER_QUOTE: &[&str] = after_quotes!(
    " ",
    "\t",
    "\n",
    "\r",
    "\x0b",
    "\x0c",
    ")",
    ",",
    "|",
    "&",
    ";",
    "=",
    "<",
    ">",
    "!",
    "#",
    "-",
    "+",
    "*",
    "/",
    "%",
    "^",
    "~",
    "or",
    "and",
    "xor",
    "not",
    "union",
    "order",
    "group",
    "having",
    "limit",
    "procedure",
    "into",
    "waitfor",
    "like",
    "rlike",
    "regexp",
    "ilike",
    "glob",
    "sounds",
    "in",
    "between",
    "is",
    "div",
    "mod",
);

/// Literals that gate [`detect_bare`]: what a bare-value injection continues with.
pub const BARE: &[&str] = &[
    "or ",
    "or\t",
    "or\n",
    "or\r",
    "or\x0b",
    "or\x0c",
    "or(",
    "and ",
    "and\t",
    "and\n",
    "and\r",
    "and\x0b",
    "and\x0c",
    "and(",
    "xor",
    "||",
    "&&",
    "union",
    ";",
    "order",
    "group",
    "having",
    "rlike",
    "regexp",
    "into",
    "waitfor",
    "procedure",
    "sleep(",
    "benchmark(",
    "(select",
    "exec",
    "declare",
];

mod lexer;
mod parser;

use lexer::{
    is_space, is_word_byte, k, keyword, number_end, pack, Kind, Kw, Tok, Tokens, MAX_TOKENS,
};
use parser::{after_break, bare};

/// Can a continuation start with this token? Everything else ends the check at once.
fn starts_continuation(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::Comma
            | Kind::Logic
            | Kind::Semi
            | Kind::Comment
            | Kind::Arith
            | Kind::Cmp
            | Kind::Bang
            | Kind::Word(
                Kw::Or
                    | Kw::And
                    | Kw::Xor
                    | Kw::Not
                    | Kw::Union
                    | Kw::Order
                    | Kw::Group
                    | Kw::Having
                    | Kw::Limit
                    | Kw::Procedure
                    | Kw::Into
                    | Kw::Waitfor
                    | Kw::Like
                    | Kw::In
                    | Kw::Between
                    | Kw::Is
                    | Kw::ArithWord
            )
    )
}

/// Does a continuation start at `i`? Arithmetic only counts before a call or a parenthesis
/// (`'+sleep(5)`, `-(select`): `/` and `-` are everywhere in paths, versions and dates.
/// `None`: more tokens are needed to tell.
fn plausible_at(toks: &[Tok], i: usize) -> Option<bool> {
    let t = toks.get(i)?;
    if !starts_continuation(t.kind) {
        return Some(false);
    }
    if matches!(t.kind, Kind::Arith | Kind::Word(Kw::ArithWord)) {
        let n = toks.get(i + 1)?;
        return Some(
            n.kind == Kind::LParen
                || (n.call && n.known)
                || matches!(n.kind, Kind::Arith | Kind::Bang),
        );
    }
    Some(true)
}

/// After a break: the first token that is not `)` may start a continuation.
fn plausible_after_break(toks: &[Tok]) -> Option<bool> {
    let i = toks.iter().position(|t| t.kind != Kind::RParen)?;
    plausible_at(toks, i)
}

/// A bare value: sign, one operand, `)`s, then a continuation start (or a leading statement).
fn plausible_bare(toks: &[Tok]) -> Option<bool> {
    let kind = |i: usize| toks.get(i).map(|t| t.kind);
    if matches!(
        kind(0),
        Some(Kind::Word(Kw::Exec | Kw::Declare | Kw::Waitfor))
    ) {
        return Some(true);
    }
    let mut i = 0;
    if kind(i) == Some(Kind::Arith) {
        i += 1;
    }
    if matches!(
        kind(i),
        Some(Kind::Num | Kind::Var | Kind::Word(Kw::Ident | Kw::Constant))
    ) {
        i += 1;
        if kind(i) == Some(Kind::Word(Kw::AscDesc)) {
            i += 1;
        }
    }
    while kind(i) == Some(Kind::RParen) {
        i += 1;
    }
    plausible_at(toks, i)
}

/// Words a continuation may start with (the words of [`starts_continuation`]).
fn continuation_word(w: &[u8]) -> bool {
    if w.len() < 2 || w.len() > 9 {
        return false;
    }
    if w.len() == 9 {
        return w.eq_ignore_ascii_case(b"procedure");
    }
    matches!(
        pack(w),
        k::OR
            | k::AND
            | k::XOR
            | k::NOT
            | k::UNION
            | k::ORDER
            | k::GROUP
            | k::HAVING
            | k::LIMIT
            | k::INTO
            | k::WAITFOR
            | k::LIKE
            | k::RLIKE
            | k::REGEXP
            | k::ILIKE
            | k::GLOB
            | k::SOUNDS
            | k::IN
            | k::BETWEEN
            | k::IS
            | k::DIV
            | k::MOD
    ) && w.iter().all(u8::is_ascii_alphabetic)
}

fn word_end(s: &[u8], mut pos: usize) -> usize {
    while pos < s.len() && is_word_byte(s[pos]) {
        pos += 1;
    }
    pos
}

fn skip_spaces(s: &[u8], mut pos: usize) -> usize {
    while pos < s.len() && is_space(s[pos]) {
        pos += 1;
    }
    pos
}

/// A cheap look at the raw bytes before any tokenising: can a continuation start at `pos`
/// (after spaces and `)`)? Rejects prose and identifiers in a few instructions.
fn may_continue(s: &[u8], pos: usize) -> bool {
    let mut pos = skip_spaces(s, pos);
    while s.get(pos) == Some(&b')') {
        pos = skip_spaces(s, pos + 1);
    }
    let Some(&b) = s.get(pos) else {
        return false;
    };
    let next = skip_spaces(s, pos + 1);
    match b {
        _ if b.is_ascii_alphabetic() => continuation_word(&s[pos..word_end(s, pos)]),
        b',' | b'|' | b'&' | b';' | b'=' | b'<' | b'>' | b'!' => true,
        b'#' => s.get(pos + 1).is_none_or(|c| !c.is_ascii_alphanumeric()),
        // Arithmetic only before a call, a group or another operator (`'+sleep(`, `-(select`).
        b'-' | b'+' | b'*' | b'/' | b'%' | b'^' | b'~' => s.get(next).is_some_and(|&c| {
            c.is_ascii_alphabetic() || matches!(c, b'(' | b'@' | b'-' | b'+' | b'!' | b'*')
        }),
        _ => false,
    }
}

/// The same for a bare value: a sign, one operand, then a continuation; or a statement.
fn bare_may_continue(s: &[u8], pos: usize) -> bool {
    let mut pos = skip_spaces(s, pos);
    if matches!(s.get(pos), Some(b'-' | b'+')) {
        pos += 1;
    }
    match s.get(pos) {
        Some(c) if c.is_ascii_alphabetic() => {
            let end = word_end(s, pos);
            let w = &s[pos..end];
            let statement = matches!(w[0] | 0x20, b'e' | b'd' | b'w')
                && w.len() >= 4
                && matches!(keyword(w), Kw::Exec | Kw::Declare | Kw::Waitfor);
            if statement || continuation_word(w) {
                return true;
            }
            pos = end;
        }
        Some(c) if c.is_ascii_digit() => pos = number_end(s, pos),
        Some(b'@') => pos = word_end(s, pos + 1 + usize::from(s.get(pos + 1) == Some(&b'@'))),
        Some(b')' | b',' | b';' | b'|' | b'&') => return true,
        _ => return false,
    }
    let after = skip_spaces(s, pos);
    // `id desc, ...`: skip a sort direction
    let end = word_end(s, after);
    if (3..=4).contains(&(end - after)) && keyword(&s[after..end]) == Kw::AscDesc {
        pos = end;
    }
    may_continue(s, pos)
}

/// Both contexts: a quote break or a bare value.
pub fn detect(value: &[u8]) -> Option<(usize, usize)> {
    detect_after_quote(value).or_else(|| detect_bare(value))
}

/// The value sits inside a `'` or `"` string: its first quote closes it.
pub fn detect_after_quote(value: &[u8]) -> Option<(usize, usize)> {
    let mut toks: Option<Box<Tokens>> = None;
    for quote in [b'\'', b'"'] {
        let Some(q) = memchr::memchr(quote, value) else {
            continue;
        };
        if !may_continue(value, q + 1) {
            continue;
        }
        let toks = toks.get_or_insert_with(|| Box::new(Tokens::new()));
        toks.start(q + 1);
        if !toks.peek(value, plausible_after_break) {
            continue;
        }
        toks.fill(value, MAX_TOKENS);
        if let Some(end) = after_break(value, toks.as_slice()) {
            return Some((q, end));
        }
    }
    None
}

/// The value is a number or name in the query, from its start (and, for paths with spaces or
/// SQL punctuation, from the start of each segment).
pub fn detect_bare(value: &[u8]) -> Option<(usize, usize)> {
    let mut toks: Option<Box<Tokens>> = None;
    let segments = value.first() == Some(&b'/')
        && value
            .iter()
            .any(|&b| matches!(b, b' ' | b'\t' | b'\n' | b';' | b'('));
    let mut starts = [0usize; 17];
    let mut n = 1;
    if segments {
        for (i, _) in value.iter().enumerate().filter(|&(_, &b)| b == b'/') {
            if n == starts.len() {
                break;
            }
            starts[n] = i + 1;
            n += 1;
        }
    }
    for &start in &starts[..n] {
        if !bare_may_continue(value, start) {
            continue;
        }
        let toks = toks.get_or_insert_with(|| Box::new(Tokens::new()));
        toks.start(start);
        if !toks.peek(value, plausible_bare) {
            continue;
        }
        toks.fill(value, MAX_TOKENS);
        if let Some(end) = bare(value, toks.as_slice()) {
            return Some((start, end));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::detect;

    fn all_hit(values: &[&str]) {
        crate::detect::check::all_hit(detect, values);
    }

    fn none_hit(values: &[&str]) {
        crate::detect::check::none_hit(detect, values);
    }

    #[test]
    fn string_break_then_condition() {
        all_hit(&[
            "' or '1'='1",
            "admin' OR 'a'='a",
            "x' AnD 'x' LiKe 'x",
            "'or'1'='1",
            "' or ''='",
            "' or 1 -- -",
            "' || 1=1 --",
            "1' and substr(user,1,1)='s",
            "a' OR username IS NOT NULL OR username='",
            "tom' and char_length(password)>8 and '1'='1",
            "\") or (\"a\"=\"a",
            "x\" or \"x\"=\"x",
            "') or ('a'='a",
            "1' and ascii(substring((select password from users),1,1))>64--",
            "' or 3-2=1#",
            "' or true--",
            "1' and 1 in (select 1)--",
            "' or exists(select 1)--",
            "1' and sleep(5)='",
        ]);
    }

    #[test]
    fn string_break_then_other_continuations() {
        all_hit(&[
            "admin'--",
            "admin' #",
            "admin')-- -",
            "x' union select username, password from users--",
            "x' union all (select 1)",
            "'; drop table sessions; --",
            "1'; exec master..xp_cmdshell 'ping x'--",
            "';shutdown --",
            "'; declare @q varchar(99)",
            "1'+(select 1)+'",
            "'||pg_sleep(5)||'",
            "1'=sleep(3)='1",
            "1' order by 5-- -",
            "' having 1=1 --",
            "1' into outfile '/var/www/s.php'",
            "1' procedure analyse(1,1)",
            "1' waitfor delay '0:0:5'--",
            "' limit 1 --",
            "x' like '%",
            "1'='1",
            "\",NULL,NULL,NULL)waitfor delay '0:0:20' --",
            "name', (select 1))--",
        ]);
    }

    #[test]
    fn bare_values() {
        all_hit(&[
            "1 or 1=1",
            "-7 OR 3>2",
            "1 and 1=2 union select 1,2",
            "1 xor 1=1",
            "10 union select name, pass from users",
            "1;select pg_sleep(5)--",
            "1); select 1--",
            "1 and sleep(5)",
            "1 and (select 1 from dual)",
            "1 rlike (select 1)",
            "1 group by 1,2,3 having 1=1--",
            "1 order by 3--",
            "1 and extractvalue(1,concat(0x7e,version()))",
            "or 1=1",
            "union all select null,null",
            "; drop table users",
            "1e0union select 1",
            "0x31 union select 1",
            "id desc, if(1=1,sleep(5),0)",
            "1 and elt(1=1,sleep(3))",
            "1 and dbms_pipe.receive_message('a',5)=1",
            "/api/items/1 or 1=1",
            "OR x=x#",
            ",NULL,NULL)waitfor delay '0:0:20' --",
            "),NULL,NULL,NULL) waitfor delay '0:0:20' /*",
            "exec master..xp_cmdshell 'ping x'",
            "declare @s varchar(8000)",
        ]);
    }

    #[test]
    fn prose_and_data_pass() {
        none_hit(&[
            "O'Brien",
            "Emma O'Brien's order #12",
            "it's 5 o'clock somewhere",
            "rock 'n' roll hall of fame",
            "Tom's or Jerry's",
            "I tried 'or' and 'and' filters but neither returned results",
            "Colour: 'midnight blue' (not black)",
            "Doesn't work with my Mac (OS 14.4) -- returned it.",
            "she said: 'no' -- then left",
            "select the best plan for a family",
            "(select all that apply)",
            "how to drop a table in excel",
            "bring drinks; drop by at 5",
            "union square hotels",
            "order by date not working",
            "group by vs order by",
            "1 or 2 bedroom apartment",
            "between 10 and 20 dollars",
            "is null vs is empty",
            "like new condition",
            "having fun in madrid",
            "a<b and b>c",
            "(2+3)*4 >= 20",
            "x > 5 and y < 3",
            "tea or coffee = happiness",
            "and/or logic gates",
            "x--y--z",
            "Apt #4; Floor 2, 77 Main St",
            "Ben & Jerry's",
            "\"exact phrase\" search",
            "5' 10\" tall",
            "I said '#1 fan'",
            "run with '--force' option",
            "Mark's & Spencer's",
            "name eq 'O'Connor'",
            "userName eq \"noah\"",
            "emails[type eq \"work\" and value co \"@example.com\"]",
            "sort=-created_at,name",
            "Leave at door; ring twice",
            "100% cotton; size M",
            "'Twas the night before",
            "\"quoted\" and more",
            "He said 'yes' or 'no'",
            "The SQL was `UPDATE orders SET status = 'shipped' WHERE id = 42;` and it ran fine",
            "Use `SELECT id, name FROM products WHERE price < 10` in the report builder.",
            "/api/v1/users/42/orders",
            "/blog/how-to-use-select-and-union",
            "create user account",
            "drop table reservations for 6",
            "waitfor delay pedal",
            "exec chair leather",
            "Smith, John (Jr.) -- see notes",
            "user(s) selected",
            "x = x",
        ]);
    }
}
