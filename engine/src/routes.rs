//! Route patterns such as `/users/{id}` or `/admin/**`, matched against normalised paths.

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// `{name}` or `*`: exactly one segment.
    Any,
    /// A trailing `**`: the rest of the path, possibly empty.
    Rest,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePattern {
    segments: Vec<Segment>,
    /// `{name}` parameters and their segment positions.
    params: Vec<(String, usize)>,
}

impl RoutePattern {
    pub fn parse(pattern: &str) -> Result<RoutePattern, String> {
        if !pattern.starts_with('/') {
            return Err(format!("route `{pattern}` must start with `/`"));
        }
        let parts: Vec<&str> = pattern.split('/').filter(|s| !s.is_empty()).collect();
        let mut segments = Vec::with_capacity(parts.len());
        let mut params = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            if part.len() > 2 && part.starts_with('{') && part.ends_with('}') {
                params.push((part[1..part.len() - 1].to_owned(), i));
            }
            let seg = if *part == "**" {
                if i + 1 != parts.len() {
                    return Err(format!(
                        "route `{pattern}`: `**` is only allowed at the end"
                    ));
                }
                Segment::Rest
            } else if *part == "*"
                || (part.starts_with('{') && part.ends_with('}') && part.len() > 2)
            {
                Segment::Any
            } else if part.contains(['{', '}', '*']) {
                return Err(format!("route `{pattern}`: bad segment `{part}`"));
            } else {
                Segment::Literal(part.to_ascii_lowercase())
            };
            segments.push(seg);
        }
        Ok(RoutePattern { segments, params })
    }

    /// Position of the `{name}` segment.
    pub fn param_position(&self, name: &str) -> Option<usize> {
        self.params.iter().find(|(n, _)| n == name).map(|(_, i)| *i)
    }

    /// The `position`-th segment of a normalised path.
    pub fn segment(path: &[u8], position: usize) -> Option<&[u8]> {
        path.split(|&b| b == b'/')
            .filter(|s| !s.is_empty())
            .nth(position)
    }

    /// `path` is normalised (decoded, dot-segments resolved) and without a query string.
    pub fn matches(&self, path: &[u8]) -> bool {
        let mut parts = path.split(|&b| b == b'/').filter(|s| !s.is_empty());
        for seg in &self.segments {
            match seg {
                Segment::Rest => return true,
                Segment::Any => {
                    if parts.next().is_none() {
                        return false;
                    }
                }
                Segment::Literal(lit) => match parts.next() {
                    Some(p) if p.eq_ignore_ascii_case(lit.as_bytes()) => {}
                    _ => return false,
                },
            }
        }
        parts.next().is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching() {
        let p = RoutePattern::parse("/users/{id}").unwrap();
        assert!(p.matches(b"/users/42"));
        assert!(p.matches(b"/Users/42/"));
        assert!(!p.matches(b"/users"));
        assert!(!p.matches(b"/users/42/orders"));
        let rest = RoutePattern::parse("/admin/**").unwrap();
        assert!(rest.matches(b"/admin"));
        assert!(rest.matches(b"/admin/a/b"));
        assert!(RoutePattern::parse("/").unwrap().matches(b"/"));
    }

    #[test]
    fn bad_patterns() {
        assert!(RoutePattern::parse("users").is_err());
        assert!(RoutePattern::parse("/a/**/b").is_err());
        assert!(RoutePattern::parse("/a/{id").is_err());
    }
}
