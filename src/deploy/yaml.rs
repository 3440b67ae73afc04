//! A small YAML emitter for the compose file.
//!
//! Why not a crate: `serde_yaml` is archived, and its forks either carry
//! soundness advisories or change their output between releases. The compose
//! file needs maps, lists, strings, integers, floats, booleans and null in
//! block style, with quoting decided by us so that the same [`Yaml`] value
//! always gives the same bytes — and so that every reader (PyYAML's YAML 1.1
//! in `docker-compose` and `podman-compose`, go-yaml in `docker compose`)
//! reads back exactly the string that was meant.
//!
//! Quoting rule: a string is written plain only when it starts with a letter,
//! `_` or `/`, holds nothing but letters, digits and `_ . / - : @ + =`, does
//! not end in `:` and is not a word YAML 1.1 reads as a boolean or null
//! (`yes`, `off`, `y`, `null`, …). Everything else is double-quoted with
//! escapes. `$` is never escaped or doubled: compose interpolates `${VAR}`.

use std::fmt::Write;

/// A YAML value. Maps keep the order they were built in; callers sort.
#[derive(Debug, Clone, PartialEq)]
pub enum Yaml {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Yaml>),
    Map(Vec<(String, Yaml)>),
}

impl Yaml {
    pub fn str(s: impl Into<String>) -> Yaml {
        Yaml::Str(s.into())
    }

    /// Converts a JSON value (healthchecks are stored as JSON in the Plan).
    /// Object keys are sorted, whatever order the JSON map keeps, so the
    /// output never depends on how the value was built.
    pub fn from_json(v: &serde_json::Value) -> Yaml {
        match v {
            serde_json::Value::Null => Yaml::Null,
            serde_json::Value::Bool(b) => Yaml::Bool(*b),
            serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
                (Some(i), _, _) => Yaml::Int(i),
                (None, Some(u), _) => Yaml::Str(u.to_string()),
                (_, _, Some(f)) => Yaml::Float(f),
                _ => Yaml::Str(n.to_string()),
            },
            serde_json::Value::String(s) => Yaml::Str(s.clone()),
            serde_json::Value::Array(a) => Yaml::Seq(a.iter().map(Yaml::from_json).collect()),
            serde_json::Value::Object(o) => {
                let mut entries: Vec<(String, Yaml)> = o
                    .iter()
                    .map(|(k, v)| (k.clone(), Yaml::from_json(v)))
                    .collect();
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                Yaml::Map(entries)
            }
        }
    }
}

/// Renders a document: `value` at the top level, block style, two-space
/// indentation, a final newline.
pub fn to_string(value: &Yaml) -> String {
    let mut out = String::new();
    match value {
        Yaml::Map(m) if !m.is_empty() => write_map(&mut out, m, 0),
        Yaml::Seq(s) if !s.is_empty() => write_seq(&mut out, s, 0),
        scalar => {
            out.push_str(&inline(scalar));
            out.push('\n');
        }
    }
    out
}

fn pad(out: &mut String, indent: usize) {
    for _ in 0..indent {
        out.push(' ');
    }
}

/// Is the value written on the same line as its key or dash?
fn is_inline(v: &Yaml) -> bool {
    match v {
        Yaml::Map(m) => m.is_empty(),
        Yaml::Seq(s) => s.is_empty(),
        _ => true,
    }
}

fn inline(v: &Yaml) -> String {
    match v {
        Yaml::Null => "null".to_string(),
        Yaml::Bool(b) => b.to_string(),
        Yaml::Int(i) => i.to_string(),
        Yaml::Float(f) => float(*f),
        Yaml::Str(s) => scalar(s),
        Yaml::Seq(_) => "[]".to_string(),
        Yaml::Map(_) => "{}".to_string(),
    }
}

fn write_map(out: &mut String, m: &[(String, Yaml)], indent: usize) {
    for (k, v) in m {
        pad(out, indent);
        out.push_str(&scalar(k));
        out.push(':');
        write_value_after_key(out, v, indent);
    }
}

fn write_value_after_key(out: &mut String, v: &Yaml, indent: usize) {
    if is_inline(v) {
        out.push(' ');
        out.push_str(&inline(v));
        out.push('\n');
        return;
    }
    out.push('\n');
    match v {
        Yaml::Map(m) => write_map(out, m, indent + 2),
        // Sequences are indented under their key, as compose files usually are.
        Yaml::Seq(s) => write_seq(out, s, indent + 2),
        _ => unreachable!("scalars are inline"),
    }
}

fn write_seq(out: &mut String, s: &[Yaml], indent: usize) {
    for item in s {
        pad(out, indent);
        out.push('-');
        match item {
            v if is_inline(v) => {
                out.push(' ');
                out.push_str(&inline(v));
                out.push('\n');
            }
            Yaml::Map(m) => {
                // `- key: value` with the following keys aligned under the first.
                let mut first = true;
                for (k, v) in m {
                    if first {
                        out.push(' ');
                        first = false;
                    } else {
                        pad(out, indent + 2);
                    }
                    out.push_str(&scalar(k));
                    out.push(':');
                    write_value_after_key(out, v, indent + 2);
                }
            }
            Yaml::Seq(inner) => {
                out.push('\n');
                write_seq(out, inner, indent + 2);
            }
            _ => unreachable!("scalars are inline"),
        }
    }
}

fn float(f: f64) -> String {
    if f.is_nan() {
        ".nan".to_string()
    } else if f.is_infinite() {
        if f > 0.0 { ".inf" } else { "-.inf" }.to_string()
    } else {
        // `{:?}` writes `1.0`, `0.25`, `1e21`, `1e-7`. YAML 1.1 (PyYAML)
        // needs a `.` in the mantissa and a sign in the exponent.
        let s = format!("{f:?}");
        match s.split_once('e') {
            None => s,
            Some((mantissa, exp)) => {
                let mantissa = if mantissa.contains('.') {
                    mantissa.to_string()
                } else {
                    format!("{mantissa}.0")
                };
                let exp = if exp.starts_with('-') {
                    exp.to_string()
                } else {
                    format!("+{exp}")
                };
                format!("{mantissa}e{exp}")
            }
        }
    }
}

/// Words YAML 1.1 reads as booleans or null (PyYAML, used by `docker-compose`
/// and `podman-compose`), plus YAML 1.2's `.inf`/`.nan` spellings are covered
/// by the first-character rule.
const RESERVED: &[&str] = &[
    "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "true", "True", "TRUE", "false",
    "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF", "null", "Null", "NULL",
];

/// Whether `s` can be written without quotes and read back as the same string.
pub fn is_plain_safe(s: &str) -> bool {
    let mut chars = s.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    if !(first.is_ascii_alphabetic() || first == '_' || first == '/') {
        return false;
    }
    if !s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_./-:@+=".contains(c))
    {
        return false;
    }
    !s.ends_with(':') && !RESERVED.contains(&s)
}

/// A string scalar: plain when safe, else double-quoted.
pub fn scalar(s: &str) -> String {
    if is_plain_safe(s) {
        return s.to_string();
    }
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            '\t' => q.push_str("\\t"),
            '\r' => q.push_str("\\r"),
            '\0' => q.push_str("\\0"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(q, "\\x{:02X}", c as u32);
            }
            // Non-printable by YAML's definition: escape so readers accept it.
            '\u{85}' | '\u{2028}' | '\u{2029}' | '\u{feff}' => {
                let _ = write!(q, "\\u{:04X}", c as u32);
            }
            c if ('\u{80}'..='\u{9f}').contains(&c) => {
                let _ = write!(q, "\\x{:02X}", c as u32);
            }
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(v: Vec<(&str, Yaml)>) -> Yaml {
        Yaml::Map(v.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
    }

    #[test]
    fn quotes_what_yaml_1_1_would_misread() {
        for s in [
            "",
            "yes",
            "No",
            "on",
            "OFF",
            "y",
            "n",
            "null",
            "~",
            "true",
            "1",
            "0x1f",
            "1e3",
            "0o17",
            "-1",
            "+1",
            ".5",
            ".inf",
            "-.inf",
            ".nan",
            "22:22",
            "5432:5432",
            "1_000",
            "2024-01-01",
            " lead",
            "trail ",
            "a b",
            "a: b",
            "a #b",
            "#c",
            "&anchor",
            "*alias",
            "!tag",
            "%dir",
            "@at",
            "`tick",
            "'single'",
            "\"double\"",
            "[x]",
            "{x}",
            "- x",
            "?",
            "|",
            ">",
            "a:",
            "${VAR}",
            "$x",
            "a,b",
            "é",
        ] {
            assert!(!is_plain_safe(s), "{s:?} must be quoted");
            assert!(scalar(s).starts_with('"'), "{s:?}");
        }
    }

    #[test]
    fn leaves_ordinary_words_plain() {
        for s in [
            "postgres",
            "postgres:16",
            "redis:7-alpine",
            "unless-stopped",
            "components/gateway",
            "/var/lib/postgresql/data",
            "CMD",
            "pg_isready",
            "http://embedder:8081",
            "a=b",
            "Dockerfile",
            "yesterday",
            "nope",
            "ony",
        ] {
            assert!(is_plain_safe(s), "{s:?} should stay plain");
            assert_eq!(scalar(s), s);
        }
    }

    #[test]
    fn escapes_inside_double_quotes() {
        assert_eq!(scalar("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(scalar("line1\nline2\t"), r#""line1\nline2\t""#);
        assert_eq!(scalar("\u{1}"), r#""\x01""#);
        assert_eq!(scalar("${PG_PASSWORD}"), r#""${PG_PASSWORD}""#);
        assert_eq!(scalar("$$literal"), r#""$$literal""#);
        assert_eq!(scalar("\u{2028}"), r#""\u2028""#);
    }

    #[test]
    fn renders_block_style() {
        let doc = map(vec![
            (
                "services",
                map(vec![(
                    "web",
                    map(vec![
                        ("image", Yaml::str("busybox:1")),
                        (
                            "ports",
                            Yaml::Seq(vec![Yaml::str("8080:80"), Yaml::str("9090:90")]),
                        ),
                        (
                            "healthcheck",
                            map(vec![
                                ("test", Yaml::Seq(vec![Yaml::str("CMD"), Yaml::str("true")])),
                                ("retries", Yaml::Int(5)),
                                ("ratio", Yaml::Float(1.0)),
                                ("disable", Yaml::Bool(false)),
                            ]),
                        ),
                        (
                            "nested",
                            Yaml::Seq(vec![
                                map(vec![("a", Yaml::Int(1)), ("b", Yaml::Null)]),
                                Yaml::Seq(vec![Yaml::str("x")]),
                                Yaml::Seq(vec![]),
                            ]),
                        ),
                    ]),
                )]),
            ),
            ("volumes", map(vec![("data", map(vec![]))])),
        ]);
        let expected = r#"services:
  web:
    image: busybox:1
    ports:
      - "8080:80"
      - "9090:90"
    healthcheck:
      test:
        - CMD
        - "true"
      retries: 5
      ratio: 1.0
      disable: false
    nested:
      - a: 1
        b: null
      -
        - x
      - []
volumes:
  data: {}
"#;
        assert_eq!(to_string(&doc), expected);
    }

    #[test]
    fn floats_never_read_as_integers() {
        assert_eq!(float(1.0), "1.0");
        assert_eq!(float(0.25), "0.25");
        assert_eq!(float(1e21), "1.0e+21");
        assert_eq!(float(-2.5e-7), "-2.5e-7");
        assert_eq!(float(f64::INFINITY), ".inf");
        assert_eq!(float(f64::NAN), ".nan");
    }

    #[test]
    fn json_conversion_keeps_types() {
        let v = serde_json::json!({"retries": 5, "interval": "10s", "x": [true, null, 1.5]});
        assert_eq!(
            Yaml::from_json(&v),
            map(vec![
                ("interval", Yaml::str("10s")),
                ("retries", Yaml::Int(5)),
                (
                    "x",
                    Yaml::Seq(vec![Yaml::Bool(true), Yaml::Null, Yaml::Float(1.5)])
                ),
            ])
        );
    }
}
