//! Adding to and removing from arrays the way a person would: one element per
//! line stays one element per line, and a comment stays with its element.

use toml_edit::{Array, Value};

/// Whether the array is written one element per line.
fn multiline(a: &Array) -> bool {
    a.iter().any(|v| {
        v.decor()
            .prefix()
            .and_then(|p| p.as_str())
            .is_some_and(|p| p.contains('\n'))
    })
}

fn prefix_of(v: &Value) -> String {
    v.decor()
        .prefix()
        .and_then(|p| p.as_str())
        .unwrap_or("")
        .to_string()
}

/// The indentation after the last newline of a decor string.
fn indent_of(s: &str) -> &str {
    s.rsplit('\n').next().unwrap_or("")
}

/// Appends `value`, matching the array's layout. In a multi-line array the
/// comment after the last element stays on that element's line.
pub fn push(a: &mut Array, mut value: Value) {
    if a.is_empty() {
        value.decor_mut().clear();
        a.push_formatted(value);
        a.fmt();
        return;
    }
    if multiline(a) {
        let last_prefix = prefix_of(a.get(a.len() - 1).expect("not empty"));
        let indent = indent_of(&last_prefix).to_string();
        let trailing = a.trailing().as_str().unwrap_or("").to_string();
        // `trailing` holds what follows the last element: its line comment and
        // the newline before `]`.
        let (comment, rest) = match trailing.rfind('\n') {
            Some(i) => (trailing[..i].to_string(), trailing[i..].to_string()),
            None => (String::new(), format!("{trailing}\n")),
        };
        value.decor_mut().set_prefix(format!("{comment}\n{indent}"));
        value.decor_mut().set_suffix("");
        a.push_formatted(value);
        a.set_trailing_comma(true);
        a.set_trailing(rest);
    } else {
        value.decor_mut().set_prefix(" ");
        value.decor_mut().set_suffix("");
        a.push_formatted(value);
    }
}

/// Removes element `i`; its line comment goes with it and the comment of the
/// element before it stays.
pub fn remove(a: &mut Array, i: usize) {
    let removed_prefix = a.get(i).map(prefix_of).unwrap_or_default();
    let is_last = i + 1 == a.len();
    a.remove(i);
    if a.is_empty() {
        a.set_trailing("");
        a.set_trailing_comma(false);
        return;
    }
    if is_last {
        if removed_prefix.contains('\n') {
            // The removed prefix is "<comment of the previous line>\n<indent>".
            let cut = removed_prefix.rfind('\n').expect("contains a newline");
            let trailing = a.trailing().as_str().unwrap_or("").to_string();
            let close = match trailing.rfind('\n') {
                Some(j) => trailing[j..].to_string(),
                None => "\n".to_string(),
            };
            a.set_trailing(format!("{}{close}", &removed_prefix[..cut]));
        }
    } else if let Some(next) = a.get_mut(i) {
        next.decor_mut().set_prefix(removed_prefix);
    }
}
