//! All output goes through one `Shell`: human text on stderr in cargo's
//! voice, machine documents on stdout.

use std::cell::Cell;
use std::io::{IsTerminal, Write};

use clap::ValueEnum;

use crate::error::render::{render, Style};
use crate::error::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum ColorChoice {
    #[default]
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum MessageFormat {
    #[default]
    Human,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    Quiet,
    Normal,
    Verbose,
}

pub struct Shell {
    pub verbosity: Verbosity,
    pub color: bool,
    pub format: MessageFormat,
    /// How errors, warnings and help are rendered on stderr.
    pub style: Style,
    /// Whether the command's one JSON document was printed already.
    printed: Cell<bool>,
}

/// `--color`, else `CARGO_TERM_COLOR`, else anstream's rules for stderr
/// (`NO_COLOR`, `CLICOLOR_FORCE`, `CLICOLOR=0`, a terminal whose `TERM` is
/// not `dumb`): cargo's order, as cargo itself resolves it.
fn resolve_color(choice: ColorChoice) -> bool {
    let choice = match choice {
        ColorChoice::Auto => match std::env::var("CARGO_TERM_COLOR").as_deref() {
            Ok("always") => ColorChoice::Always,
            Ok("never") => ColorChoice::Never,
            _ => ColorChoice::Auto,
        },
        c => c,
    };
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            anstream::AutoStream::choice(&std::io::stderr()) != anstream::ColorChoice::Never
        }
    }
}

/// The terminal's width when stderr is one; `None` (never wrap) otherwise.
fn stderr_width() -> Option<usize> {
    let err = std::io::stderr();
    if !err.is_terminal() {
        return None;
    }
    terminal_size::terminal_size_of(&err).map(|(w, _)| usize::from(w.0))
}

impl Shell {
    pub fn new(verbosity: Verbosity, color: ColorChoice, format: MessageFormat) -> Self {
        let color = resolve_color(color);
        Shell {
            verbosity,
            color,
            format,
            style: Style {
                color,
                width: stderr_width(),
            },
            printed: Cell::new(false),
        }
    }

    /// An error on stderr, in the one style of every command.
    pub fn error(&self, e: &Error) {
        let _ = std::io::stderr()
            .lock()
            .write_all(render(e, &self.style).as_bytes());
    }

    /// `error: …` / `help: …` lines of a report that is not an [`Error`]
    /// (`check`'s findings).
    pub fn headline(&self, kind: &str, text: &str) {
        let _ = std::io::stderr()
            .lock()
            .write_all(self.style.headline(kind, text).as_bytes());
    }

    /// `   Syncing embedder (uv)`: a right-aligned green verb, as cargo does.
    pub fn status(&self, verb: &str, message: impl std::fmt::Display) {
        if self.verbosity == Verbosity::Quiet || self.format == MessageFormat::Json {
            return;
        }
        let mut err = std::io::stderr().lock();
        if self.color {
            let _ = writeln!(err, "\x1b[1;32m{verb:>12}\x1b[0m {message}");
        } else {
            let _ = writeln!(err, "{verb:>12} {message}");
        }
    }

    /// A unified diff on stderr, in git's colours when colour is on
    /// (not with `-q` or JSON, where the document carries it).
    pub fn diff(&self, diff: &str) {
        if self.verbosity == Verbosity::Quiet || self.format == MessageFormat::Json {
            return;
        }
        let _ = std::io::stderr()
            .lock()
            .write_all(crate::diff::paint(diff, self.color).as_bytes());
    }

    pub fn warn(&self, message: impl std::fmt::Display) {
        if self.verbosity == Verbosity::Quiet {
            return;
        }
        self.headline("warning", &message.to_string());
    }

    pub fn verbose(&self, message: impl std::fmt::Display) {
        if self.verbosity == Verbosity::Verbose && self.format == MessageFormat::Human {
            let _ = writeln!(std::io::stderr().lock(), "{message}");
        }
    }

    /// Writes to stdout (the command's result).
    pub fn out(&self, text: &str) {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }

    /// Prints the command's one JSON document on stdout: `value` (an
    /// object) with `schema` and `reason` first, the envelope every
    /// command's document shares.
    pub fn document(&self, reason: &str, value: &impl serde::Serialize) {
        let mut doc = serde_json::Map::new();
        doc.insert("schema".into(), serde_json::json!(crate::plan::PLAN_SCHEMA));
        doc.insert("reason".into(), serde_json::json!(reason));
        match serde_json::to_value(value).expect("plain data serialises") {
            serde_json::Value::Object(o) => {
                for (k, v) in o {
                    if k != "schema" && k != "reason" {
                        doc.insert(k, v);
                    }
                }
            }
            other => {
                doc.insert("value".into(), other);
            }
        }
        let mut s = serde_json::to_string_pretty(&doc).expect("plain data serialises");
        s.push('\n');
        self.out(&s);
        self.printed.set(true);
    }

    /// One JSON object on one line of stdout, with `schema` and `reason`
    /// first: the stream of a long-running command (`up`), as `cargo build
    /// --message-format json` prints its messages.
    pub fn json_line(&self, reason: &str, value: &impl serde::Serialize) {
        let mut doc = serde_json::Map::new();
        doc.insert("schema".into(), serde_json::json!(crate::plan::PLAN_SCHEMA));
        doc.insert("reason".into(), serde_json::json!(reason));
        if let serde_json::Value::Object(o) =
            serde_json::to_value(value).expect("plain data serialises")
        {
            for (k, v) in o {
                if k != "schema" && k != "reason" {
                    doc.insert(k, v);
                }
            }
        }
        let mut s = serde_json::to_string(&doc).expect("plain data serialises");
        s.push('\n');
        self.out(&s);
    }

    /// The command printed its own JSON for an error (a stream's last
    /// line): the error is then told on stderr only.
    pub fn mark_printed(&self) {
        self.printed.set(true);
    }

    /// Whether the command's JSON document went out already (an error
    /// after it is then told on stderr only: stdout holds one document).
    pub fn printed(&self) -> bool {
        self.printed.get()
    }
}
