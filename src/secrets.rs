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
use percent_encoding::percent_decode_str;
use secrecy::{ExposeSecret, SecretString};

/// What a secret becomes.
pub const MASK: &str = "***";

/// Shorter values are not masked: hiding every "a" or "1" would garble
/// every text while protecting nothing.
pub const MIN_LEN: usize = 6;

#[derive(Default)]
struct Registry {
    secrets: Vec<SecretString>,
    /// Secrets that are renewed (GitHub App installation tokens), by kind,
    /// oldest first: also in `secrets`, and forgotten two renewals later.
    renewed: Vec<(String, SecretString)>,
    /// Rebuilt when a secret is added; None while there are none.
    matcher: Option<Arc<AhoCorasick>>,
}

static REGISTRY: RwLock<Registry> = RwLock::new(Registry {
    secrets: Vec::new(),
    renewed: Vec::new(),
    matcher: None,
});

/// How many values of one renewed secret stay hidden: the current one and
/// the one before, which a run that started earlier may still print.
const RENEWED_KEPT: usize = 2;

/// Remembers `value` as a secret from now on. Values shorter than
/// [`MIN_LEN`] are ignored, and so are values already known.
pub fn register(value: &str) {
    remember(None, value);
}

/// Remembers `value` as the newest value of a secret that is renewed, like
/// a GitHub App's installation token every hour. The value before it stays
/// hidden; older ones are forgotten, so the registry does not grow with
/// every renewal. Cheap when `value` is already known (every API call).
pub fn register_renewed(kind: &str, value: &str) {
    remember(Some(kind), value);
}

fn remember(renewed: Option<&str>, value: &str) {
    let value = value.trim();
    if value.len() < MIN_LEN {
        return;
    }
    let known = |r: &Registry| r.secrets.iter().any(|s| s.expose_secret() == value);
    // A read lock first: most calls find the value known.
    if known(&REGISTRY.read().unwrap_or_else(|e| e.into_inner())) {
        return;
    }
    let mut registry = REGISTRY.write().unwrap_or_else(|e| e.into_inner());
    if known(&registry) {
        return;
    }
    registry.secrets.push(SecretString::from(value.to_string()));
    if let Some(kind) = renewed {
        registry.renew(kind, value);
    }
    registry.rebuild();
}

impl Registry {
    /// `value` (already a secret) is the newest of `kind`; the oldest of
    /// that kind beyond [`RENEWED_KEPT`] is forgotten.
    fn renew(&mut self, kind: &str, value: &str) {
        self.renewed
            .push((kind.to_string(), SecretString::from(value.to_string())));
        if self.renewed.iter().filter(|(k, _)| k == kind).count() <= RENEWED_KEPT {
            return;
        }
        if let Some(at) = self.renewed.iter().position(|(k, _)| k == kind) {
            let (_, oldest) = self.renewed.remove(at);
            self.secrets
                .retain(|s| s.expose_secret() != oldest.expose_secret());
        }
    }

    fn rebuild(&mut self) {
        let patterns: Vec<&str> = self.secrets.iter().map(|s| s.expose_secret()).collect();
        // Leftmost-longest: a secret that contains another is hidden whole.
        self.matcher = aho_corasick::AhoCorasickBuilder::new()
            .match_kind(aho_corasick::MatchKind::LeftmostLongest)
            .build(patterns)
            .ok()
            .map(Arc::new);
    }
}

/// `text` with every known secret replaced by `***`.
pub fn mask(text: &str) -> Cow<'_, str> {
    let Some(matcher) = matcher() else {
        return Cow::Borrowed(text);
    };
    if !matcher.is_match(text) {
        return Cow::Borrowed(text);
    }
    let replacements = vec![MASK; matcher.patterns_len()];
    Cow::Owned(matcher.replace_all(text, &replacements))
}

/// Like [`mask`], for bytes that may not be UTF-8 (step output).
pub fn mask_bytes(bytes: &[u8]) -> Cow<'_, [u8]> {
    let Some(matcher) = matcher() else {
        return Cow::Borrowed(bytes);
    };
    if !matcher.is_match(bytes) {
        return Cow::Borrowed(bytes);
    }
    let replacements = vec![MASK.as_bytes(); matcher.patterns_len()];
    Cow::Owned(matcher.replace_all_bytes(bytes, &replacements))
}

/// For text that arrives in pieces (step output): how much of `bytes` can
/// be masked and let go now. What is held back is shorter than the longest
/// secret and is where one could still be starting, so a secret split
/// between two pieces is masked whole once the next piece comes.
pub fn safe_prefix(bytes: &[u8]) -> usize {
    let Some(matcher) = matcher() else {
        return bytes.len();
    };
    let mut cut = bytes
        .len()
        .saturating_sub(matcher.max_pattern_len().saturating_sub(1));
    for found in matcher.find_iter(bytes) {
        if found.start() >= cut {
            break;
        }
        if found.end() > cut {
            // A whole secret across the cut: it goes out with what follows.
            cut = found.start();
            break;
        }
    }
    cut
}

/// Whether any secret is known (a sink may then skip its work).
pub fn any() -> bool {
    matcher().is_some()
}

fn matcher() -> Option<Arc<AhoCorasick>> {
    let registry = REGISTRY.read().unwrap_or_else(|e| e.into_inner());
    registry.matcher.clone()
}

/// Registers the secrets a configured URL carries: the password of its user
/// info (or the user, when there is no password: `https://TOKEN@host`), its
/// query values, and path segments that look like tokens — each as written
/// and percent-decoded, since an error text may show either.
pub fn register_url(text: &str) {
    let Ok(url) = url::Url::parse(text) else {
        return;
    };
    let both = |raw: &str| {
        register(raw);
        register(&percent_decode_str(raw).decode_utf8_lossy());
    };
    match url.password() {
        Some(password) => both(password),
        None => both(url.username()),
    }
    if let Some(query) = url.query() {
        for pair in query.split('&') {
            match pair.split_once('=') {
                Some((key, value)) if secret_value(key, value) => both(value),
                Some(_) => {}
                None if looks_like_token(pair) => both(pair),
                None => {}
            }
        }
    }
    let token_path = token_path(url.host_str().unwrap_or(""));
    if let Some(segments) = url.path_segments() {
        for (i, segment) in segments.enumerate() {
            if token_path.is_some_and(|after| i >= after) || looks_like_token(segment) {
                both(segment);
            }
        }
    }
}

/// Whether a query value is registered: under a key that names a secret,
/// or mixing letters and digits (`env=staging` is not hidden in every text,
/// `token=…`, `sig=…`, `v=a1b2c3` are). `redact_url` hides every value anyway.
fn secret_value(key: &str, value: &str) -> bool {
    const SECRET_KEYS: [&str; 9] = [
        "token",
        "key",
        "secret",
        "pass",
        "pwd",
        "auth",
        "sig",
        "code",
        "credential",
    ];
    let key = key.to_ascii_lowercase();
    let value = percent_decode_str(value).decode_utf8_lossy();
    SECRET_KEYS.iter().any(|k| key.contains(k))
        || (value.chars().any(|c| c.is_ascii_alphabetic())
            && value.chars().any(|c| c.is_ascii_digit()))
        || looks_like_token(&value)
}

/// Hosts whose URLs carry a token in the path: the index of the first path
/// segment that is secret (`hooks.slack.com/services/T…/B…/XXXX`).
fn token_path(host: &str) -> Option<usize> {
    match host.to_ascii_lowercase().as_str() {
        "hooks.slack.com" => Some(1),
        "discord.com" | "discordapp.com" => Some(3),
        "api.telegram.org" => Some(0),
        _ => None,
    }
}

/// A path segment or bare query word that is probably a token: at least 16
/// characters of letters, digits and `-_.~:+=%`, mixing letters and digits
/// (several switches between them, or 32+ characters), e.g. `ghp_a1B2…`,
/// a hex digest, a UUID — not `release-2024`.
pub fn looks_like_token(segment: &str) -> bool {
    let text = percent_decode_str(segment).decode_utf8_lossy();
    if text.chars().count() < 16
        || !text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.~:+=/".contains(c))
    {
        return false;
    }
    let letters = text.chars().any(|c| c.is_ascii_alphabetic());
    let digits = text.chars().any(|c| c.is_ascii_digit());
    if !(letters && digits) {
        return false;
    }
    let mut switches = 0;
    let mut last: Option<bool> = None;
    for c in text.chars().filter(char::is_ascii_alphanumeric) {
        let digit = c.is_ascii_digit();
        if last.is_some_and(|l| l != digit) {
            switches += 1;
        }
        last = Some(digit);
    }
    switches >= 4 || text.len() >= 32
}

/// A URL for chat, logs and pages: user info, every query value and every
/// path segment that looks like a token become `***`, keys and the rest
/// stay as written: `https://u:p@h/x/ghp_…?token=abc&v=1` →
/// `https://***@h/x/***?token=***&v=***`. Works on text that is not a valid
/// URL too, so nothing a user configured leaks through an error.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|at| at + 3) else {
        return url.to_string();
    };
    let mut out = String::with_capacity(url.len());
    out.push_str(&url[..scheme_end]);
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let host = match authority.rfind('@') {
        Some(at) => {
            out.push_str(MASK);
            &authority[at..]
        }
        None => authority,
    };
    out.push_str(host);
    let host_name = host.trim_start_matches('@');
    let host_name = host_name.split(':').next().unwrap_or("");
    let rest = &rest[authority_end..];
    let (before_fragment, fragment) = match rest.find('#') {
        Some(at) => (&rest[..at], Some(&rest[at + 1..])),
        None => (rest, None),
    };
    let (path, query) = match before_fragment.find('?') {
        Some(at) => (&before_fragment[..at], Some(&before_fragment[at + 1..])),
        None => (before_fragment, None),
    };
    let token_path = token_path(host_name);
    for (i, segment) in path.split('/').skip(1).enumerate() {
        out.push('/');
        if !segment.is_empty()
            && (token_path.is_some_and(|after| i >= after) || looks_like_token(segment))
        {
            out.push_str(MASK);
        } else {
            out.push_str(segment);
        }
    }
    if let Some(query) = query {
        out.push('?');
        out.push_str(&redact_pairs(query));
    }
    if let Some(fragment) = fragment {
        out.push('#');
        if fragment.contains('=') || looks_like_token(fragment) {
            out.push_str(&redact_pairs(fragment));
        } else {
            out.push_str(fragment);
        }
    }
    mask(&out).into_owned()
}

/// `text` with every URL in it passed through [`redact_url`] and every
/// known secret masked: for texts that may quote a URL before its secrets
/// could be registered (a config file's syntax error shows the line).
pub fn redact_urls_in(text: &str) -> String {
    static URL: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r#"[A-Za-z][A-Za-z0-9+.-]*://[^\s"'<>`]+"#).expect("a valid regex")
    });
    let redacted = URL.replace_all(text, |c: &regex::Captures<'_>| redact_url(&c[0]));
    mask(&redacted).into_owned()
}

/// `a=1&b&c=` → `a=***&b&c=`: keys stay, values go; a bare word that looks
/// like a token goes too.
fn redact_pairs(query: &str) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) if !value.is_empty() => format!("{key}={MASK}"),
            Some(_) => pair.to_string(),
            None if looks_like_token(pair) => MASK.to_string(),
            None => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// The tracing writer: stderr, with every known secret masked in each
/// formatted event (the fmt layer writes one event per `write`).
pub fn masked_stderr() -> MaskedWriter<std::io::Stderr> {
    MaskedWriter(std::io::stderr())
}

/// A writer that masks what passes through it.
pub struct MaskedWriter<W>(pub W);

impl<W: std::io::Write> std::io::Write for MaskedWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write_all(&mask_bytes(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
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

    #[test]
    fn a_renewed_secret_hides_its_last_two_values_and_forgets_older_ones() {
        register_renewed("test-renewed", "ghs_renewed_one_111");
        register_renewed("test-renewed", "ghs_renewed_two_222");
        assert_eq!(mask("ghs_renewed_one_111 ghs_renewed_two_222"), "*** ***");
        register_renewed("test-renewed", "ghs_renewed_two_222");
        register_renewed("test-renewed", "ghs_renewed_three_333");
        assert_eq!(
            mask("ghs_renewed_one_111 ghs_renewed_two_222 ghs_renewed_three_333"),
            "ghs_renewed_one_111 *** ***"
        );
        let registry = REGISTRY.read().unwrap();
        let kept = registry
            .renewed
            .iter()
            .filter(|(k, _)| k == "test-renewed")
            .count();
        assert_eq!(kept, 2);
    }

    #[test]
    fn text_in_pieces_is_masked_as_if_it_came_whole() {
        register("piece-secret-77");
        let whole = format!(
            "{}piece-secret-77 and {}piece-secret-77",
            "x".repeat(100),
            "y".repeat(50)
        );
        for size in [1, 3, 7, 14, 15, 16, 40, 200] {
            let (mut pending, mut out) = (Vec::new(), Vec::new());
            for piece in whole.as_bytes().chunks(size) {
                pending.extend_from_slice(piece);
                let cut = safe_prefix(&pending);
                let now: Vec<u8> = pending.drain(..cut).collect();
                out.extend_from_slice(&mask_bytes(&now));
                // Other tests register longer secrets in this process.
                let longest = matcher().map_or(0, |m| m.max_pattern_len());
                assert!(
                    pending.len() < 2 * longest,
                    "{size}: {} held",
                    pending.len()
                );
            }
            out.extend_from_slice(&mask_bytes(&pending));
            assert_eq!(String::from_utf8(out).unwrap(), mask(&whole), "{size}");
        }
    }

    #[test]
    fn bytes_are_masked_like_text() {
        register("bytes-secret-42");
        assert_eq!(
            &*mask_bytes(b"a \xff bytes-secret-42 b"),
            b"a \xff *** b".as_slice()
        );
        let mut out = MaskedWriter(Vec::new());
        std::io::Write::write_all(&mut out, b"event token=bytes-secret-42\n").unwrap();
        assert_eq!(out.0, b"event token=***\n");
    }

    #[test]
    fn urls_lose_user_info_query_values_and_token_paths() {
        assert_eq!(
            redact_url("https://u:p@h.example/x@y"),
            "https://***@h.example/x@y"
        );
        assert_eq!(
            redact_url("https://token@h.example"),
            "https://***@h.example"
        );
        assert_eq!(
            redact_url("https://h.example/api/deploy?token=abc123&env=prod&flag"),
            "https://h.example/api/deploy?token=***&env=***&flag"
        );
        assert_eq!(
            redact_url("http://127.0.0.1:8080/hook/ghp_a1B2c3D4e5F6g7H8i9J0?x=1#frag"),
            "http://127.0.0.1:8080/hook/***?x=***#frag"
        );
        assert_eq!(
            redact_url("https://hooks.slack.com/services/T0001/B0002/XXXXyyyyZZZZ"),
            "https://hooks.slack.com/services/***/***/***"
        );
        assert_eq!(
            redact_url("https://h.example/releases/release-2024-01/deploy"),
            "https://h.example/releases/release-2024-01/deploy"
        );
        assert_eq!(
            redact_url("https://h.example/cb#access_token=abc&type=x"),
            "https://h.example/cb#access_token=***&type=***"
        );
        assert_eq!(redact_url("not a url"), "not a url");
    }

    #[test]
    fn urls_quoted_in_a_text_are_redacted() {
        assert_eq!(
            redact_urls_in("line 3: deploy = [{ http = \"https://u:pw@h/x?k=v1\" }] bad"),
            "line 3: deploy = [{ http = \"https://***@h/x?k=***\" }] bad"
        );
    }

    #[test]
    fn a_configured_url_registers_its_secrets() {
        register_url(
            "https://deployer:pw%2Fsecret9@h.example/d/tok4en5abc6def7gh8?key=qvsecret&v=zq9x8w7&env=staging",
        );
        let text = "pw%2Fsecret9 pw/secret9 tok4en5abc6def7gh8 qvsecret zq9x8w7 deployer staging";
        assert_eq!(mask(text), "*** *** *** *** *** deployer staging");
        register_url("https://hooks.slack.com/services/T0001/B0002/hookSecretXYZ");
        assert_eq!(mask("posted to hookSecretXYZ"), "posted to ***");
    }
}
