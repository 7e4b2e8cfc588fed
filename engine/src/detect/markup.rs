//! Cross-site scripting by markup context. Every `<` that starts a tag is read the way a
//! browser's tokenizer reads it (any tag name, attributes separated by spaces or `/`, quoted
//! or bare values, up to `>` or the end of the value), and so is an attribute list that
//! follows a quote (`" onmouseover="...`, an injection into an attribute value).
//!
//! What runs script is judged per attribute, not per tag name, so unknown and custom tags,
//! SVG and MathML are covered: any `on*` event handler; a URL attribute whose value, with
//! the tabs and newlines browsers ignore removed, is a `javascript:`/`vbscript:` URI or an
//! HTML/SVG `data:` URI; a `style` that (after CSS escapes like `\65` are decoded) holds
//! `expression(`, a script URL, a binding or an import; markup hidden in `srcdoc`; and the
//! elements that load or run code (`script`, `iframe`, `object`, `embed`, `base`, ...).
//! Rich text (`<p>`, `<a href="https://...">`, `<img src=... alt=...>`) passes.

/// Literals that gate the reader: a tag opener, or the `=` an injected attribute needs.
pub const LITERALS: &[&str] = &["<", "="];

/// Browsers split tags at whitespace; fuzzers use other control characters the same way.
fn blank(b: u8) -> bool {
    b <= b' '
}

/// How many tag openers and quotes are examined per value: bounded for cost.
const MAX_OPENERS: usize = 48;

/// The detector.
pub fn detect(value: &[u8]) -> Option<(usize, usize)> {
    let has_eq = value.contains(&b'=');
    // A tag needs `<`; an attribute injected after a quote needs `=`.
    if !has_eq && !value.contains(&b'<') {
        return None;
    }
    let mut seen = 0;
    for i in Openers::new(value, has_eq) {
        if value[i] == b'<' {
            seen += 1;
            if let Some(end) = tag_at(value, i) {
                return Some((i, end));
            }
        } else if value.get(i + 1).is_some_and(|&b| blank(b) || b == b'/') {
            // An opening quote in prose ("online=true") is followed by text, a closing one
            // that starts an injected attribute by a space or `/`.
            seen += 1;
            // An attribute list injected after a closing quote.
            if let Some(end) = attributes(value, i + 1, b"") {
                return Some((i, end));
            }
        }
        if seen >= MAX_OPENERS {
            break;
        }
    }
    None
}

/// The positions, in order, of the bytes that can open markup: `<`, and with `=` in the value
/// also the quotes. Found with memchr, so long prose costs a fraction of a byte-by-byte loop.
struct Openers<'a> {
    value: &'a [u8],
    quotes: bool,
    at: usize,
    /// The next backtick at or after `at` (memchr3 takes three bytes; this is the fourth).
    backtick: Option<usize>,
}

impl<'a> Openers<'a> {
    fn new(value: &'a [u8], quotes: bool) -> Self {
        let backtick = if quotes {
            memchr::memchr(b'`', value)
        } else {
            None
        };
        Openers {
            value,
            quotes,
            at: 0,
            backtick,
        }
    }
}

impl Iterator for Openers<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        let rest = self.value.get(self.at..)?;
        let found = if self.quotes {
            let other = memchr::memchr3(b'<', b'"', b'\'', rest).map(|p| self.at + p);
            match self.backtick {
                Some(t) if other.is_none_or(|o| t < o) => {
                    self.backtick = memchr::memchr(b'`', &self.value[t + 1..]).map(|p| t + 1 + p);
                    Some(t)
                }
                _ => other,
            }
        } else {
            memchr::memchr(b'<', rest).map(|p| self.at + p)
        }?;
        self.at = found + 1;
        Some(found)
    }
}

/// Reads a tag at `at` (a `<`); returns the end of the evidence if it runs script.
fn tag_at(value: &[u8], at: usize) -> Option<usize> {
    let start = at + 1;
    let name_end = start
        + value[start..]
            .iter()
            .position(|&b| !(b.is_ascii_alphanumeric() || b == b':' || b == b'-' || b == b'_'))
            .unwrap_or(value.len() - start);
    let name = &value[start..name_end];
    if name.is_empty() || !name[0].is_ascii_alphabetic() {
        return None; // `</x>`, `<!--`, `<3`, `< b`
    }
    // A tag name ends at whitespace, `/`, `>` or the end of the value; `<b2b-price` is text.
    if !value
        .get(name_end)
        .is_none_or(|&b| blank(b) || b == b'/' || b == b'>')
    {
        return None;
    }
    let local = match name.iter().rposition(|&b| b == b':') {
        Some(p) => &name[p + 1..],
        None => name,
    };
    if dangerous_element(local) {
        return Some(name_end);
    }
    if let Some(end) = attributes(value, name_end, local) {
        return Some(end);
    }
    // `<style>` content: CSS that runs script.
    if super::eq_word(local, "style") {
        let body_start = value[name_end..].iter().position(|&b| b == b'>')? + name_end + 1;
        let body_end =
            find_ci(&value[body_start..], b"</style").map_or(value.len(), |e| body_start + e);
        if css_runs_script(&value[body_start..body_end]) {
            return Some(body_end);
        }
    }
    None
}

/// Elements that run or load code by themselves.
fn dangerous_element(name: &[u8]) -> bool {
    const NAMES: &[&str] = &[
        "script", "iframe", "frame", "frameset", "object", "embed", "applet", "base", "portal",
        "isindex", "import", "xss", "handler", "listener",
    ];
    NAMES.iter().any(|n| super::eq_word(name, n))
}

/// Reads attributes from `pos` up to `>` (or the end); returns the end of the first one that
/// runs script. `tag` is the element's local name (empty when reading after a quote).
fn attributes(value: &[u8], mut pos: usize, tag: &[u8]) -> Option<usize> {
    for _ in 0..32 {
        // Spaces and `/` separate attributes.
        while value.get(pos).is_some_and(|&b| blank(b) || b == b'/') {
            pos += 1;
        }
        match value.get(pos) {
            None | Some(b'>') | Some(b'<') => return None,
            _ => {}
        }
        let name_start = pos;
        while let Some(&b) = value.get(pos) {
            if blank(b)
                || matches!(b, b'/' | b'>' | b'=' | b'<')
                || (pos > name_start && matches!(b, b'"' | b'\''))
            {
                break;
            }
            pos += 1;
        }
        let name = &value[name_start..pos];
        if name.is_empty() {
            return None; // a stray quote or `=`: not an attribute list
        }
        let mut after = pos;
        while value.get(after).copied().is_some_and(blank) {
            after += 1;
        }
        if value.get(after) != Some(&b'=') {
            // A bare attribute (`autofocus`); a tag context needs nothing more, text after a
            // quote must look like attributes from the first word on.
            if tag.is_empty() && !is_attribute_name(name) {
                return None;
            }
            continue;
        }
        pos = after + 1;
        while value.get(pos).copied().is_some_and(blank) {
            pos += 1;
        }
        let (val, end) = attribute_value(value, pos);
        pos = end;
        if !is_attribute_name(name) {
            if tag.is_empty() {
                return None;
            }
            continue;
        }
        if attribute_runs_script(name, val, tag) {
            return Some(end);
        }
    }
    None
}

/// Names an author could write: letters, digits, `-`, `_`, `:`, `.`.
fn is_attribute_name(name: &[u8]) -> bool {
    name.len() <= 40
        && name[0].is_ascii_alphabetic()
        && name
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b':' | b'.'))
}

fn attribute_value(value: &[u8], pos: usize) -> (&[u8], usize) {
    match value.get(pos) {
        Some(&q @ (b'"' | b'\'' | b'`')) => {
            let rest = &value[pos + 1..];
            match rest.iter().position(|&b| b == q) {
                Some(close) => (&rest[..close], pos + 1 + close + 1),
                None => (rest, value.len()),
            }
        }
        _ => {
            let end = value[pos..]
                .iter()
                .position(|&b| blank(b) || b == b'>')
                .map_or(value.len(), |e| pos + e);
            (&value[pos..end], end)
        }
    }
}

fn attribute_runs_script(name: &[u8], val: &[u8], tag: &[u8]) -> bool {
    let local = match name.iter().rposition(|&b| b == b':') {
        Some(p) => &name[p + 1..],
        None => name,
    };
    // Event handlers: on + a word (onerror, onload, onpointerrawupdate, ...).
    if local.len() >= 5
        && local[..2].eq_ignore_ascii_case(b"on")
        && local[2..].iter().all(u8::is_ascii_alphabetic)
        && !val.is_empty()
    {
        return true;
    }
    let is = |n: &str| super::eq_word(local, n);
    if is("href")
        || is("src")
        || is("action")
        || is("formaction")
        || is("data")
        || is("background")
        || is("dynsrc")
        || is("lowsrc")
        || is("poster")
        || is("code")
        || is("codebase")
        || is("ping")
        || is("cite")
        || is("longdesc")
        || is("archive")
        || is("icon")
        || is("manifest")
        || is("usemap")
        || is("profile")
        || is("xmlns")
    {
        return script_url(val);
    }
    // SVG animation targets and meta refresh: a script URL anywhere in the value.
    if is("values") || is("to") || is("from") || is("by") || is("content") {
        return contains_script_url(val);
    }
    if is("style") {
        return css_runs_script(val);
    }
    // `<style type=text/javascript>`, `<script language=vbscript>`: a script language.
    if is("type") || is("language") {
        let v = trim(val);
        return [
            "javascript",
            "vbscript",
            "ecmascript",
            "jscript",
            "text/javascript",
            "text/vbscript",
            "text/ecmascript",
        ]
        .iter()
        .any(|t| super::eq_word(v, t));
    }
    if is("srcdoc") {
        return detect(val).is_some() || find_ci(val, b"<script").is_some();
    }
    if is("http-equiv") && super::eq_word(tag, "meta") {
        return super::eq_word(trim(val), "refresh") || super::eq_word(trim(val), "set-cookie");
    }
    false
}

fn trim(s: &[u8]) -> &[u8] {
    crate::targets::trim(s)
}

/// Tabs, newlines and other control characters and spaces are ignored by browsers inside
/// a URL scheme: `jav&#x09;ascript:` runs. Non-ASCII padding before the scheme is dropped too.
fn squeeze(val: &[u8], out: &mut [u8; 32]) -> usize {
    let mut n = 0;
    for &b in val {
        if b <= b' ' || b >= 0x80 {
            continue;
        }
        if n == out.len() {
            break;
        }
        out[n] = b.to_ascii_lowercase();
        n += 1;
    }
    n
}

const SCRIPT_SCHEMES: &[&[u8]] = &[
    b"javascript:",
    b"vbscript:",
    b"livescript:",
    b"data:text/html",
    b"data:image/svg",
    b"data:application/xhtml",
    b"data:application/x-javascript",
    b"data:application/javascript",
    b"data:text/javascript",
    b"data:text/xml",
];

fn script_url(val: &[u8]) -> bool {
    let mut buf = [0u8; 32];
    let n = squeeze(val, &mut buf);
    let head = &buf[..n];
    SCRIPT_SCHEMES.iter().any(|s| head.starts_with(s))
        // `data:,alert(1)` as a script source
        || head.starts_with(b"data:,")
}

fn contains_script_url(val: &[u8]) -> bool {
    let squeezed: Vec<u8> = val
        .iter()
        .filter(|&&b| b > b' ')
        .map(u8::to_ascii_lowercase)
        .collect();
    [&b"javascript:"[..], b"vbscript:", b"data:text/html"]
        .iter()
        .any(|s| find_ci(&squeezed, s).is_some())
}

/// CSS that runs script: `expression(`, a script URL, `-moz-binding`, `behavior:`, `@import`,
/// after CSS escapes (`\65 xpression`, `\000065`) and comments are undone.
fn css_runs_script(css: &[u8]) -> bool {
    let decoded = decode_css(css);
    let squeezed: Vec<u8> = decoded
        .iter()
        .filter(|&&b| b > b' ')
        .map(u8::to_ascii_lowercase)
        .collect();
    [
        &b"expression("[..],
        b"javascript:",
        b"vbscript:",
        b"-moz-binding",
        b"behavior:",
        b"behaviour:",
        b"@import",
        b"url(data:text/html",
        b"url('data:text/html",
    ]
    .iter()
    .any(|s| find_ci(&squeezed, s).is_some())
}

/// Undoes CSS escapes (`\` + up to six hex digits and one optional space, or `\` + a
/// character) and removes `/* */` comments.
fn decode_css(css: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(css.len());
    let mut i = 0;
    while i < css.len() {
        match css[i] {
            b'\\' => {
                let digits = css[i + 1..]
                    .iter()
                    .take(6)
                    .take_while(|b| b.is_ascii_hexdigit())
                    .count();
                if digits > 0 {
                    let cp = css[i + 1..i + 1 + digits].iter().fold(0u32, |acc, &d| {
                        acc * 16 + (d as char).to_digit(16).unwrap_or(0)
                    });
                    i += 1 + digits;
                    if matches!(css.get(i), Some(b' ' | b'\t' | b'\n' | b'\r' | 0x0c)) {
                        i += 1;
                    }
                    out.push(u8::try_from(cp).ok().filter(u8::is_ascii).unwrap_or(b'?'));
                } else {
                    if let Some(&c) = css.get(i + 1) {
                        if c != b'\n' {
                            out.push(c);
                        }
                    }
                    i += 2;
                }
            }
            b'/' if css.get(i + 1) == Some(&b'*') => match find_ci(&css[i + 2..], b"*/") {
                Some(e) => i += 2 + e + 2,
                None => i = css.len(),
            },
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

fn find_ci(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.len() > haystack.len() {
        return None;
    }
    haystack
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::{detect, Openers};

    #[test]
    fn openers_are_every_angle_bracket_and_with_eq_every_quote() {
        for value in [
            "",
            "plain prose with no markup at all",
            "a < b and `c` \"d\" 'e' <f>",
            "``<<\"\"''`",
            "x=`1` y='2' z=\"3\" <p>",
            "`",
        ] {
            let v = value.as_bytes();
            for quotes in [false, true] {
                let want: Vec<usize> = (0..v.len())
                    .filter(|&i| v[i] == b'<' || (quotes && matches!(v[i], b'"' | b'\'' | b'`')))
                    .collect();
                let got: Vec<usize> = Openers::new(v, quotes).collect();
                assert_eq!(got, want, "{value:?} quotes={quotes}");
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
    fn handlers_on_any_tag() {
        all_hit(&[
            "\"><svg/onload=alert(1)>",
            "<img src=x onerror=prompt(1)>",
            "<img/src/onerror=alert(1)>",
            "<body onpageshow=alert(1)>",
            "<details open ontoggle=confirm(1)>",
            "<x onclick=alert(1)>click me",
            "<custom-el onpointerrawupdate=alert(1)>",
            "<svg><animate onbegin=alert(1) attributeName=x>",
            "<img src=x:x onerror=alert(1)//",
            "<a\nonmouseover=alert(1)>x</a>",
            "<img src=x oNeRrOr=alert`1`>",
            "<noscript><p title=\"</noscript><img src=x onerror=alert(1)>\">",
            "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
        ]);
    }

    #[test]
    fn script_urls_and_elements() {
        all_hit(&[
            "<a href=\"javascript:alert(1)\">x</a>",
            "<a href=\"jav\tascript:alert(1)\">x</a>",
            "<a href=\"  javascript:alert(1)\">x</a>",
            "<a href=\"vbscript:msgbox(1)\">x</a>",
            "<iframe src=\"javascript:alert(1)\">",
            "<form><button formaction=javascript:alert(1)>go</button></form>",
            "<object data=\"data:text/html;base64,PHNjcmlwdD4=\"></object>",
            "<svg><use href=\"data:image/svg+xml;base64,PHN2Zz4=#x\"/>",
            "<svg><a xlink:href=\"javascript:alert(1)\"><text>go</text></a></svg>",
            "<math><maction actiontype=statusline xlink:href=\"javascript:alert(1)\">x</maction></math>",
            "<svg><set attributeName=href to=javascript:alert(1) />",
            "<svg><animate attributeName=href values=javascript:alert(1) />",
            "<meta http-equiv=\"refresh\" content=\"0;url=javascript:alert(1)\">",
            "<table background=\"javascript:alert(1)\">",
            "<script>alert(1)</script>",
            "<ScRiPt src=//x.example/a.js>",
            "<embed src=x.swf>",
            "<base href=\"//x.example/\">",
            "<iframe srcdoc=\"<script>alert(1)</script>\">",
            "<STYLE TYPE=\"text/javascript\">alert(1);</STYLE>",
            "<a href=\"\u{205f}javascript:alert(1)\">test</a>",
            "<img\x11src=x onerror=\"alert(1)\">",
            "<img src=x\x13onerror=\"alert(1)\">",
            "<script src=data:,alert(1)></script>",
        ]);
    }

    #[test]
    fn css() {
        all_hit(&[
            "<div style=\"width:expression(alert(1))\">",
            "<div style=\"x:\\65\\78\\70\\72\\65\\73\\73\\69\\6f\\6e(alert(1))\">",
            "<p style=\"background:url('java\\73 cript:alert(1)')\">",
            "<div style=\"background-image:url(javascript:alert(1))\">",
            "<div style=\"-moz-binding:url(x.xml#xss)\">",
            "<style>@import 'http://x.example/x.css';</style>",
            "<div style=\"x:e/**/xpression(alert(1))\">",
        ]);
    }

    #[test]
    fn attribute_injection_after_a_quote() {
        all_hit(&[
            "\" onmouseover=\"alert(1)\" x=\"",
            "' autofocus onfocus='alert(1)",
            "x\" onfocus=alert(1) autofocus x=\"",
            "\" style=\"width:expression(alert(1))",
        ]);
    }

    #[test]
    fn rich_text_passes() {
        none_hit(&[
            "<p>Hola <strong>equipo</strong>, adjunto el informe.</p><ul><li>Q1</li></ul>",
            "<a href=\"https://www.example.org/terms\">Terms</a> and <a href=\"/privacy\">Privacy</a>",
            "<img src=\"https://cdn.example.net/avatars/42.png\" alt=\"avatar\" width=\"64\">",
            "Fragile: glass <handle with care>",
            "a<b and b>c",
            "<3 valentines cards",
            "Use <kbd>Ctrl</kbd>+<kbd>C</kbd> to copy",
            "H<sub>2</sub>O and E=mc<sup>2</sup>",
            "<div class=\"note\" style=\"color: red; font-weight: bold\">x</div>",
            "<span style=\"background:url(https://cdn.example.net/x.png)\">x</span>",
            "<table border=1><tr><td>1</td></tr></table>",
            "The <b>bold</b> claims aren't true",
            "My son (age 7) loves it; he says it's \"awesome\"",
            "Colour: 'midnight blue' (not black)",
            "O'Brien's order = 3 items",
            "{\"onload\": \"init\", \"mode\": \"fast\"}",
            "he said \"online=true\" was set",
            "x = 'one' + 'two'",
            "<p>Hi {{first_name}},</p><p>Track it <a href=\"{{tracking_url}}\">here</a>.</p>",
            "<input type=\"checkbox\" checked> select all",
            "price<10 & qty>5",
            "<em>Very</em> happy with the service",
            "See [docs](https://docs.example.net/guide?section=auth#tokens)",
            "<a href=\"mailto:ana@example.org?subject=Hi\">mail</a>",
            "<img src=\"data:image/png;base64,iVBORw0KGgo=\" alt=\"\">",
            "<input type=\"text\" name=\"q\"> <script-free text",
        ]);
    }
}
