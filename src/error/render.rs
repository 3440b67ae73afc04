//! The one rendering of an [`Error`] for people, in rustc's and cargo's
//! style: `error: message`, the place (`--> file:line:col`) with the one
//! source line it points at, notes for the other places involved, then
//! `help:`. Plain ASCII (no box glyphs), colour only when asked, and prose
//! wrapped to the terminal's width without ever cutting a `backticked`
//! command or path in two. Huge lines are shown as a window around the
//! column, and lines of env files never show their values.

use std::fmt::Write;

use super::{ConfigDiagnostic, Error};

/// How to render.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Style {
    /// ANSI colours.
    pub color: bool,
    /// Wrap prose to this many columns (a terminal's width); `None`: never
    /// wrap (a pipe or a file, where the reader's tools wrap).
    pub width: Option<usize>,
}

/// At most this many characters of a source line are shown.
const WINDOW: usize = 100;
/// Characters shown before the column when a line is cut.
const LEAD: usize = 30;

pub const RED: &str = "\x1b[1;31m";
const BLUE: &str = "\x1b[1;34m";
const CYAN: &str = "\x1b[1;36m";
const GREEN: &str = "\x1b[1;32m";
pub const YELLOW: &str = "\x1b[1;33m";
pub const BOLD: &str = "\x1b[1m";
const RESET: &str = "\x1b[0m";

impl Style {
    /// `text` in the ANSI colour `code` when colour is on.
    pub fn paint(&self, code: &str, text: &str) -> String {
        if self.color && !text.is_empty() {
            format!("{code}{text}{RESET}")
        } else {
            text.to_string()
        }
    }

    /// `error: message…`, `help: …`: the first line wrapped with its
    /// continuation aligned after the prefix; later lines (lists, a tool's
    /// output, diffs) exactly as they are.
    pub fn headline(&self, kind: &str, text: &str) -> String {
        let code = match kind {
            "error" => RED,
            "warning" => YELLOW,
            "help" => CYAN,
            _ => GREEN,
        };
        let prefix_len = kind.chars().count() + 2;
        let mut lines = text.lines();
        let first = lines.next().unwrap_or("");
        let wrapped = wrap(first, self.width.map(|w| w.saturating_sub(prefix_len)));
        let mut out = String::new();
        for (i, l) in wrapped.iter().enumerate() {
            if i == 0 {
                let _ = write!(out, "{}: ", self.paint(code, kind));
            } else {
                out.push('\n');
                out.push_str(&" ".repeat(prefix_len));
            }
            out.push_str(&if kind == "error" {
                self.paint(BOLD, l)
            } else {
                l.to_string()
            });
        }
        for l in lines {
            out.push('\n');
            out.push_str(&clean(l));
        }
        out.push('\n');
        out
    }
}

/// Renders an error for a person, ending in a newline.
pub fn render(e: &Error, style: &Style) -> String {
    match e {
        Error::Config(d) => {
            let mut out = style.headline("error", &d.message);
            snippet(&mut out, d, style);
            for r in &d.related {
                out.push_str(&style.headline("note", &r.message));
                snippet(&mut out, r, style);
            }
            if let Some(h) = &d.help {
                out.push_str(&style.headline("help", h));
            }
            out
        }
        Error::Failed(f) => {
            let mut out = style.headline("error", &f.message);
            if let Some(d) = f
                .detail
                .as_deref()
                .map(str::trim_end)
                .filter(|d| !d.is_empty())
            {
                // A diff (`compose --check`) in git's colours.
                let diff = style.color && crate::diff::is_unified(d);
                for l in d.lines() {
                    let l = clean(l);
                    out.push_str(&if diff {
                        crate::diff::paint_line(&l, true)
                    } else {
                        l
                    });
                    out.push('\n');
                }
            }
            if let Some(h) = &f.help {
                out.push_str(&style.headline("help", h));
            }
            out
        }
    }
}

/// `  --> file:line:col`, then the line with carets under the span.
fn snippet(out: &mut String, d: &ConfigDiagnostic, style: &Style) {
    let Some(loc) = d.location_string().map(|l| clean(&l)) else {
        return;
    };
    let (Some(src), Some(span), Some(line_no)) = (&d.src, d.span, d.line) else {
        let _ = writeln!(out, " {} {loc}", style.paint(BLUE, "-->"));
        return;
    };
    let text: &str = src.inner().as_str();
    let start = span.offset().min(text.len());
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    let line = text[line_start..line_end].trim_end_matches('\r');
    let num = line_no.to_string();
    let pad = " ".repeat(num.len());
    let bar = style.paint(BLUE, "|");
    let _ = writeln!(out, "{pad}{} {loc}", style.paint(BLUE, "-->"));
    let _ = writeln!(out, "{pad} {bar}");

    // Column and width of the span on its first line, in characters.
    let col = text[line_start..start.min(line_start + line.len())]
        .chars()
        .count();
    let span_end = (start + span.len()).min(line_start + line.len()).max(start);
    let mut width = text[start.min(span_end)..span_end].chars().count().max(1);

    let (shown, caret_col) = if d.redact {
        // An env file: the key is shown, never a value.
        let shown = match line.split_once('=') {
            Some((k, _)) => format!("{}=… (value hidden)", clean(k)),
            None => "… (line hidden)".to_string(),
        };
        width = shown.chars().count();
        (shown, 0)
    } else {
        window(line, col, &mut width)
    };
    let _ = writeln!(out, "{} {bar} {shown}", style.paint(BLUE, &num));
    // The key path is on the `-->` line already; a label says more.
    let label = d.label.clone().unwrap_or_default();
    let carets = "^".repeat(width);
    let mark = if label.is_empty() {
        style.paint(RED, &carets)
    } else {
        style.paint(RED, &format!("{carets} {}", clean(&label)))
    };
    let _ = writeln!(out, "{pad} {bar} {}{mark}", " ".repeat(caret_col));
}

/// At most [`WINDOW`] characters of `line` around column `col`, with `…`
/// where it was cut; returns the text and the column of the span in it,
/// and shortens `width` to what is shown.
fn window(line: &str, col: usize, width: &mut usize) -> (String, usize) {
    let chars: Vec<char> = line.chars().collect();
    let from = if chars.len() <= WINDOW || col < LEAD {
        0
    } else {
        (col - LEAD).min(chars.len().saturating_sub(WINDOW))
    };
    let to = (from + WINDOW).min(chars.len());
    let mut shown = String::new();
    if from > 0 {
        shown.push('…');
    }
    shown.push_str(&clean(&chars[from..to].iter().collect::<String>()));
    if to < chars.len() {
        shown.push('…');
    }
    let caret_col = col.saturating_sub(from) + usize::from(from > 0);
    let room = (to.max(col + 1)).saturating_sub(col.max(from));
    *width = (*width).min(room.max(1));
    (shown, caret_col)
}

/// Control characters (an escape sequence in a hostile manifest) are shown
/// as `?`, a tab as one space, so what is printed is what the reader sees.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\t' => ' ',
            c if c.is_control() => '?',
            c => c,
        })
        .collect()
}

/// Greedy wrap at spaces, never inside a `backticked` span; a word longer
/// than the width stays whole on its own line.
fn wrap(text: &str, width: Option<usize>) -> Vec<String> {
    let Some(width) = width.filter(|w| *w >= 20) else {
        return vec![clean(text)];
    };
    let mut words: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in text.chars() {
        if c == '`' {
            quoted = !quoted;
        }
        if c == ' ' && !quoted {
            if !cur.is_empty() {
                words.push(std::mem::take(&mut cur));
            }
        } else {
            cur.push(c);
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    let mut lines = Vec::new();
    let mut line = String::new();
    for w in words {
        let w = clean(&w);
        let needed = line.chars().count() + usize::from(!line.is_empty()) + w.chars().count();
        if !line.is_empty() && needed > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&w);
    }
    lines.push(line);
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{KeyPath, Location, SourceCache};
    use camino::Utf8Path;

    fn plain() -> Style {
        Style::default()
    }

    #[test]
    fn user_text_in_a_message_or_help_cannot_break_its_line() {
        let e = Error::failed("service `s` lives at `a\nb\u{1b}[2J`, which does not exist")
            .with_help("create `a\nb`")
            .with_detail("a tool's\noutput");
        let out = render(&e, &plain());
        assert_eq!(
            out,
            "error: service `s` lives at `a\\nb\\u{1b}[2J`, which does not exist\n\
             a tool's\noutput\nhelp: create `a\\nb`\n"
        );
        let d = Error::config("`x\ty`").with_detail("more\nlines");
        assert_eq!(render(&d, &plain()), "error: `x\\ty`\nmore\nlines\n");
    }

    #[test]
    fn wraps_at_spaces_but_never_inside_backticks() {
        let text = "add it with `registry service add api --strategy 1-of-N` and then run `cargo hsm sync` again";
        let lines = wrap(text, Some(30));
        assert!(lines
            .iter()
            .any(|l| l.contains("`registry service add api --strategy 1-of-N`")));
        assert!(lines.iter().any(|l| l.contains("`cargo hsm sync`")));
        assert_eq!(lines.join(" "), text);
        assert_eq!(wrap(text, None), vec![text.to_string()]);
    }

    #[test]
    fn a_config_error_points_at_its_line_without_glyphs() {
        let mut cache = SourceCache::default();
        let f = Utf8Path::new("hsm.toml");
        cache.insert(f, "[services]\nstandalone = [\"api\"]\n".into());
        let d = cache
            .diag(
                &Location::new(f, KeyPath::parse_dotted("services.standalone")),
                "unknown service `api`",
            )
            .help("define it with `cargo hsm registry service add api`");
        let out = render(&Error::from(d), &plain());
        assert_eq!(
            out,
            "error: unknown service `api`\n --> hsm.toml:2:14 (services.standalone)\n  |\n2 | standalone = [\"api\"]\n  |              ^^^^^^^\nhelp: define it with `cargo hsm registry service add api`\n"
        );
        assert!(!out.contains('│') && !out.contains('×'));
    }

    #[test]
    fn a_column_past_65535_renders_in_a_readable_size() {
        let mut cache = SourceCache::default();
        let f = Utf8Path::new("hsm.toml");
        let text = format!("x = \"{}\" y\n", "a".repeat(70_000));
        cache.insert(f, text.clone());
        let d = ConfigDiagnostic::new("bad").at_span(
            &cache,
            f,
            text.len() - 2..text.len() - 1,
            KeyPath::root(),
        );
        let out = render(&Error::from(d), &plain());
        assert!(out.contains("hsm.toml:1:70008"), "{out}");
        assert!(out.len() < 600, "{} bytes", out.len());
        assert!(out.lines().any(|l| l.trim_end().ends_with('^')), "{out}");
    }

    #[test]
    fn env_file_lines_never_show_values() {
        let mut cache = SourceCache::default();
        let f = Utf8Path::new("config/app.env");
        cache.insert(
            f,
            "A=1\nDB_PASSWORD=supersecret\nnot a line\nAPI_KEY=hunter2\n".into(),
        );
        let d = cache.diag(&Location::line(f, 3), "invalid env file: line 3 has no `=`");
        let out = render(&Error::from(d), &plain());
        assert!(
            !out.contains("supersecret") && !out.contains("hunter2") && !out.contains("not a line"),
            "{out}"
        );
        assert!(out.contains("config/app.env:3"), "{out}");
        let d = cache.diag(&Location::line(f, 2), "duplicate");
        let out = render(&Error::from(d), &plain());
        assert!(
            out.contains("DB_PASSWORD=… (value hidden)") && !out.contains("supersecret"),
            "{out}"
        );
    }

    #[test]
    fn colour_only_when_asked() {
        let e = Error::failed("boom").with_help("do `x`");
        assert!(!render(&e, &plain()).contains('\x1b'));
        assert!(render(
            &e,
            &Style {
                color: true,
                width: None
            }
        )
        .contains("\x1b[1;31merror"));
    }
}
