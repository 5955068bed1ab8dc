//! Every secret the bot knows, and the one function that hides them
//! (SPEC §13): chat, step logs, the web, the API, tracing and error texts all
//! pass their text through [`mask`] before it leaves the bot.
//!
//! The registry is process-wide on purpose: a secret read anywhere (a chat
//! token at start, a step's `secret_env` when the step starts) must be hidden
//! in every sink, including ones that know nothing of where it came from.

use std::borrow::Cow;
use std::sync::{Arc, RwLock};

use aho_corasick::AhoCorasick;
use secrecy::{ExposeSecret, SecretString};

/// What a secret becomes.
pub const MASK: &str = "***";

/// Shorter values are not masked: hiding every "a" or "1" would garble
/// every text while protecting nothing.
pub const MIN_LEN: usize = 6;

#[derive(Default)]
struct Registry {
    secrets: Vec<SecretString>,
    /// Rebuilt when a secret is added; None while there are none.
    matcher: Option<Arc<AhoCorasick>>,
}

static REGISTRY: RwLock<Registry> = RwLock::new(Registry {
    secrets: Vec::new(),
    matcher: None,
});

/// Remembers `value` as a secret from now on. Values shorter than
/// [`MIN_LEN`] are ignored, and so are values already known.
pub fn register(value: &str) {
    let value = value.trim();
    if value.len() < MIN_LEN {
        return;
    }
    let mut registry = REGISTRY.write().unwrap_or_else(|e| e.into_inner());
    if registry.secrets.iter().any(|s| s.expose_secret() == value) {
        return;
    }
    registry.secrets.push(SecretString::from(value.to_string()));
    let patterns: Vec<&str> = registry.secrets.iter().map(|s| s.expose_secret()).collect();
    // Leftmost-longest: a secret that contains another is hidden whole.
    registry.matcher = aho_corasick::AhoCorasickBuilder::new()
        .match_kind(aho_corasick::MatchKind::LeftmostLongest)
        .build(patterns)
        .ok()
        .map(Arc::new);
}

/// `text` with every known secret replaced by `***`.
pub fn mask(text: &str) -> Cow<'_, str> {
    let matcher = {
        let registry = REGISTRY.read().unwrap_or_else(|e| e.into_inner());
        match &registry.matcher {
            Some(m) => m.clone(),
            None => return Cow::Borrowed(text),
        }
    };
    if !matcher.is_match(text) {
        return Cow::Borrowed(text);
    }
    let replacements = vec![MASK; matcher.patterns_len()];
    Cow::Owned(matcher.replace_all(text, &replacements))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_secrets_become_stars_wherever_they_are() {
        register("ghp_abcdef123456");
        register("ghp_abcdef123456_longer");
        register("short");
        assert_eq!(mask("token ghp_abcdef123456 here"), "token *** here");
        assert_eq!(mask("x=ghp_abcdef123456_longer;"), "x=***;");
        assert_eq!(
            mask("https://h/api?token=ghp_abcdef123456&x=1"),
            "https://h/api?token=***&x=1"
        );
        assert_eq!(mask("nothing short here"), "nothing short here");
        assert!(matches!(mask("plain"), Cow::Borrowed(_)));
    }
}
