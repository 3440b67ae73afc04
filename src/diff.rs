//! Diffs of generated files, as `git diff` shows them: a unified diff
//! (`--- old`, `+++ new`, `@@ -l,n +l,n @@` hunks with two lines of
//! context) computed by `similar`, kept as plain text in errors, findings
//! and JSON, and coloured only where a person reads it on a terminal
//! ([`paint`]: removed lines red, added green, hunk headers cyan — git's
//! colours).

use std::fmt::Write;
use std::time::Duration;

use anstyle::{AnsiColor, Style};
use similar::{ChangeTag, TextDiff};

/// Lines of context around each change.
const CONTEXT: usize = 2;

/// Past this, a diff of two huge files gives up on the shortest edit and
/// shows a correct, longer one (similar's deadline).
const TIMEOUT: Duration = Duration::from_millis(500);

/// The unified diff from `old` (named `old_name`) to `new`, with at most
/// `max_lines` changed lines shown (then `… and N more changed lines`);
/// empty when the texts are equal.
pub fn unified(old: &str, new: &str, old_name: &str, new_name: &str, max_lines: usize) -> String {
    let diff = TextDiff::configure().timeout(TIMEOUT).diff_lines(old, new);
    let mut out = String::new();
    let total = diff
        .iter_all_changes()
        .filter(|c| c.tag() != ChangeTag::Equal)
        .count();
    if total == 0 {
        return out;
    }
    let _ = writeln!(out, "--- {old_name}");
    let _ = writeln!(out, "+++ {new_name}");
    let mut shown = 0;
    let udiff = diff.unified_diff();
    let mut udiff = udiff;
    udiff.context_radius(CONTEXT);
    'hunks: for hunk in udiff.iter_hunks() {
        let _ = writeln!(out, "{}", hunk.header());
        for change in hunk.iter_changes() {
            if change.tag() != ChangeTag::Equal {
                if shown == max_lines {
                    let _ = writeln!(out, "… and {} more changed lines", total - shown);
                    break 'hunks;
                }
                shown += 1;
            }
            let line = change.value();
            let _ = writeln!(
                out,
                "{}{}",
                change.tag(),
                line.strip_suffix('\n').unwrap_or(line)
            );
        }
    }
    out
}

/// Whether `text` is a diff that [`unified`] made (its two header lines).
pub fn is_unified(text: &str) -> bool {
    let mut lines = text.lines();
    matches!(
        (lines.next(), lines.next()),
        (Some(a), Some(b)) if a.starts_with("--- ") && b.starts_with("+++ ")
    )
}

/// The style of one line of a unified diff, as git colours it.
fn line_style(line: &str) -> Style {
    if line.starts_with("--- ") || line.starts_with("+++ ") {
        Style::new().bold()
    } else if line.starts_with("@@") {
        Style::new().fg_color(Some(AnsiColor::Cyan.into()))
    } else if line.starts_with('-') {
        Style::new().fg_color(Some(AnsiColor::Red.into()))
    } else if line.starts_with('+') {
        Style::new().fg_color(Some(AnsiColor::Green.into()))
    } else {
        Style::new()
    }
}

/// One line of a unified diff, coloured when `color` (an empty style
/// writes no escape at all).
pub fn paint_line(line: &str, color: bool) -> String {
    let style = line_style(line);
    if !color || style == Style::new() {
        return line.to_string();
    }
    format!("{style}{line}{style:#}")
}

/// `text` with each line of a unified diff in it coloured (`color`); any
/// other text as it is.
pub fn paint(text: &str, color: bool) -> String {
    if !color || !is_unified(text) {
        return text.to_string();
    }
    let mut out = String::new();
    for l in text.split_inclusive('\n') {
        let (body, nl) = match l.strip_suffix('\n') {
            Some(b) => (b, "\n"),
            None => (l, ""),
        };
        out.push_str(&paint_line(body, true));
        out.push_str(nl);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unified_diff_with_context_and_headers() {
        let old = "a\nb\nc\nd\ne\nf\ng\nh\n";
        let new = "a\nB\nc\nd\ne\nf\ng\nh\ni\n";
        assert_eq!(
            unified(old, new, "x (on disk)", "x (generated)", 10),
            "--- x (on disk)\n+++ x (generated)\n@@ -1,4 +1,4 @@\n a\n-b\n+B\n c\n d\n@@ -7,2 +7,3 @@\n g\n h\n+i\n"
        );
        assert_eq!(unified(old, old, "x", "y", 10), "");
        let many: String = (0..10).map(|i| format!("{i}\n")).collect();
        let d = unified(&many, "", "x", "y", 3);
        assert!(d.ends_with("-2\n… and 7 more changed lines\n"), "{d}");
        // A last line without a newline is still one line.
        assert_eq!(
            unified("a", "b", "x", "y", 5),
            "--- x\n+++ y\n@@ -1 +1 @@\n-a\n+b\n"
        );
    }

    #[test]
    fn colour_only_when_asked_and_only_for_a_diff() {
        let d = unified("a\nb\n", "a\nc\n", "x", "y", 5);
        assert_eq!(paint(&d, false), d);
        assert_eq!(paint("-not a diff\n", true), "-not a diff\n");
        let p = paint(&d, true);
        assert!(p.contains("\x1b[31m-b\x1b[0m\n"), "{p:?}");
        assert!(p.contains("\x1b[32m+c\x1b[0m\n"), "{p:?}");
        assert!(p.contains("\x1b[36m@@ -1,2 +1,2 @@\x1b[0m\n"), "{p:?}");
        assert!(p.contains("\n a\n"), "context lines stay plain: {p:?}");
        // Without the escapes, the same text.
        let plain: String = anstream::adapter::strip_str(&p).to_string();
        assert_eq!(plain, d);
    }
}
