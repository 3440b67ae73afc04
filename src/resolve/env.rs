//! Env files: `KEY=VALUE` lines, `#` comments and blank lines. Anything else
//! is an error with the file and the line, never a silently skipped line.

use camino::Utf8Path;

use crate::error::{Location, SourceCache};

/// One parsed line: key, value, 1-based line number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvLine {
    pub key: String,
    pub value: String,
    pub line: usize,
}

/// Parses an env file already read into `text`. Errors carry the line.
pub fn parse_env_file(text: &str) -> Result<Vec<EnvLine>, (usize, String)> {
    let mut out: Vec<EnvLine> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line
            .strip_prefix("export ")
            .map(str::trim_start)
            .unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            return Err((
                line_no,
                format!("line {line_no} has no `=`: expected `KEY=VALUE`"),
            ));
        };
        let key = key.trim();
        if key.is_empty() {
            return Err((
                line_no,
                format!("line {line_no} has an empty key: expected `KEY=VALUE`"),
            ));
        }
        if !super::validate::valid_env_name(key) {
            return Err((
                line_no,
                format!(
                    "line {line_no}: `{key}` is not a valid variable name (names match `[A-Za-z_][A-Za-z0-9_]*`)"
                ),
            ));
        }
        if let Some(prev) = out.iter().find(|e| e.key == key) {
            return Err((
                line_no,
                format!(
                    "line {line_no} sets `{key}` again (first set on line {})",
                    prev.line
                ),
            ));
        }
        let value = unquote(value.trim());
        out.push(EnvLine {
            key: key.to_string(),
            value,
            line: line_no,
        });
    }
    Ok(out)
}

fn unquote(v: &str) -> String {
    for q in ['"', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return v[1..v.len() - 1].to_string();
        }
    }
    v.to_string()
}

/// Reads and parses an env file, registering its text for diagnostics.
pub fn read_env_file(
    cache: &mut SourceCache,
    path: &Utf8Path,
) -> Result<Vec<EnvLine>, crate::error::Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| crate::error::Error::config(format!("cannot read env file `{path}`: {e}")))?;
    cache.insert(path, text.clone());
    parse_env_file(&text).map_err(|(line, msg)| {
        cache
            .diag(
                &Location::line(path.to_owned(), line),
                format!("invalid env file `{}`: {msg}", cache.display_path(path)),
            )
            .help("env files hold `KEY=VALUE` lines, `#` comments and blank lines")
            .into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines_comments_and_quotes() {
        let got = parse_env_file("# c\n\nA=1\nexport B = \"two words\"\nC=\nD='x=y'\n").unwrap();
        let kv: Vec<_> = got
            .iter()
            .map(|e| (e.key.as_str(), e.value.as_str(), e.line))
            .collect();
        assert_eq!(
            kv,
            vec![
                ("A", "1", 3),
                ("B", "two words", 4),
                ("C", "", 5),
                ("D", "x=y", 6)
            ]
        );
    }

    #[test]
    fn rejects_bad_lines_with_their_number() {
        assert_eq!(parse_env_file("A=1\nnope\n").unwrap_err().0, 2);
        assert_eq!(parse_env_file("=1\n").unwrap_err().0, 1);
        let (line, msg) = parse_env_file("A=1\nA=2\n").unwrap_err();
        assert_eq!(line, 2);
        assert!(msg.contains("first set on line 1"), "{msg}");
    }
}
