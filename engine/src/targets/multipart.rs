//! `multipart/form-data`: each part's field value and file name, named by the field.

use super::trim;

/// Calls `visit(field_name, value)` for each part's text value and for each file name.
/// Binary parts (declared image/audio/video/octet-stream) contribute only their file name.
pub fn walk_multipart(body: &[u8], boundary: &[u8], mut visit: impl FnMut(&[u8], &[u8])) {
    let mut delimiter = Vec::with_capacity(boundary.len() + 2);
    delimiter.extend_from_slice(b"--");
    delimiter.extend_from_slice(boundary);
    let mut rest = match find(body, &delimiter) {
        Some(p) => &body[p + delimiter.len()..],
        None => return,
    };
    loop {
        if rest.starts_with(b"--") {
            return; // closing delimiter
        }
        let end = find(rest, &delimiter).unwrap_or(rest.len());
        let part = &rest[..end];
        let part = part
            .strip_prefix(b"\r\n")
            .or_else(|| part.strip_prefix(b"\n"))
            .unwrap_or(part);
        let (head, content) = match find(part, b"\r\n\r\n") {
            Some(p) => (&part[..p], &part[p + 4..]),
            None => match find(part, b"\n\n") {
                Some(p) => (&part[..p], &part[p + 2..]),
                None => (part, &b""[..]),
            },
        };
        let content = content
            .strip_suffix(b"\r\n")
            .or_else(|| content.strip_suffix(b"\n"))
            .unwrap_or(content);
        let mut name: &[u8] = b"";
        let mut filename: Option<&[u8]> = None;
        let mut binary = false;
        for line in head.split(|&b| b == b'\n') {
            let line = trim(line);
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                continue;
            };
            let (hname, hvalue) = (&line[..colon], trim(&line[colon + 1..]));
            if hname.eq_ignore_ascii_case(b"content-disposition") {
                name = disposition_param(hvalue, b"name").unwrap_or(b"");
                filename = disposition_param(hvalue, b"filename");
            } else if hname.eq_ignore_ascii_case(b"content-type") {
                let v = hvalue.to_ascii_lowercase();
                binary = v.starts_with(b"image/")
                    || v.starts_with(b"audio/")
                    || v.starts_with(b"video/")
                    || v.starts_with(b"application/octet-stream");
            }
        }
        if let Some(f) = filename {
            visit(name, f);
        }
        if !binary {
            visit(name, content);
        }
        if end >= rest.len() {
            return;
        }
        rest = &rest[end + delimiter.len()..];
    }
}

fn disposition_param<'a>(value: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    value.split(|&b| b == b';').skip(1).find_map(|param| {
        let param = trim(param);
        let eq = param.iter().position(|&b| b == b'=')?;
        if !param[..eq].eq_ignore_ascii_case(key) {
            return None;
        }
        let v = trim(&param[eq + 1..]);
        Some(
            v.strip_prefix(b"\"")
                .and_then(|v| v.strip_suffix(b"\""))
                .unwrap_or(v),
        )
    })
}

pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_file_names() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nhello <b>\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"../../etc/passwd\"\r\nContent-Type: image/png\r\n\r\n\x89PNG\r\n--XyZ--\r\n";
        let mut seen = Vec::new();
        walk_multipart(body, b"XyZ", |n, v| {
            seen.push((
                String::from_utf8_lossy(n).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            ))
        });
        assert_eq!(
            seen,
            vec![
                ("title".to_string(), "hello <b>".to_string()),
                ("file".to_string(), "../../etc/passwd".to_string())
            ]
        );
    }

    #[test]
    fn truncated_body_still_yields_what_arrived() {
        let body = b"--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\npartial value";
        let mut seen = Vec::new();
        walk_multipart(body, b"b", |_, v| seen.push(v.to_vec()));
        assert_eq!(seen, vec![b"partial value".to_vec()]);
    }
}
