//! One database, one namespace of trees per pipeline (SPEC §16). The trees
//! the single-pipeline version wrote have no prefix; they stay where they
//! are and belong to one pipeline for good (recorded in the root `meta`), so
//! an upgrade moves no data and a crash cannot leave half a migration.

use super::{Result, Store};

/// Root `meta` key: the pipeline that owns the unprefixed trees.
const LEGACY_OWNER: &str = "legacy_pipeline";

/// One configured pipeline, as the store needs to know it.
pub struct Wanted<'a> {
    pub name: &'a str,
    /// Its name is its repository's name, the name the single-pipeline
    /// version went by: the heir of an unowned single-pipeline store.
    pub heir: bool,
}

/// One pipeline's store and whether it is the one in the unprefixed trees
/// (its logs stay in `data_dir/logs` too).
pub struct PipelineStore {
    pub store: Store,
    pub legacy: bool,
}

impl Store {
    /// The stores of the configured pipelines, in their order. A single
    /// pipeline always owns the unprefixed trees (exactly as before); among
    /// several, the recorded owner does, else the one heir.
    pub fn pipelines(&self, wanted: &[Wanted<'_>], multi: bool) -> Result<Vec<PipelineStore>> {
        let recorded = self
            .meta
            .get(LEGACY_OWNER)?
            .map(|v| String::from_utf8_lossy(&v).into_owned());
        let owner = owner_of(recorded.as_deref(), wanted, multi);
        if let Some(owner) = &owner
            && recorded.as_deref() != Some(owner.as_str())
        {
            self.writable()?;
            self.meta.insert(LEGACY_OWNER, owner.as_bytes())?;
            self.db.flush()?;
        }
        if multi && owner.is_none() && !self.trains.is_empty() {
            tracing::warn!(
                "The single-pipeline history in this store belongs to no configured pipeline; \
                 name one pipeline after its repository to keep it."
            );
        }
        wanted
            .iter()
            .map(|w| {
                let legacy = owner.as_deref() == Some(w.name);
                let ns = if legacy {
                    String::new()
                } else {
                    format!("p/{}/", w.name)
                };
                let store = Store::with_namespace(self.db.clone(), &ns)?;
                store.upgrade_once()?;
                Ok(PipelineStore { store, legacy })
            })
            .collect()
    }
}

impl Store {
    /// A commit of the single-pipeline history when no pipeline owns it yet
    /// (production's, else the first train's base): whichever repository
    /// holds it is where that history came from.
    pub fn unowned_legacy_sha(&self) -> Result<Option<crate::domain::ids::Sha>> {
        if self.meta.get(LEGACY_OWNER)?.is_some() {
            return Ok(None);
        }
        if let Some(production) = self.production()? {
            return Ok(Some(production.sha));
        }
        self.first_base()
    }
}

fn owner_of(recorded: Option<&str>, wanted: &[Wanted<'_>], multi: bool) -> Option<String> {
    if !multi {
        return wanted.first().map(|w| w.name.to_string());
    }
    if let Some(name) = recorded {
        // A recorded owner no longer configured keeps its claim: its history
        // comes back with it rather than going to a stranger.
        return wanted
            .iter()
            .any(|w| w.name == name)
            .then(|| name.to_string());
    }
    let mut heirs = wanted.iter().filter(|w| w.heir);
    match (heirs.next(), heirs.next()) {
        (Some(one), None) => Some(one.name.to_string()),
        _ => None,
    }
}

/// The dispatcher's tree in the root store: `!use` defaults by place.
const DISPATCH: &str = "dispatch";
const USE: &str = "use:";

impl Store {
    /// The `!use` defaults (SPEC §16): place (a channel; None for the
    /// console) -> pipeline name, as they were set before a restart.
    pub fn use_defaults(&self) -> Result<Vec<(Option<String>, String)>> {
        let tree = self.tree(DISPATCH)?;
        let mut out = Vec::new();
        for entry in tree.scan_prefix(USE) {
            let (key, value) = entry?;
            let place = String::from_utf8_lossy(&key[USE.len()..]).into_owned();
            let name = String::from_utf8_lossy(&value).into_owned();
            out.push(((!place.is_empty()).then_some(place), name));
        }
        Ok(out)
    }

    pub fn set_use_default(&self, place: Option<&str>, name: &str) -> Result<()> {
        self.writable()?;
        let key = format!("{USE}{}", place.unwrap_or_default());
        self.tree(DISPATCH)?.insert(key, name.as_bytes())?;
        self.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::Sha;

    fn w(name: &str, heir: bool) -> Wanted<'_> {
        Wanted { name, heir }
    }

    #[test]
    fn a_single_pipeline_always_owns_the_unprefixed_trees() {
        assert_eq!(
            owner_of(None, &[w("web", false)], false).as_deref(),
            Some("web")
        );
        assert_eq!(
            owner_of(Some("old"), &[w("web", false)], false).as_deref(),
            Some("web")
        );
    }

    #[test]
    fn among_several_the_record_wins_then_the_one_heir() {
        let both = [w("api", false), w("web", true)];
        assert_eq!(owner_of(None, &both, true).as_deref(), Some("web"));
        assert_eq!(owner_of(Some("api"), &both, true).as_deref(), Some("api"));
        assert_eq!(owner_of(Some("gone"), &both, true), None);
        let two_heirs = [w("api", true), w("web", true)];
        assert_eq!(owner_of(None, &two_heirs, true), None);
    }

    #[test]
    fn pipelines_keep_apart_and_the_owner_reads_the_old_trees() {
        let dir = tempfile::tempdir().unwrap();
        let root = Store::open(dir.path()).unwrap();
        let sha = Sha::new(&"a".repeat(40)).unwrap();
        let base =
            |s: &Store, sha: &Sha| s.put_meta(super::super::FIRST_BASE, Some(&Some(sha.clone())));
        base(&root, &sha).unwrap();
        let stores = root
            .pipelines(&[w("api", false), w("web", true)], true)
            .unwrap();
        let (api, web) = (&stores[0], &stores[1]);
        assert!(!api.legacy && web.legacy);
        assert_eq!(web.store.first_base().unwrap(), Some(sha.clone()));
        assert_eq!(api.store.first_base().unwrap(), None);
        base(&api.store, &Sha::new(&"b".repeat(40)).unwrap()).unwrap();
        assert_eq!(web.store.first_base().unwrap(), Some(sha));
        drop(stores);
        // The record outlives a config where the heir rule would pick another.
        let again = root
            .pipelines(&[w("api", true), w("web", false)], true)
            .unwrap();
        assert!(again[1].legacy && !again[0].legacy);
    }
}
