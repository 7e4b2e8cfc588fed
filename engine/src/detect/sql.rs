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

/// Tokens looked at after a break: enough for any continuation we recognise, bounded for cost.
const MAX_TOKENS: usize = 40;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kw {
    Ident,
    Or,
    And,
    Xor,
    Not,
    Union,
    Select,
    From,
    Insert,
    Into,
    Update,
    Set,
    Delete,
    Drop,
    Create,
    Alter,
    Truncate,
    Exec,
    Declare,
    Shutdown,
    Waitfor,
    Delay,
    Order,
    Group,
    By,
    Having,
    Limit,
    Procedure,
    Analyse,
    Outfile,
    Like,
    Is,
    In,
    Between,
    /// TRUE, FALSE, NULL
    Constant,
    Exists,
    Case,
    AllDistinct,
    If,
    Call,
    Copy,
    /// DIV, MOD: arithmetic spelled as words
    ArithWord,
    /// TABLE, DATABASE, USER, ...: objects that DROP/CREATE/ALTER name
    Object,
    AscDesc,
}

/// A word of up to eight ASCII letters packed into an integer, lower-cased: keyword lookup
/// is then one integer match instead of string comparisons (it runs for every word).
const fn pack(word: &[u8]) -> u64 {
    let mut v = 0u64;
    let mut i = 0;
    while i < word.len() {
        v = (v << 8) | (word[i] | 0x20) as u64;
        i += 1;
    }
    v
}

/// Packed keywords, for [`keyword`] and [`continuation_word`].
mod k {
    use super::pack;
    pub const OR: u64 = pack(b"or");
    pub const AND: u64 = pack(b"and");
    pub const XOR: u64 = pack(b"xor");
    pub const NOT: u64 = pack(b"not");
    pub const UNION: u64 = pack(b"union");
    pub const SELECT: u64 = pack(b"select");
    pub const FROM: u64 = pack(b"from");
    pub const INSERT: u64 = pack(b"insert");
    pub const REPLACE: u64 = pack(b"replace");
    pub const INTO: u64 = pack(b"into");
    pub const UPDATE: u64 = pack(b"update");
    pub const SET: u64 = pack(b"set");
    pub const DELETE: u64 = pack(b"delete");
    pub const DROP: u64 = pack(b"drop");
    pub const CREATE: u64 = pack(b"create");
    pub const ALTER: u64 = pack(b"alter");
    pub const TRUNCATE: u64 = pack(b"truncate");
    pub const EXEC: u64 = pack(b"exec");
    pub const EXECUTE: u64 = pack(b"execute");
    pub const DECLARE: u64 = pack(b"declare");
    pub const SHUTDOWN: u64 = pack(b"shutdown");
    pub const WAITFOR: u64 = pack(b"waitfor");
    pub const DELAY: u64 = pack(b"delay");
    pub const TIME: u64 = pack(b"time");
    pub const ORDER: u64 = pack(b"order");
    pub const GROUP: u64 = pack(b"group");
    pub const BY: u64 = pack(b"by");
    pub const HAVING: u64 = pack(b"having");
    pub const LIMIT: u64 = pack(b"limit");
    pub const ANALYSE: u64 = pack(b"analyse");
    pub const ANALYZE: u64 = pack(b"analyze");
    pub const OUTFILE: u64 = pack(b"outfile");
    pub const DUMPFILE: u64 = pack(b"dumpfile");
    pub const LIKE: u64 = pack(b"like");
    pub const RLIKE: u64 = pack(b"rlike");
    pub const REGEXP: u64 = pack(b"regexp");
    pub const ILIKE: u64 = pack(b"ilike");
    pub const GLOB: u64 = pack(b"glob");
    pub const SOUNDS: u64 = pack(b"sounds");
    pub const IS: u64 = pack(b"is");
    pub const IN: u64 = pack(b"in");
    pub const BETWEEN: u64 = pack(b"between");
    pub const TRUE: u64 = pack(b"true");
    pub const FALSE: u64 = pack(b"false");
    pub const NULL: u64 = pack(b"null");
    pub const UNKNOWN: u64 = pack(b"unknown");
    pub const EXISTS: u64 = pack(b"exists");
    pub const CASE: u64 = pack(b"case");
    pub const ALL: u64 = pack(b"all");
    pub const DISTINCT: u64 = pack(b"distinct");
    pub const TOP: u64 = pack(b"top");
    pub const IF: u64 = pack(b"if");
    pub const CALL: u64 = pack(b"call");
    pub const COPY: u64 = pack(b"copy");
    pub const DIV: u64 = pack(b"div");
    pub const MOD: u64 = pack(b"mod");
    pub const TABLE: u64 = pack(b"table");
    pub const DATABASE: u64 = pack(b"database");
    pub const USER: u64 = pack(b"user");
    pub const VIEW: u64 = pack(b"view");
    pub const INDEX: u64 = pack(b"index");
    pub const FUNCTION: u64 = pack(b"function");
    pub const SCHEMA: u64 = pack(b"schema");
    pub const TRIGGER: u64 = pack(b"trigger");
    pub const LOGIN: u64 = pack(b"login");
    pub const COLUMN: u64 = pack(b"column");
    pub const ASC: u64 = pack(b"asc");
    pub const DESC: u64 = pack(b"desc");
}

fn keyword(word: &[u8]) -> Kw {
    if word.len() == 9 && word.eq_ignore_ascii_case(b"procedure") {
        return Kw::Procedure;
    }
    if word.len() > 8 || !word.iter().all(u8::is_ascii_alphabetic) {
        return Kw::Ident;
    }
    match pack(word) {
        k::OR => Kw::Or,
        k::AND => Kw::And,
        k::XOR => Kw::Xor,
        k::NOT => Kw::Not,
        k::UNION => Kw::Union,
        k::SELECT => Kw::Select,
        k::FROM => Kw::From,
        k::INSERT | k::REPLACE => Kw::Insert,
        k::INTO => Kw::Into,
        k::UPDATE => Kw::Update,
        k::SET => Kw::Set,
        k::DELETE => Kw::Delete,
        k::DROP => Kw::Drop,
        k::CREATE => Kw::Create,
        k::ALTER => Kw::Alter,
        k::TRUNCATE => Kw::Truncate,
        k::EXEC | k::EXECUTE => Kw::Exec,
        k::DECLARE => Kw::Declare,
        k::SHUTDOWN => Kw::Shutdown,
        k::WAITFOR => Kw::Waitfor,
        k::DELAY | k::TIME => Kw::Delay,
        k::ORDER => Kw::Order,
        k::GROUP => Kw::Group,
        k::BY => Kw::By,
        k::HAVING => Kw::Having,
        k::LIMIT => Kw::Limit,
        k::ANALYSE | k::ANALYZE => Kw::Analyse,
        k::OUTFILE | k::DUMPFILE => Kw::Outfile,
        k::LIKE | k::RLIKE | k::REGEXP | k::ILIKE | k::GLOB | k::SOUNDS => Kw::Like,
        k::IS => Kw::Is,
        k::IN => Kw::In,
        k::BETWEEN => Kw::Between,
        k::TRUE | k::FALSE | k::NULL | k::UNKNOWN => Kw::Constant,
        k::EXISTS => Kw::Exists,
        k::CASE => Kw::Case,
        k::ALL | k::DISTINCT | k::TOP => Kw::AllDistinct,
        k::IF => Kw::If,
        k::CALL => Kw::Call,
        k::COPY => Kw::Copy,
        k::DIV | k::MOD => Kw::ArithWord,
        k::TABLE
        | k::DATABASE
        | k::USER
        | k::VIEW
        | k::INDEX
        | k::FUNCTION
        | k::SCHEMA
        | k::TRIGGER
        | k::LOGIN
        | k::COLUMN => Kw::Object,
        k::ASC | k::DESC => Kw::AscDesc,
        _ => Kw::Ident,
    }
}

/// Functions that show up in injections: time delays, error-based extraction, string
/// building and fingerprinting. A bare value calling one of these is SQL, not prose.
fn known_function(name: &[u8]) -> bool {
    const NAMES: &[&str] = &[
        "sleep",
        "pg_sleep",
        "benchmark",
        "extractvalue",
        "updatexml",
        "ascii",
        "ord",
        "substring",
        "substr",
        "mid",
        "length",
        "char_length",
        "len",
        "char",
        "chr",
        "nchar",
        "concat",
        "concat_ws",
        "group_concat",
        "if",
        "iif",
        "elt",
        "ifnull",
        "isnull",
        "nullif",
        "coalesce",
        "cast",
        "convert",
        "version",
        "database",
        "user",
        "current_user",
        "system_user",
        "session_user",
        "schema",
        "count",
        "rand",
        "floor",
        "hex",
        "unhex",
        "md5",
        "sha1",
        "load_file",
        "exists",
        "randomblob",
        "make_set",
        "bin",
        "row",
        "json_keys",
        "gtid_subset",
        "exp",
        "name_const",
        "db_name",
        "host_name",
        "suser_name",
        "user_name",
        "is_srvrolemember",
        "pg_read_file",
        "xp_cmdshell",
        "sqlite_version",
        "instr",
        "locate",
        "sys_context",
        "getxml",
        "xmltype",
        "to_char",
        "receive_message",
        "get_host_address",
        "sn",
        "utl_inaddr",
        "dbms_pipe",
        "ctxsys",
        "lo_import",
        "current_database",
        "@@version",
        "pg_ls_dir",
        "ascii_str",
        "unicode",
        "waitfor",
    ];
    let last = name.rsplit(|&b| b == b'.').next().unwrap_or(name);
    NAMES.iter().any(|n| super::eq_word(last, n))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Str {
        closed: bool,
    },
    Num,
    Var,
    Word(Kw),
    LParen,
    RParen,
    Comma,
    Semi,
    Dot,
    Cmp,
    Arith,
    /// `||`, `&&`
    Logic,
    /// `!`
    Bang,
    Comment,
    Other,
}

#[derive(Debug, Clone, Copy)]
struct Tok {
    kind: Kind,
    start: usize,
    end: usize,
    /// A word directly followed by `(`: a function call.
    call: bool,
    /// A call to one of the [`known_function`]s.
    known: bool,
}

impl Default for Tok {
    fn default() -> Tok {
        Tok {
            kind: Kind::Other,
            start: 0,
            end: 0,
            call: false,
            known: false,
        }
    }
}

/// Tokens on the stack, read lazily: most values are rejected after one or two tokens, and
/// the request path allocates nothing here.
struct Tokens {
    buf: [Tok; MAX_TOKENS],
    len: usize,
    /// Where the next token starts.
    pos: usize,
    exhausted: bool,
}

impl Tokens {
    fn new() -> Tokens {
        Tokens {
            buf: [Tok::default(); MAX_TOKENS],
            len: 0,
            pos: 0,
            exhausted: false,
        }
    }

    fn start(&mut self, pos: usize) {
        self.len = 0;
        self.pos = pos;
        self.exhausted = false;
    }

    fn as_slice(&self) -> &[Tok] {
        &self.buf[..self.len]
    }

    /// Reads tokens until there are `n` (or the input ends). Then runs `check` on what there
    /// is, reading two more tokens each time it needs them (`None`).
    fn peek(&mut self, s: &[u8], check: impl Fn(&[Tok]) -> Option<bool>) -> bool {
        let mut want = 2;
        loop {
            self.fill(s, want);
            match check(self.as_slice()) {
                Some(answer) => return answer,
                None if self.exhausted || self.len >= MAX_TOKENS => return false,
                None => want = self.len + 2,
            }
        }
    }
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// Bytes of identifiers and keywords: letters, digits, `_`, `$` and non-ASCII (a table:
/// this runs for every byte of every word looked at).
const WORD_BYTE: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80;
        b += 1;
    }
    t
};

fn is_word_byte(b: u8) -> bool {
    WORD_BYTE[usize::from(b)]
}

impl Tokens {
    /// Tokenises `s` onwards until there are `upto` tokens (at most [`MAX_TOKENS`]).
    fn fill(&mut self, s: &[u8], upto: usize) {
        let out = self;
        let mut pos = out.pos;
        while out.len < upto.min(MAX_TOKENS) {
            while pos < s.len() && is_space(s[pos]) {
                pos += 1;
            }
            let Some(&b) = s.get(pos) else {
                out.exhausted = true;
                break;
            };
            let start = pos;
            let next = s.get(pos + 1).copied();
            let kind = match b {
                b'\'' | b'"' => {
                    pos += 1;
                    let mut closed = false;
                    while pos < s.len() {
                        if s[pos] == b'\\' {
                            pos += 2;
                            continue;
                        }
                        if s[pos] == b {
                            if s.get(pos + 1) == Some(&b) {
                                pos += 2;
                                continue;
                            }
                            pos += 1;
                            closed = true;
                            break;
                        }
                        pos += 1;
                    }
                    pos = pos.min(s.len());
                    Kind::Str { closed }
                }
                b'`' => {
                    pos += 1;
                    while pos < s.len() && s[pos] != b'`' {
                        pos += 1;
                    }
                    pos = (pos + 1).min(s.len());
                    Kind::Word(Kw::Ident)
                }
                b'0'..=b'9' => {
                    pos = number_end(s, pos);
                    Kind::Num
                }
                b'.' if next.is_some_and(|c| c.is_ascii_digit()) => {
                    pos = number_end(s, pos);
                    Kind::Num
                }
                b'@' => {
                    pos += 1;
                    if s.get(pos) == Some(&b'@') {
                        pos += 1;
                    }
                    let from = pos;
                    while pos < s.len() && (is_word_byte(s[pos]) || s[pos] == b'.') {
                        pos += 1;
                    }
                    if pos == from {
                        Kind::Other
                    } else {
                        Kind::Var
                    }
                }
                // MySQL's `#` comment; `#hashtag` and `#4521` in prose are not evidence.
                b'#' if next.is_some_and(|c| c.is_ascii_alphanumeric()) => {
                    pos += 1;
                    Kind::Other
                }
                b'#' => {
                    pos = s.len();
                    Kind::Comment
                }
                b'-' if next == Some(b'-') => {
                    // `--` starts a comment when followed by a space, the end or more dashes
                    // (MySQL's rule); `x--y` in prose stays two minus signs.
                    let after = s.get(pos + 2).copied();
                    if after.is_none_or(|c| is_space(c) || matches!(c, b'-' | b'+' | b';' | 0)) {
                        pos = s.len();
                        Kind::Comment
                    } else {
                        pos += 1;
                        Kind::Arith
                    }
                }
                b'/' if next == Some(b'*') => match find(&s[pos + 2..], b"*/") {
                    Some(end) => {
                        pos += 2 + end + 2;
                        continue; // a closed comment is whitespace
                    }
                    None => {
                        pos = s.len();
                        Kind::Comment
                    }
                },
                b'(' => {
                    pos += 1;
                    Kind::LParen
                }
                b')' => {
                    pos += 1;
                    Kind::RParen
                }
                b',' => {
                    pos += 1;
                    Kind::Comma
                }
                b';' => {
                    pos += 1;
                    Kind::Semi
                }
                b'.' => {
                    pos += 1;
                    Kind::Dot
                }
                b'|' if next == Some(b'|') => {
                    pos += 2;
                    Kind::Logic
                }
                b'&' if next == Some(b'&') => {
                    pos += 2;
                    Kind::Logic
                }
                b'=' | b'<' | b'>' => {
                    pos += 1;
                    while pos < s.len() && matches!(s[pos], b'=' | b'<' | b'>') && pos - start < 3 {
                        pos += 1;
                    }
                    Kind::Cmp
                }
                b'!' if next == Some(b'=') => {
                    pos += 2;
                    Kind::Cmp
                }
                b':' if next == Some(b'=') => {
                    pos += 2;
                    Kind::Cmp
                }
                b'!' => {
                    pos += 1;
                    Kind::Bang
                }
                b'+' | b'-' | b'*' | b'/' | b'%' | b'|' | b'&' | b'^' | b'~' => {
                    pos += 1;
                    Kind::Arith
                }
                _ if is_word_byte(b) => {
                    while pos < s.len() && is_word_byte(s[pos]) {
                        pos += 1;
                    }
                    Kind::Word(keyword(&s[start..pos]))
                }
                _ => {
                    pos += 1;
                    Kind::Other
                }
            };
            let call = matches!(kind, Kind::Word(_)) && {
                let mut p = pos;
                while p < s.len() && is_space(s[p]) {
                    p += 1;
                }
                s.get(p) == Some(&b'(')
            };
            let known = call && known_function(&s[start..pos]);
            out.buf[out.len] = Tok {
                kind,
                start,
                end: pos,
                call,
                known,
            };
            out.len += 1;
        }
        out.pos = pos;
    }
}

fn number_end(s: &[u8], mut pos: usize) -> usize {
    if s[pos] == b'0' && matches!(s.get(pos + 1), Some(b'x' | b'X' | b'b' | b'B')) {
        pos += 2;
        while pos < s.len() && s[pos].is_ascii_hexdigit() {
            pos += 1;
        }
        return pos;
    }
    while pos < s.len() && s[pos].is_ascii_digit() {
        pos += 1;
    }
    if s.get(pos) == Some(&b'.') {
        pos += 1;
        while pos < s.len() && s[pos].is_ascii_digit() {
            pos += 1;
        }
    }
    if matches!(s.get(pos), Some(b'e' | b'E')) {
        let mut p = pos + 1;
        if matches!(s.get(p), Some(b'+' | b'-')) {
            p += 1;
        }
        if s.get(p).is_some_and(u8::is_ascii_digit) {
            pos = p;
            while pos < s.len() && s[pos].is_ascii_digit() {
                pos += 1;
            }
        }
    }
    pos
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// What an operand turned out to be; the evidence a bare value needs depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operand {
    /// Number, string, variable, TRUE/FALSE/NULL.
    Literal,
    Ident,
    Call {
        known: bool,
    },
    Subquery,
    Paren,
}

struct Parser<'t> {
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

fn stronger(a: Operand, b: Operand) -> Operand {
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

/// After a closing quote: skip closing parentheses, then look for a continuation.
fn after_break(src: &[u8], toks: &[Tok]) -> Option<usize> {
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
fn bare(src: &[u8], toks: &[Tok]) -> Option<usize> {
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

#[cfg(test)]
mod tests {
    use super::detect;

    fn hit(v: &str) -> bool {
        detect(v.as_bytes()).is_some()
    }

    fn all_hit(values: &[&str]) {
        let missed: Vec<_> = values.iter().filter(|v| !hit(v)).collect();
        assert!(missed.is_empty(), "not detected: {missed:#?}");
    }

    fn none_hit(values: &[&str]) {
        let flagged: Vec<_> = values
            .iter()
            .filter_map(|v| detect(v.as_bytes()).map(|(a, b)| (v, &v[a..b])))
            .collect();
        assert!(flagged.is_empty(), "flagged: {flagged:#?}");
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
