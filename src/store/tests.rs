use chrono::Utc;

use super::*;
use crate::domain::ids::ChatUser;

fn sha(c: char) -> Sha {
    Sha::new(&c.to_string().repeat(40)).unwrap()
}

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    (dir, store)
}

#[test]
fn a_sha_is_allocated_once_and_the_first_base_is_kept() {
    let (_d, s) = open();
    let a = s
        .allocate(&sha('a'), Some(&sha('0')), Utc::now())
        .unwrap()
        .unwrap();
    assert_eq!(s.allocate(&sha('a'), None, Utc::now()).unwrap(), None);
    let b = s
        .allocate(&sha('b'), Some(&sha('a')), Utc::now())
        .unwrap()
        .unwrap();
    assert!(b > a);
    assert_eq!(s.first_base().unwrap(), Some(sha('0')));
    assert_eq!(s.head().unwrap().unwrap().sha, sha('b'));
    let after: Vec<_> = s
        .allocations_after(a, 10)
        .unwrap()
        .into_iter()
        .map(|x| x.sha)
        .collect();
    assert_eq!(after, vec![sha('b')]);
}

#[test]
fn production_is_claimed_once_per_attempt() {
    let (_d, s) = open();
    s.claim_production(TrainId(1), 1).unwrap();
    assert!(matches!(
        s.claim_production(TrainId(1), 1),
        Err(StoreError::AlreadyClaimed { .. })
    ));
    s.claim_production(TrainId(1), 2).unwrap();
}

#[test]
fn a_second_open_of_the_same_dir_is_refused() {
    let (d, _s) = open();
    let err = Store::open(d.path()).err().expect("locked");
    assert!(
        err.to_string()
            .contains("another trainbot is already running"),
        "{err}"
    );
}

#[test]
fn data_survives_a_reopen() {
    let d = tempfile::tempdir().unwrap();
    {
        let s = Store::open(d.path()).unwrap();
        s.allocate(&sha('a'), None, Utc::now()).unwrap();
        s.set_freeze(Some(&Freeze {
            by: ChatUser::new("ops"),
            reason: None,
            at: Utc::now(),
        }))
        .unwrap();
        s.claim_production(TrainId(7), 1).unwrap();
    }
    let s = Store::reopen(d.path());
    assert_eq!(s.head().unwrap().unwrap().sha, sha('a'));
    assert!(s.freeze().unwrap().is_some());
    assert!(s.claim_production(TrainId(7), 1).is_err());
}

#[test]
fn notices_are_given_once() {
    let (_d, s) = open();
    assert!(s.first_notice("x").unwrap());
    assert!(!s.first_notice("x").unwrap());
}

#[test]
fn records_carry_a_version_byte_and_v1_stays_readable() {
    // A record as written by codec v1: version byte then JSON.
    let mut old = vec![1u8];
    old.extend_from_slice(
        br#"{"at":"2026-11-23T12:00:00Z","user":"ops","action":"!freeze","result":"accepted"}"#,
    );
    let e: AuditEntry = codec::decode(&old).unwrap();
    assert_eq!(e.action, "!freeze");
    assert!(codec::decode::<AuditEntry>(&[9, b'{', b'}']).is_err());
}

#[test]
fn trains_are_counted_by_outcome_as_they_change_and_after_a_reopen() {
    use crate::domain::test_trains::train;
    use crate::domain::train::{Outcome, Stage};
    let (d, s) = open();
    let counts = |s: &Store| s.trains_by_outcome().unwrap();
    let mut t = train(1, 0);
    t.stage = Stage::AwaitingApproval { since: t.created };
    s.save_train(&t).unwrap();
    s.save_train(&t).unwrap();
    assert_eq!(counts(&s), [("running".to_string(), 1)]);
    t.stage = Stage::Done(Outcome::Expired);
    s.save_train(&t).unwrap();
    let mut other = train(2, 10);
    other.stage = Stage::Done(Outcome::Expired);
    s.save_train(&other).unwrap();
    assert_eq!(
        counts(&s),
        [("expired".to_string(), 2), ("running".to_string(), 0)]
    );
    // A store from before the counters gets them once, at open.
    s.train_outcomes.clear().unwrap();
    s.outcome_counts.clear().unwrap();
    drop(s);
    let s = Store::reopen(d.path());
    assert_eq!(counts(&s), [("expired".to_string(), 2)]);
}

#[test]
fn a_tag_train_is_stored_and_its_tag_dequeued_together() {
    use crate::domain::test_trains::train;
    use crate::domain::train::Route;
    let (_d, s) = open();
    let tag = tags::QueuedTag {
        name: "v1".into(),
        sha: sha('a'),
        pushed_by: "alice".into(),
        route: Route::ProductionOnly,
        failing: None,
    };
    s.record_tag("v1", &sha('a'), Some(&tag)).unwrap();
    let (seq, _) = s.next_queued_tag().unwrap().expect("queued");
    assert_eq!(s.queued_tag(seq).unwrap().as_ref(), Some(&tag));
    s.save_tag_train(&train(1, 0), seq).unwrap();
    assert_eq!(s.queued_tag(seq).unwrap(), None);
    assert!(s.queued_tags().unwrap().is_empty());
    assert_eq!(s.last_train().unwrap().map(|t| t.id.0), Some(1));
    // A store whose writes fail keeps both as they were.
    s.record_tag("v2", &sha('b'), Some(&tag)).unwrap();
    let (seq, _) = s.next_queued_tag().unwrap().expect("queued");
    s.inject_write_failures(true);
    assert!(s.save_tag_train(&train(2, 1), seq).is_err());
    s.inject_write_failures(false);
    assert!(s.queued_tag(seq).unwrap().is_some());
    assert_eq!(s.last_train().unwrap().map(|t| t.id.0), Some(1));
}

#[test]
fn use_defaults_are_kept_by_place() {
    let (d, s) = open();
    s.set_use_default(None, "api").unwrap();
    s.set_use_default(Some("C0DEPLOY"), "web").unwrap();
    s.set_use_default(None, "web").unwrap();
    drop(s);
    let s = Store::reopen(d.path());
    let mut kept = s.use_defaults().unwrap();
    kept.sort();
    assert_eq!(
        kept,
        [
            (None, "web".to_string()),
            (Some("C0DEPLOY".to_string()), "web".to_string())
        ]
    );
}
