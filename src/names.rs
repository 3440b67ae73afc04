//! Component names: `[a-z0-9][a-z0-9._-]*`, never a path separator or `..`,
//! because they become directory names under `services/`.

/// The longest component name: it becomes a directory, an env file name
/// (`.hsm/env/<name>.env`, with temp-file affixes) and a container name.
pub const MAX_LEN: usize = 64;

/// Checks a component name; the error says what is wrong with it.
pub fn validate(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return Err("a name cannot be empty".into());
    };
    if name.len() > MAX_LEN {
        return Err(format!(
            "`{}…` is {} characters long; names have at most {MAX_LEN} (they become directory, file and container names)",
            name[..name.char_indices().nth(16).map_or(name.len(), |(i, _)| i)].escape_debug(),
            name.chars().count()
        ));
    }
    // Shown with escapes: a control character in a name could move the
    // cursor or break the message's line.
    let shown = name.escape_debug();
    if name.contains('/') || name.contains('\\') {
        return Err(format!("`{shown}` contains a path separator; names become directory names under the services directory"));
    }
    if name.contains("..") {
        return Err(format!(
            "`{shown}` contains `..`; names become directory names under the services directory"
        ));
    }
    if !(first.is_ascii_lowercase() || first.is_ascii_digit()) {
        return Err(format!(
            "`{shown}` must start with a lowercase letter or a digit"
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')))
    {
        let bad = if bad.is_control() {
            format!("the control character U+{:04X}", bad as u32)
        } else {
            format!("`{bad}`")
        };
        return Err(format!(
            "`{shown}` contains {bad}; names match [a-z0-9][a-z0-9._-]*"
        ));
    }
    Ok(())
}

/// The closest known word to `word`, for "did you mean" hints.
pub fn did_you_mean<'a>(word: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    known
        .into_iter()
        .map(|k| (strsim::jaro_winkler(word, k), k))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal))
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_usual_names() {
        for n in ["embedder", "qdrant-adapter", "py3.11", "a_b", "0x"] {
            assert!(validate(n).is_ok(), "{n}");
        }
    }

    #[test]
    fn rejects_paths_and_odd_characters() {
        for n in [
            "",
            "../x",
            "a/b",
            &"a".repeat(65),
            "a\\b",
            "..",
            "a..b",
            "Upper",
            "-x",
            ".x",
            "a b",
            "é",
        ] {
            assert!(validate(n).is_err(), "{n}");
        }
    }

    #[test]
    fn suggests_close_words() {
        assert_eq!(
            did_you_mean("servces", ["project", "services", "modes"]),
            Some("services")
        );
        assert_eq!(did_you_mean("zzz", ["project", "services"]), None);
    }
}
