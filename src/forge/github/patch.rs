//! Whether one commit's change is the inverse of another's, read from the
//! `files[]` GitHub lists with a commit: per file, the lines one adds are
//! the lines the other removes and the other way round. Context lines and
//! hunk headers are left out, so a revert made after other edits near the
//! same lines (which moves the hunks and changes their context) still
//! counts, as `git patch-id` does for the git forge.

use std::collections::BTreeMap;

use super::wire::ChangedFile;
use crate::domain::ids::Sha;
use crate::forge::ForgeError;

/// One file's change: (path before, path after) -> (added, removed) lines.
type Changes<'a> = BTreeMap<(&'a str, &'a str), (Vec<&'a str>, Vec<&'a str>)>;

/// True when `reverting` undoes exactly `reverted`: the same files, each
/// with its lines added and removed swapped. A commit that changes nothing
/// reverts nothing.
pub(super) fn is_inverse(
    reverting: (&Sha, &[ChangedFile]),
    reverted: (&Sha, &[ChangedFile]),
) -> Result<bool, ForgeError> {
    let undo = changes(reverting.0, reverting.1)?;
    let done = changes(reverted.0, reverted.1)?;
    if done.is_empty() || undo.len() != done.len() {
        return Ok(false);
    }
    Ok(done.iter().all(|(&(from, to), (added, removed))| {
        // A renamed file is renamed back.
        undo.get(&(to, from))
            .is_some_and(|(undo_added, undo_removed)| {
                undo_added == removed && undo_removed == added
            })
    }))
}

fn changes<'a>(sha: &Sha, files: &'a [ChangedFile]) -> Result<Changes<'a>, ForgeError> {
    let mut out = Changes::new();
    for file in files {
        let to = file.filename.as_str();
        let from = match (&file.previous_filename, file.status.as_str()) {
            (Some(previous), "renamed") => previous.as_str(),
            _ => to,
        };
        let lines = match &file.patch {
            Some(patch) => added_and_removed(patch),
            // A pure rename has no patch and nothing else to compare.
            None if file.status == "renamed" && file.changes == 0 => (Vec::new(), Vec::new()),
            // GitHub leaves the patch out for binary files and for files
            // past its diff size limit: what changed cannot be compared.
            None => {
                return Err(ForgeError::Other(format!(
                    "GitHub shows no patch for {to} in {} (binary or too large), so a revert of it cannot be verified",
                    sha.short()
                )));
            }
        };
        out.insert((from, to), lines);
    }
    Ok(out)
}

/// The `+` and `-` lines of a unified diff's hunks, without their markers.
fn added_and_removed(patch: &str) -> (Vec<&str>, Vec<&str>) {
    let (mut added, mut removed) = (Vec::new(), Vec::new());
    for line in patch.lines() {
        if line.starts_with("@@") {
            continue;
        }
        if let Some(text) = line.strip_prefix('+') {
            added.push(text);
        } else if let Some(text) = line.strip_prefix('-') {
            removed.push(text);
        }
        // Context (' ') and "\ No newline at end of file" say nothing
        // about what changed.
    }
    (added, removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, status: &str, patch: Option<&str>) -> ChangedFile {
        ChangedFile {
            filename: name.into(),
            status: status.into(),
            patch: patch.map(str::to_string),
            previous_filename: None,
            changes: 1,
        }
    }

    fn sha(c: char) -> Sha {
        Sha::new(&c.to_string().repeat(40)).unwrap()
    }

    fn inverse(reverting: &[ChangedFile], reverted: &[ChangedFile]) -> Result<bool, ForgeError> {
        is_inverse((&sha('b'), reverting), (&sha('a'), reverted))
    }

    #[test]
    fn swapped_lines_in_moved_hunks_are_an_inverse() {
        let done = [file(
            "f",
            "modified",
            Some("@@ -1,3 +1,3 @@\n one\n-two\n+TWO\n three"),
        )];
        let undo = [file(
            "f",
            "modified",
            Some("@@ -10,4 +10,4 @@ fn x()\n one\n-TWO\n+two\n three\n four"),
        )];
        assert_eq!(inverse(&undo, &done), Ok(true));
        // The same change again is not its inverse.
        assert_eq!(inverse(&done, &done), Ok(false));
    }

    #[test]
    fn a_different_file_set_or_nothing_changed_is_no_inverse() {
        let done = [file("f", "added", Some("@@ -0,0 +1 @@\n+x"))];
        let undo = [file("f", "removed", Some("@@ -1 +0,0 @@\n-x"))];
        let extra = [
            undo[0].clone(),
            file("g", "added", Some("@@ -0,0 +1 @@\n+y")),
        ];
        assert_eq!(inverse(&undo, &done), Ok(true));
        assert_eq!(inverse(&extra, &done), Ok(false));
        assert_eq!(inverse(&[], &[]), Ok(false));
    }

    #[test]
    fn a_rename_is_undone_by_renaming_back() {
        let mut done = file("new", "renamed", None);
        done.previous_filename = Some("old".into());
        done.changes = 0;
        let mut undo = file("old", "renamed", None);
        undo.previous_filename = Some("new".into());
        undo.changes = 0;
        assert_eq!(inverse(&[undo], &[done.clone()]), Ok(true));
        assert_eq!(inverse(&[done.clone()], &[done]), Ok(false));
    }

    #[test]
    fn a_file_without_a_patch_cannot_be_verified() {
        let done = [file("logo.png", "modified", None)];
        let undo = [file("logo.png", "modified", None)];
        let error = inverse(&undo, &done).unwrap_err();
        assert!(
            error.to_string().contains("no patch for logo.png"),
            "{error}"
        );
    }
}
