//! SPEC §15 "Eject the culprit" in the engine, under paused time. The fake
//! main is c0 (alice) ← c1 (bob) ← c2 (alice) ← c3 (bob); production runs
//! c0, so a train carries c1, c2, c3.

use super::*;
use crate::domain::eject::OnVeto;
use crate::domain::ids::ChatUser;
use crate::domain::train::{Actor, Input, Outcome};
use crate::store::Production;

fn eject_config() -> String {
    config(false).replace("[train]\n", "[train]\non_veto = \"eject\"\n")
}

/// Production runs c0 before the engine starts.
fn production_at_c0(store: &Store) {
    store
        .set_production(&Production {
            sha: sha(0),
            train: TrainId(0),
            since: base_time(),
            alloc_seq: None,
            previous: None,
            previous_train: None,
        })
        .expect("production");
}

/// An engine on `store` (with `dir` as its config's directory).
async fn start_on(test: &'static str, dir: tempfile::TempDir, store: Store) -> Bot {
    let watchdog = Watchdog::start(test);
    let cfg = Settings::parse(&eject_config(), &dir.path().join("bot.toml"))
        .unwrap_or_else(|e| panic!("config: {e}"));
    assert_eq!(cfg.train.on_veto, OnVeto::Eject);
    let clock = Arc::new(FakeClock::new(base_time()));
    let forge = Arc::new(FakeForge::new(clock.clone(), HISTORY));
    Bot::spawn(
        watchdog,
        cfg,
        store,
        clock,
        forge,
        FakeRunner::default(),
        dir,
    )
}

/// A fresh engine with production at c0, started: main's head allocated.
async fn start(test: &'static str) -> Bot {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(&dir.path().join("data")).expect("store");
    production_at_c0(&store);
    let bot = start_on(test, dir, store).await;
    bot.chat.wait_for("is on main and waits").await;
    bot
}

/// Stops the engine and keeps its directory and store for the next one.
async fn halt(bot: Bot) -> (tempfile::TempDir, Store, Vec<(Ts, Message)>) {
    bot.inbox.send(Event::Shutdown).await.expect("engine runs");
    bot.task
        .await
        .expect("engine task")
        .unwrap_or_else(|e| panic!("engine failed: {e:#}\n{}", bot.chat.transcript()));
    (bot._dir, bot.store, bot.chat.messages())
}

async fn train_awaits_approval(bot: &Bot, train: u64) {
    bot.chat
        .wait_for_from(
            0,
            "asking for approval",
            |m| matches!(m, Message::Approval { train: t, .. } if *t == TrainId(train)),
        )
        .await;
}

#[tokio::test(start_paused = true)]
async fn a_veto_naming_a_sha_ejects_it_and_the_commits_before_ride_on_at_once() {
    let bot = start("a_veto_naming_a_sha_ejects_it_and_the_commits_before_ride_on_at_once").await;
    bot.type_line("!depart").await;
    bot.chat.wait_for("train #1 departs").await;
    train_awaits_approval(&bot, 1).await;
    bot.type_line("@bob !good").await;
    bot.chat.wait_for("bob approved train #1").await;
    // Alice names her commit c2; c2 and c3 wait, c1 (Bob's) rides on.
    bot.type_line("@alice !bad abc0002 breaks login").await;
    bot.chat.wait_for("train #1 vetoed").await;
    bot.chat
        .wait_for(
            "⏏ ejected abc0002 (alice), abc0003 (bob); abc0001 rides on in train #2; \
             approved already: bob; waiting for nobody",
        )
        .await;
    bot.chat.wait_for("train #2 deployed").await;
    let said = bot.finish().await;
    // Train #2 left at once with c1 alone, and nobody was asked again.
    let departs: Vec<&str> = said
        .iter()
        .map(|(_, m)| text_of(m))
        .filter(|t| t.contains("🚂 train #2 departs"))
        .collect();
    assert_eq!(departs.len(), 1, "{departs:?}");
    assert!(
        departs[0].contains("with abc0001 (1 commit)"),
        "{departs:?}"
    );
    let asked_again = said.iter().any(|(_, m)| {
        matches!(
            m,
            Message::Approval {
                train: TrainId(2),
                ..
            }
        )
    });
    assert!(!asked_again, "train #2 asked for approval");
}

#[tokio::test(start_paused = true)]
async fn nothing_rides_on_when_nothing_before_the_vetoed_commits_is_newer_than_production() {
    let bot =
        start("nothing_rides_on_when_nothing_before_the_vetoed_commits_is_newer_than_production")
            .await;
    bot.type_line("!depart").await;
    train_awaits_approval(&bot, 1).await;
    // Bob vetoes without a SHA: his own commits (c1, c3); c1 is the first,
    // and before it is c0, which production runs: nothing rides on.
    bot.type_line("@bob !bad flaky").await;
    bot.chat
        .wait_for("⏏ ejected abc0001 (bob), abc0002 (alice), abc0003 (bob); nothing rides on (nothing before them is newer than production)")
        .await;
    let (_dir, store, said) = halt(bot).await;
    assert_eq!(count_containing(&said, "train #2"), 0, "{said:#?}");
    let t1 = store.train(TrainId(1)).unwrap().unwrap();
    assert_eq!(
        t1.outcome(),
        Some(&Outcome::Vetoed {
            by: ChatUser::new("bob"),
            reason: Some("flaky".into())
        })
    );
    assert_eq!(store.eject_intent().unwrap(), None);
    assert_eq!(store.production().unwrap().unwrap().sha, sha(0));
}

#[tokio::test(start_paused = true)]
async fn a_restart_between_the_veto_and_the_departure_neither_loses_nor_doubles_it() {
    let bot =
        start("a_restart_between_the_veto_and_the_departure_neither_loses_nor_doubles_it").await;
    bot.type_line("!depart").await;
    train_awaits_approval(&bot, 1).await;
    bot.type_line("@bob !good").await;
    bot.chat.wait_for("bob approved train #1").await;
    let (dir, store, _) = halt(bot).await;

    // The veto was saved with its intent, and the bot died before the new
    // train was listed.
    let mut t1 = store.last_train().unwrap().unwrap();
    let alice = ChatUser::new("alice");
    let (intent, reason, _) =
        super::super::eject::intent_of(&t1, &alice, Some("abc0002 broken"), Some(&sha(0)));
    let intent = intent.expect("c1 rides on");
    assert_eq!(intent.head, sha(1));
    let cfg = Settings::parse(&eject_config(), &dir.path().join("bot.toml")).unwrap();
    let actor = Actor {
        user: alice,
        ops: false,
    };
    t1.handle(
        Input::Bad { actor, reason },
        &super::super::plan_of(&cfg),
        base_time(),
    )
    .expect("vetoed");
    store.save_train(&t1).unwrap();
    store.set_eject_intent(Some(&intent)).unwrap();
    store.flush().unwrap();

    let bot = start_on("restart: the intent departs", dir, store).await;
    bot.chat
        .wait_for("⏏ ejected abc0002 (alice), abc0003 (bob); abc0001 rides on in train #2")
        .await;
    bot.chat.wait_for("train #2 deployed").await;
    let (dir, store, _) = halt(bot).await;
    assert_eq!(store.eject_intent().unwrap(), None);
    assert_eq!(store.production().unwrap().unwrap().sha, sha(1));

    // Once more: nothing departs again.
    let bot = start_on("restart: nothing doubles", dir, store).await;
    bot.type_line("!status").await;
    bot.chat.wait_for("production: abc0001").await;
    let (_dir, store, said) = halt(bot).await;
    assert_eq!(count_containing(&said, "train #3"), 0, "{said:#?}");
    assert_eq!(store.last_train().unwrap().unwrap().id, TrainId(2));
}
