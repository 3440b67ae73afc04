//! All output goes through one `Shell`: human text on stderr in cargo's
//! voice, machine documents on stdout.

use std::io::{IsTerminal, Write};

use clap::ValueEnum;

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
}

impl Shell {
    pub fn new(verbosity: Verbosity, color: ColorChoice, format: MessageFormat) -> Self {
        let color = match color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
            }
        };
        Shell {
            verbosity,
            color,
            format,
        }
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

    pub fn warn(&self, message: impl std::fmt::Display) {
        if self.verbosity == Verbosity::Quiet {
            return;
        }
        let mut err = std::io::stderr().lock();
        if self.color {
            let _ = writeln!(err, "\x1b[1;33mwarning\x1b[0m: {message}");
        } else {
            let _ = writeln!(err, "warning: {message}");
        }
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

    /// Prints one JSON document on stdout.
    pub fn json(&self, value: &impl serde::Serialize) {
        let mut s = serde_json::to_string_pretty(value).expect("plain data serialises");
        s.push('\n');
        self.out(&s);
    }
}
