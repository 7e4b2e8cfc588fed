//! A small line diff in unified format, enough for comparing pretty-printed policies.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Equal(usize, usize),
    Delete(usize),
    Insert(usize),
}

/// Above this many cells the middle part is shown as replaced wholesale rather than aligned.
const MAX_TABLE: usize = 4_000_000;

fn edit_script(a: &[&str], b: &[&str]) -> Vec<Op> {
    let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let suffix = a[prefix..]
        .iter()
        .rev()
        .zip(b[prefix..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (am, bm) = (&a[prefix..a.len() - suffix], &b[prefix..b.len() - suffix]);
    let mut ops: Vec<Op> = (0..prefix).map(|i| Op::Equal(i, i)).collect();

    let (n, m) = (am.len(), bm.len());
    if n.saturating_mul(m) <= MAX_TABLE {
        // lcs[i][j]: length of the longest common subsequence of am[i..] and bm[j..].
        let width = m + 1;
        let mut lcs = vec![0u32; (n + 1) * width];
        for i in (0..n).rev() {
            for j in (0..m).rev() {
                lcs[i * width + j] = if am[i] == bm[j] {
                    lcs[(i + 1) * width + j + 1] + 1
                } else {
                    lcs[(i + 1) * width + j].max(lcs[i * width + j + 1])
                };
            }
        }
        let (mut i, mut j) = (0, 0);
        while i < n || j < m {
            if i < n && j < m && am[i] == bm[j] {
                ops.push(Op::Equal(prefix + i, prefix + j));
                i += 1;
                j += 1;
            } else if j < m && (i == n || lcs[i * width + j + 1] >= lcs[(i + 1) * width + j]) {
                ops.push(Op::Insert(prefix + j));
                j += 1;
            } else {
                ops.push(Op::Delete(prefix + i));
                i += 1;
            }
        }
        // Deletions read better before the insertions that replace them.
        normalize_order(&mut ops);
    } else {
        ops.extend((0..n).map(|i| Op::Delete(prefix + i)));
        ops.extend((0..m).map(|j| Op::Insert(prefix + j)));
    }
    ops.extend((0..suffix).map(|k| Op::Equal(a.len() - suffix + k, b.len() - suffix + k)));
    ops
}

/// Within each run of changes, puts deletions first.
fn normalize_order(ops: &mut [Op]) {
    let mut start = 0;
    while start < ops.len() {
        if matches!(ops[start], Op::Equal(..)) {
            start += 1;
            continue;
        }
        let end = ops[start..]
            .iter()
            .position(|op| matches!(op, Op::Equal(..)))
            .map_or(ops.len(), |p| start + p);
        ops[start..end].sort_by_key(|op| match op {
            Op::Delete(i) => (0, *i),
            Op::Insert(j) => (1, *j),
            Op::Equal(..) => (2, 0),
        });
        start = end;
    }
}

/// Unified diff of `a` and `b` with `context` lines around each change; empty if equal.
pub fn unified(a_name: &str, b_name: &str, a: &str, b: &str, context: usize) -> String {
    let a: Vec<&str> = a.lines().collect();
    let b: Vec<&str> = b.lines().collect();
    let ops = edit_script(&a, &b);
    let changes: Vec<usize> = ops
        .iter()
        .enumerate()
        .filter(|(_, op)| !matches!(op, Op::Equal(..)))
        .map(|(i, _)| i)
        .collect();
    if changes.is_empty() {
        return String::new();
    }
    // Group changes whose context overlaps into hunks of op indices.
    let mut hunks: Vec<(usize, usize)> = Vec::new();
    for &c in &changes {
        let lo = c.saturating_sub(context);
        let hi = (c + context + 1).min(ops.len());
        match hunks.last_mut() {
            Some(last) if lo <= last.1 => last.1 = hi,
            _ => hunks.push((lo, hi)),
        }
    }
    let mut out = format!("--- {a_name}\n+++ {b_name}\n");
    for (lo, hi) in hunks {
        let slice = &ops[lo..hi];
        // Position of the hunk in each file: the first line it touches, or the line before.
        let a_at = ops[..lo]
            .iter()
            .filter(|op| !matches!(op, Op::Insert(_)))
            .count();
        let b_at = ops[..lo]
            .iter()
            .filter(|op| !matches!(op, Op::Delete(_)))
            .count();
        let a_len = slice
            .iter()
            .filter(|op| !matches!(op, Op::Insert(_)))
            .count();
        let b_len = slice
            .iter()
            .filter(|op| !matches!(op, Op::Delete(_)))
            .count();
        let start = |at: usize, len: usize| if len == 0 { at } else { at + 1 };
        out.push_str(&format!(
            "@@ -{},{a_len} +{},{b_len} @@\n",
            start(a_at, a_len),
            start(b_at, b_len)
        ));
        for op in slice {
            match *op {
                Op::Equal(i, _) => out.push_str(&format!(" {}\n", a[i])),
                Op::Delete(i) => out.push_str(&format!("-{}\n", a[i])),
                Op::Insert(j) => out.push_str(&format!("+{}\n", b[j])),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_texts_have_no_diff() {
        assert_eq!(unified("a", "b", "x\ny\n", "x\ny\n", 3), "");
    }

    #[test]
    fn unified_hunks() {
        let a = "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n";
        let b = "1\n2\n3\nfour\n5\n6\n7\n8\n9\n10\n11\n";
        let d = unified("v1", "v2", a, b, 1);
        assert_eq!(
            d,
            "--- v1\n+++ v2\n@@ -3,3 +3,3 @@\n 3\n-4\n+four\n 5\n@@ -10,1 +10,2 @@\n 10\n+11\n"
        );
        let d = unified("v1", "v2", "a\n", "", 3);
        assert_eq!(d, "--- v1\n+++ v2\n@@ -1,1 +0,0 @@\n-a\n");
        let d = unified("v1", "v2", "a\nb\nc\n", "a\nx\ny\nc\n", 3);
        assert_eq!(d, "--- v1\n+++ v2\n@@ -1,3 +1,4 @@\n a\n-b\n+x\n+y\n c\n");
    }
}
