use super::*;
use crate::domain::test_trains::at;

/// A SHA of forty `c`s.
fn sha(c: char) -> Sha {
    Sha::new(&c.to_string().repeat(40)).unwrap()
}

fn commit(c: char, author: &str) -> Commit {
    Commit {
        sha: sha(c),
        author_name: author.to_string(),
        author_email: format!("{}@example.com", author.to_lowercase()),
        author_login: None,
        subject: format!("change {c}"),
        message: format!("change {c}"),
    }
}

fn author(name: &str) -> Author {
    Author {
        name: name.to_string(),
        email: format!("{}@example.com", name.to_lowercase()),
        chat: Some(user(&name.to_lowercase())),
        only_reverted: false,
    }
}

fn user(name: &str) -> ChatUser {
    ChatUser::new(name)
}

fn approval(name: &str) -> Approval {
    Approval {
        user: user(name),
        at: at(1),
    }
}

/// a by Alice, b by Bob, c by Carol, d by Alice (oldest first).
fn train() -> (Vec<Commit>, Vec<Author>) {
    (
        vec![
            commit('a', "Alice"),
            commit('b', "Bob"),
            commit('c', "Carol"),
            commit('d', "Alice"),
        ],
        vec![author("Alice"), author("Bob"), author("Carol")],
    )
}

#[test]
fn a_leading_sha_of_the_train_names_that_commit() {
    let (commits, authors) = train();
    let (named, reason) = name_commits(
        &commits,
        &authors,
        &user("alice"),
        Some("ccccccc breaks login"),
    );
    assert_eq!(named, Named::Sha(sha('c')));
    assert_eq!(reason.as_deref(), Some("breaks login"));
    // Upper case and the full SHA, with no reason.
    let full = "C".repeat(40);
    let (named, reason) = name_commits(&commits, &authors, &user("alice"), Some(&full));
    assert_eq!(named, Named::Sha(sha('c')));
    assert_eq!(reason, None);
}

#[test]
fn a_hex_looking_reason_word_stays_a_reason() {
    let (commits, authors) = train();
    let (named, reason) = name_commits(&commits, &authors, &user("bob"), Some("deadbeef is back"));
    assert_eq!(named, Named::Own(user("bob")));
    assert_eq!(reason.as_deref(), Some("deadbeef is back"));
    // Too short to be a SHA, though it is a prefix of one.
    let (named, _) = name_commits(&commits, &authors, &user("bob"), Some("cccccc"));
    assert_eq!(named, Named::Own(user("bob")));
}

#[test]
fn without_a_sha_an_author_names_their_own_commits_and_others_the_whole_train() {
    let (commits, authors) = train();
    let (named, reason) = name_commits(&commits, &authors, &user("carol"), None);
    assert_eq!(named, Named::Own(user("carol")));
    assert_eq!(reason, None);
    let (named, reason) = name_commits(&commits, &authors, &user("ops"), Some("no"));
    assert_eq!(named, Named::Whole);
    assert_eq!(reason.as_deref(), Some("no"));
}

#[test]
fn a_sha_keeps_the_commits_before_it() {
    let (commits, authors) = train();
    let e = eject(
        &commits,
        &authors,
        &Named::Sha(sha('c')),
        &[approval("alice"), approval("bob"), approval("carol")],
        None,
    );
    assert_eq!(e.named, vec![sha('c')]);
    assert_eq!(e.ejected, vec![sha('c'), sha('d')]);
    assert_eq!(e.head, Some(sha('b')));
    assert_eq!(e.rides_on, vec![sha('a'), sha('b')]);
    assert_eq!(e.carried, vec![approval("alice"), approval("bob")]);
    assert!(e.waiting_for.is_empty());
}

#[test]
fn own_commits_eject_from_the_vetoers_first_commit() {
    let (commits, authors) = train();
    // Bob's one commit: Alice's first rides on; she approved, so nobody waits.
    let e = eject(
        &commits,
        &authors,
        &Named::Own(user("bob")),
        &[approval("alice")],
        None,
    );
    assert_eq!(e.named, vec![sha('b')]);
    assert_eq!(e.ejected, vec![sha('b'), sha('c'), sha('d')]);
    assert_eq!(e.head, Some(sha('a')));
    assert_eq!(e.rides_on, vec![sha('a')]);
    assert_eq!(e.carried, vec![approval("alice")]);
    assert!(e.waiting_for.is_empty());

    // Carol's: Alice and Bob ride on; Carol's approval does not carry, and
    // Bob has not approved yet.
    let e = eject(
        &commits,
        &authors,
        &Named::Own(user("carol")),
        &[approval("alice"), approval("carol")],
        None,
    );
    assert_eq!(e.head, Some(sha('b')));
    assert_eq!(e.carried, vec![approval("alice")]);
    assert_eq!(e.waiting_for, vec![user("bob")]);

    // Alice's commits start the train: nothing rides on.
    let e = eject(&commits, &authors, &Named::Own(user("alice")), &[], None);
    assert_eq!(e.named, vec![sha('a'), sha('d')]);
    assert_eq!(e.ejected.len(), 4);
    assert_eq!(e.head, None);
    assert!(e.rides_on.is_empty() && e.carried.is_empty() && e.waiting_for.is_empty());
}

#[test]
fn the_whole_train_leaves_nothing_to_ride_on() {
    let (commits, authors) = train();
    let e = eject(
        &commits,
        &authors,
        &Named::Whole,
        &[approval("alice")],
        None,
    );
    assert_eq!(e.named.len(), 4);
    assert_eq!(e.ejected.len(), 4);
    assert_eq!(e.head, None);
    assert!(e.rides_on.is_empty());
    assert!(e.carried.is_empty());
}

#[test]
fn nothing_departs_when_the_prefix_is_not_newer_than_production() {
    let (commits, authors) = train();
    // Production already runs b: a head of a or b is not newer.
    let e = eject(
        &commits,
        &authors,
        &Named::Sha(sha('c')),
        &[approval("alice")],
        Some(&sha('b')),
    );
    assert_eq!(e.head, None);
    assert!(e.rides_on.is_empty() && e.carried.is_empty());
    assert_eq!(e.ejected, vec![sha('c'), sha('d')]);
    // Production runs a: b is newer, and only b rides on (Bob's, not Alice's).
    let e = eject(
        &commits,
        &authors,
        &Named::Sha(sha('c')),
        &[approval("alice")],
        Some(&sha('a')),
    );
    assert_eq!(e.head, Some(sha('b')));
    assert_eq!(e.rides_on, vec![sha('b')]);
    assert!(e.carried.is_empty());
    assert_eq!(e.waiting_for, vec![user("bob")]);
    // Production outside the train (its base): every prefix commit is newer.
    let e = eject(
        &commits,
        &authors,
        &Named::Sha(sha('b')),
        &[],
        Some(&sha('f')),
    );
    assert_eq!(e.head, Some(sha('a')));
}

#[test]
fn authors_without_a_chat_user_are_not_waited_for() {
    let (commits, mut authors) = train();
    authors[0].chat = None;
    let e = eject(&commits, &authors, &Named::Sha(sha('c')), &[], None);
    assert_eq!(e.head, Some(sha('b')));
    assert_eq!(e.waiting_for, vec![user("bob")]);
}
