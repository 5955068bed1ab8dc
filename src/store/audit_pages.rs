//! The audit log read a page at a time by key range. Audit keys grow with
//! time, so a page is a range next to a cursor (a key), and its cost does
//! not depend on how many entries there are.

use std::ops::Bound;

use super::{AuditEntry, Result, Store, be, from_be};

/// One page of the audit log, newest first, with what lies beyond it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditPage {
    /// `(key, entry)`, newest first.
    pub entries: Vec<(u64, AuditEntry)>,
    /// There are newer entries than the first one here.
    pub newer: bool,
    /// There are older entries than the last one here.
    pub older: bool,
}

/// Where a page of the audit log is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditCursor {
    /// The newest entries.
    Newest,
    /// The entries just older than this key.
    Before(u64),
    /// The entries just newer than this key.
    After(u64),
    /// The oldest entries.
    Oldest,
}

impl Store {
    /// Up to `n` audit entries at `cursor`, newest first.
    pub fn audit_page(&self, cursor: AuditCursor, n: usize) -> Result<AuditPage> {
        let range = |from: Bound<[u8; 8]>, to: Bound<[u8; 8]>| self.audit.range((from, to));
        let mut entries = Vec::with_capacity(n);
        match cursor {
            AuditCursor::Newest | AuditCursor::Before(_) => {
                let to = match cursor {
                    AuditCursor::Before(key) => Bound::Excluded(be(key)),
                    _ => Bound::Unbounded,
                };
                for r in self
                    .decoded_entries(&self.audit, range(Bound::Unbounded, to).rev())
                    .take(n)
                {
                    entries.push(keyed(r?));
                }
            }
            AuditCursor::After(_) | AuditCursor::Oldest => {
                let from = match cursor {
                    AuditCursor::After(key) => Bound::Excluded(be(key)),
                    _ => Bound::Unbounded,
                };
                for r in self
                    .decoded_entries(&self.audit, range(from, Bound::Unbounded))
                    .take(n)
                {
                    entries.push(keyed(r?));
                }
                entries.reverse();
            }
        }
        let (newer, older) = match (entries.first(), entries.last()) {
            (Some((first, _)), Some((last, _))) => (
                range(Bound::Excluded(be(*first)), Bound::Unbounded)
                    .next()
                    .is_some(),
                range(Bound::Unbounded, Bound::Excluded(be(*last)))
                    .next_back()
                    .is_some(),
            ),
            // Nothing at the cursor: point back at what exists.
            _ => match cursor {
                AuditCursor::Before(_) => (!self.audit.is_empty(), false),
                AuditCursor::After(_) => (false, !self.audit.is_empty()),
                _ => (false, false),
            },
        };
        Ok(AuditPage {
            entries,
            newer,
            older,
        })
    }
}

/// An entry with its key as a number (a record that does not decode was
/// set aside by `decoded_entries` and is skipped).
fn keyed((key, entry): (sled::IVec, AuditEntry)) -> (u64, AuditEntry) {
    (from_be(&key), entry)
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::domain::ids::ChatUser;

    fn store_with(n: usize) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        for i in 0..n {
            s.audit(&AuditEntry {
                at: Utc::now(),
                user: ChatUser::new("u"),
                action: format!("a{i}"),
                result: "accepted".into(),
            })
            .unwrap();
        }
        (dir, s)
    }

    fn actions(page: &AuditPage) -> Vec<&str> {
        page.entries
            .iter()
            .map(|(_, e)| e.action.as_str())
            .collect()
    }

    #[test]
    fn pages_go_newest_first_by_cursor_both_ways() {
        let (_d, s) = store_with(5);
        let first = s.audit_page(AuditCursor::Newest, 2).unwrap();
        assert_eq!(actions(&first), ["a4", "a3"]);
        assert!(!first.newer && first.older);
        let second = s
            .audit_page(AuditCursor::Before(first.entries[1].0), 2)
            .unwrap();
        assert_eq!(actions(&second), ["a2", "a1"]);
        assert!(second.newer && second.older);
        let last = s
            .audit_page(AuditCursor::Before(second.entries[1].0), 2)
            .unwrap();
        assert_eq!(actions(&last), ["a0"]);
        assert!(last.newer && !last.older);
        let back = s
            .audit_page(AuditCursor::After(last.entries[0].0), 2)
            .unwrap();
        assert_eq!(back, second);
        let oldest = s.audit_page(AuditCursor::Oldest, 2).unwrap();
        assert_eq!(actions(&oldest), ["a1", "a0"]);
        assert!(oldest.newer && !oldest.older);
    }

    #[test]
    fn an_empty_log_and_a_cursor_past_the_end() {
        let (_d, s) = store_with(0);
        let page = s.audit_page(AuditCursor::Newest, 2).unwrap();
        assert!(page.entries.is_empty() && !page.newer && !page.older);
        let (_d, s) = store_with(1);
        let page = s.audit_page(AuditCursor::Before(0), 2).unwrap();
        assert!(page.entries.is_empty() && page.newer && !page.older);
    }
}
