//! The SQL tokenizer: keywords, literals, operators and comments, read lazily.

/// Tokens looked at after a break: enough for any continuation we recognise, bounded for cost.
pub(super) const MAX_TOKENS: usize = 40;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kw {
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
pub(super) const fn pack(word: &[u8]) -> u64 {
    let mut v = 0u64;
    let mut i = 0;
    while i < word.len() {
        v = (v << 8) | (word[i] | 0x20) as u64;
        i += 1;
    }
    v
}

/// Packed keywords, for [`keyword`] and [`continuation_word`].
pub(super) mod k {
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

pub(super) fn keyword(word: &[u8]) -> Kw {
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
pub(super) fn known_function(name: &[u8]) -> bool {
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
    NAMES.iter().any(|n| crate::detect::eq_word(last, n))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
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
pub(super) struct Tok {
    pub(super) kind: Kind,
    pub(super) start: usize,
    pub(super) end: usize,
    /// A word directly followed by `(`: a function call.
    pub(super) call: bool,
    /// A call to one of the [`known_function`]s.
    pub(super) known: bool,
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
pub(super) struct Tokens {
    pub(super) buf: [Tok; MAX_TOKENS],
    pub(super) len: usize,
    /// Where the next token starts.
    pub(super) pos: usize,
    pub(super) exhausted: bool,
}

impl Tokens {
    pub(super) fn new() -> Tokens {
        Tokens {
            buf: [Tok::default(); MAX_TOKENS],
            len: 0,
            pos: 0,
            exhausted: false,
        }
    }

    pub(super) fn start(&mut self, pos: usize) {
        self.len = 0;
        self.pos = pos;
        self.exhausted = false;
    }

    pub(super) fn as_slice(&self) -> &[Tok] {
        &self.buf[..self.len]
    }

    /// Reads tokens until there are `n` (or the input ends). Then runs `check` on what there
    /// is, reading two more tokens each time it needs them (`None`).
    pub(super) fn peek(&mut self, s: &[u8], check: impl Fn(&[Tok]) -> Option<bool>) -> bool {
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

pub(super) fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// Bytes of identifiers and keywords: letters, digits, `_`, `$` and non-ASCII (a table:
/// this runs for every byte of every word looked at).
pub(super) const WORD_BYTE: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80;
        b += 1;
    }
    t
};

pub(super) fn is_word_byte(b: u8) -> bool {
    WORD_BYTE[usize::from(b)]
}

impl Tokens {
    /// Tokenises `s` onwards until there are `upto` tokens (at most [`MAX_TOKENS`]).
    pub(super) fn fill(&mut self, s: &[u8], upto: usize) {
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

pub(super) fn number_end(s: &[u8], mut pos: usize) -> usize {
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

pub(super) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
