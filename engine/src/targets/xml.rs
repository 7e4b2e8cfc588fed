//! XML: text nodes, CDATA and attribute values, for the value signatures. The document as a
//! whole (DOCTYPE, entities) is inspected separately by the XXE rules.

/// Calls `visit(element_name, value)` for each text node, CDATA section and attribute value.
pub fn walk_xml(body: &[u8], mut visit: impl FnMut(&[u8], &[u8])) {
    let mut i = 0;
    let mut element: &[u8] = b"";
    while i < body.len() {
        if body[i] != b'<' {
            let end = body[i..]
                .iter()
                .position(|&b| b == b'<')
                .map_or(body.len(), |p| i + p);
            let text = super::trim(&body[i..end]);
            if !text.is_empty() {
                visit(element, text);
            }
            i = end;
            continue;
        }
        let rest = &body[i..];
        if rest.starts_with(b"<![CDATA[") {
            let start = i + 9;
            let end =
                super::multipart::find(&body[start..], b"]]>").map_or(body.len(), |p| start + p);
            visit(element, &body[start..end]);
            i = (end + 3).min(body.len());
            continue;
        }
        if rest.starts_with(b"<!--") {
            i = super::multipart::find(&body[i..], b"-->").map_or(body.len(), |p| i + p + 3);
            continue;
        }
        // A tag: read its name, then attribute values in quotes, up to '>'.
        let mut j = i + 1;
        let name_start = j;
        while j < body.len() && !matches!(body[j], b' ' | b'\t' | b'\r' | b'\n' | b'>' | b'/') {
            j += 1;
        }
        if body
            .get(i + 1)
            .is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_')
        {
            element = &body[name_start..j];
        }
        while j < body.len() && body[j] != b'>' {
            if matches!(body[j], b'"' | b'\'') {
                let quote = body[j];
                let start = j + 1;
                let end = body[start..]
                    .iter()
                    .position(|&b| b == quote)
                    .map_or(body.len(), |p| start + p);
                visit(element, &body[start..end]);
                j = end + 1;
            } else {
                j += 1;
            }
        }
        i = j + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_cdata_and_attributes() {
        let doc = b"<?xml version=\"1.0\"?><order id=\"7\"><note>hi <![CDATA[<script>]]></note><!-- c --></order>";
        let mut seen = Vec::new();
        walk_xml(doc, |n, v| {
            seen.push((
                String::from_utf8_lossy(n).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            ))
        });
        assert!(seen.contains(&("order".into(), "7".into())), "{seen:?}");
        assert!(seen.contains(&("note".into(), "hi".into())), "{seen:?}");
        assert!(
            seen.contains(&("note".into(), "<script>".into())),
            "{seen:?}"
        );
        assert!(
            !seen.iter().any(|(_, v)| v.contains(" c ")),
            "comments are skipped"
        );
    }
}
