//! One config problem and its one-line rendering: `line N: dotted.key: what`.
//! toml's own errors are multi-line with a source excerpt; chat and the
//! terminal get one line, so they are folded here.

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// What is wrong, under which key, and where in the text (when the file has
/// a place for it: a missing table has none).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Problem {
    pub span: Option<Range<usize>>,
    pub key: String,
    pub message: String,
}

impl Problem {
    pub fn at(span: Range<usize>, key: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem {
            span: Some(span),
            key: key.into(),
            message: message.into(),
        }
    }

    /// A problem with no place in the file, e.g. a default that needs a table.
    pub fn nowhere(key: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem {
            span: None,
            key: key.into(),
            message: message.into(),
        }
    }

    /// `line N: key: message`, without the parts that are unknown.
    pub fn render(&self, text: &str) -> String {
        let mut out = String::new();
        if let Some(span) = &self.span {
            out.push_str(&format!("line {}: ", line_of(text, span.start)));
        }
        if !self.key.is_empty() {
            out.push_str(&self.key);
            out.push_str(": ");
        }
        // Library messages sometimes span lines; the contract is one line.
        let lines: Vec<&str> = self
            .message
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        out.push_str(&lines.join(" "));
        out
    }
}

/// 1-based line of a byte offset.
pub(super) fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Folds a toml error (syntax, unknown key, wrong type) into one line. toml
/// does not expose the key path of a type error, so it is found again by
/// looking up which key or value the error's span falls in.
pub(super) fn from_toml_error(text: &str, err: &toml::de::Error) -> Problem {
    let message = err
        .message()
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .unwrap_or("invalid TOML")
        .to_string();
    let Some(span) = err.span() else {
        return Problem::nowhere("", message);
    };
    let key = key_at(text, span.start).unwrap_or_default();
    Problem::at(span, key, message)
}

/// The dotted path (`environments.staging.deploy[0].run`) of the innermost
/// key or value that contains `offset`.
pub(super) fn key_at(text: &str, offset: usize) -> Option<String> {
    let root = DeTable::parse(text).ok()?;
    let mut path = String::new();
    walk_table(root.get_ref(), offset, &mut path).then_some(path)
}

fn walk_table(table: &DeTable<'_>, offset: usize, path: &mut String) -> bool {
    for (key, value) in table.iter() {
        let in_key = contains(&key.span(), offset);
        let in_value = contains(&value.span(), offset);
        // A `[section]` table's value span may not cover its keys, so descend
        // into every table and keep the first hit.
        let before = path.len();
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(key.get_ref());
        if !in_key && walk_value(value, offset, path) {
            return true;
        }
        if in_key || in_value {
            return true;
        }
        path.truncate(before);
    }
    false
}

fn walk_value(value: &Spanned<DeValue<'_>>, offset: usize, path: &mut String) -> bool {
    match value.get_ref() {
        DeValue::Table(table) => walk_table(table, offset, path),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let before = path.len();
                path.push_str(&format!("[{i}]"));
                if walk_value(item, offset, path) || contains(&item.span(), offset) {
                    return true;
                }
                path.truncate(before);
            }
            false
        }
        _ => false,
    }
}

fn contains(span: &Range<usize>, offset: usize) -> bool {
    span.start <= offset && (offset < span.end || span.is_empty() && offset == span.start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_of_counts_from_one() {
        assert_eq!(line_of("a\nb\nc", 0), 1);
        assert_eq!(line_of("a\nb\nc", 2), 2);
        assert_eq!(line_of("a\nb\nc", 99), 3);
    }

    #[test]
    fn key_at_finds_nested_keys() {
        let text = "[bot]\nx = 1\n[environments.staging]\ndeploy = [{ run = 5 }]\n";
        let offset = text.find('5').unwrap();
        assert_eq!(
            key_at(text, offset).as_deref(),
            Some("environments.staging.deploy[0].run")
        );
        let offset = text.find("x =").unwrap();
        assert_eq!(key_at(text, offset).as_deref(), Some("bot.x"));
    }

    #[test]
    fn render_without_a_place() {
        let problem = Problem::nowhere("train.environments", "missing");
        assert_eq!(problem.render(""), "train.environments: missing");
    }
}
