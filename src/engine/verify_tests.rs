//! Production verification under paused time (SPEC §15): a green window,
//! a red check that rolls back by itself, a restart in the middle of a
//! window, and the gate's rule *verifying*.

use super::*;

const VERIFY_3M: &str =
    "verify = [{ run = \"true\" }]\nverify_for = \"3m\"\nverify_every = \"1m\"\n";

fn ran_count(bot: &Bot, name: &str, sha: &crate::domain::ids::Sha) -> usize {
    bot.ran
        .lock()
        .unwrap()
        .iter()
        .filter(|(n, s)| n == name && s == sha.as_str())
        .count()
}

#[tokio::test(start_paused = true)]
async fn a_verify_window_that_stays_green_ends_deployed_at_its_end() {
    let bot = Bot::start(
        "a_verify_window_that_stays_green_ends_deployed_at_its_end",
        Options {
            production_keys: VERIFY_3M,
            ..Options::default()
        },
    )
    .await;
    let head = sha(HISTORY - 1);
    bot.type_line(&format!("!force {}", head.short())).await;
    let (_, began, _) = bot.chat.wait_for("train #1 verifies production").await;
    let (_, ended, msg) = bot.chat.wait_for("train #1 deployed").await;
    assert!(
        text_of(&msg).contains("verified: 3 checks green"),
        "{msg:?}"
    );
    assert_eq!(
        ended - began,
        minutes(3),
        "the window's end, not the last check"
    );
    assert_eq!(ran_count(&bot, "production-verify-1", &head), 3);
    assert_eq!(ran_count(&bot, "production-deploy-1", &head), 1);
    let said = bot.finish().await;
    let status = statuses(&said, TrainId(1));
    assert!(
        status
            .iter()
            .any(|(_, t)| t.contains("🔎") && t.contains("check 2/3 green, 1m 59s left")),
        "{status:#?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_red_second_check_rolls_back_to_the_previous_sha_and_the_clock_holds_the_head() {
    let red = sha(HISTORY - 1);
    let red_hex = red.as_str().to_string();
    let bot = Bot::start(
        "a_red_second_check_rolls_back_to_the_previous_sha_and_the_clock_holds_the_head",
        Options {
            production_keys: VERIFY_3M,
            fails: Some(Arc::new(move |name: &str, sha: &str, before: usize| {
                name == "production-verify-1" && sha == red_hex && before == 1
            })),
            ..Options::default()
        },
    )
    .await;
    let good = sha(HISTORY - 2);
    bot.type_line(&format!("!force {}", good.short())).await;
    bot.chat.wait_for("✅ train #1 deployed").await;
    bot.type_line(&format!("!force {}", red.short())).await;
    let (_, began, _) = bot.chat.wait_for("train #2 verifies production").await;
    let (_, at, _) = bot
        .chat
        .wait_for_from(0, "the red notice", |m| {
            matches!(m, Message::Notice { .. }) && text_of(m).contains("🚨 train #2 deployed")
        })
        .await;
    assert_eq!(
        at - began,
        minutes(1) + TimeDelta::seconds(1),
        "the second check"
    );
    let said = bot.chat.messages();
    let text = said
        .iter()
        .map(|(_, m)| text_of(m))
        .find(|t| t.contains("🚨 train #2 deployed") && t.contains("cc "))
        .unwrap_or_else(|| panic!("{}", bot.chat.transcript()));
    assert!(text.contains("rolled back automatically"), "{text}");
    assert!(text.contains("@bob"), "its authors are mentioned: {text}");
    let (_, back_at, msg) = bot
        .chat
        .wait_for("✅ train #3 rolled production back to")
        .await;
    assert!(text_of(&msg).contains(good.short()), "{msg:?}");
    // The rollback itself is not verified: it ends with its smoke.
    assert!(back_at - at < minutes(1), "{}", back_at - at);
    assert_eq!(
        ran_count(&bot, "production-verify-1", &good),
        3,
        "train #1's only"
    );
    // The rollback ran the production steps with the previous SHA.
    assert_eq!(ran_count(&bot, "production-deploy-1", &good), 2);
    assert_eq!(ran_count(&bot, "production-deploy-1", &red), 1);
    assert_eq!(ran_count(&bot, "production-verify-1", &red), 2);
    let prod = bot.store.production().unwrap().unwrap();
    assert_eq!(prod.sha, good);
    let train2 = bot.store.train(TrainId(2)).unwrap().unwrap();
    assert!(train2.rolled_back);
    // The clock does not ship the head again (rule rejected head).
    bot.type_line("!next").await;
    bot.chat.wait_for("was rolled back in train #2").await;
    bot.type_line("!history").await;
    bot.chat
        .wait_for("rolled back automatically (verification red)")
        .await;
    // Time to restore is measured: the rolled-back train is a change
    // failure and the rollback restored it.
    let now = bot.clock.peek();
    let trains = bot.store.trains_since(now - TimeDelta::hours(1)).unwrap();
    let d = crate::domain::metrics::delivery(&trains, |_| None, now - TimeDelta::hours(1), now);
    assert_eq!(d.restores, 1, "{d:?}");
    assert!(
        d.restore_median.is_some_and(|t| t > TimeDelta::zero()),
        "{d:?}"
    );
    bot.finish().await;
}

#[tokio::test(start_paused = true)]
async fn a_restart_in_the_window_resumes_the_checks_left_and_never_deploys_again() {
    let opts = Options {
        production_keys: "verify = [{ run = \"true\" }]\nverify_for = \"5m\"\nverify_every = \"1m\"\n",
        ..Options::default()
    };
    let test = "a_restart_in_the_window_resumes_the_checks_left_and_never_deploys_again";
    let bot = Bot::start(test, opts).await;
    let head = sha(HISTORY - 1);
    bot.type_line(&format!("!force {}", head.short())).await;
    let (_, began, _) = bot.chat.wait_for("train #1 verifies production").await;
    bot.chat
        .wait_for_from(0, "check 2/5 green", |m| {
            text_of(m).contains("check 2/5 green")
        })
        .await;
    let opts = Options {
        production_keys: "verify = [{ run = \"true\" }]\nverify_for = \"5m\"\nverify_every = \"1m\"\n",
        ..Options::default()
    };
    let bot = bot.restart(test, &opts).await;
    let (_, ended, msg) = bot.chat.wait_for("train #1 deployed").await;
    assert!(
        text_of(&msg).contains("verified: 5 checks green"),
        "{msg:?}"
    );
    assert_eq!(ended - began, minutes(5));
    // After the restart: the three checks left, no production step.
    assert_eq!(ran_count(&bot, "production-verify-1", &head), 3);
    assert_eq!(ran_count(&bot, "production-deploy-1", &head), 0);
    assert_eq!(ran_count(&bot, "production-smoke-1", &head), 0);
    bot.finish().await;
}

#[tokio::test(start_paused = true)]
async fn a_verifying_train_holds_a_force_of_another_sha() {
    let bot = Bot::start(
        "a_verifying_train_holds_a_force_of_another_sha",
        Options {
            production_keys: VERIFY_3M,
            ..Options::default()
        },
    )
    .await;
    bot.type_line(&format!("!force {}", sha(HISTORY - 2).short()))
        .await;
    bot.chat.wait_for("train #1 verifies production").await;
    bot.type_line(&format!("!force {}", sha(HISTORY - 1).short()))
        .await;
    let (_, _, msg) = bot
        .chat
        .wait_for("train #1 is verifying production until")
        .await;
    assert!(text_of(&msg).contains("(rule: verifying)"), "{msg:?}");
    bot.type_line("!why").await;
    bot.chat
        .wait_for("will not go: train #1 is verifying production until 10:03 UTC (rule: verifying)")
        .await;
    bot.chat.wait_for("✅ train #1 deployed").await;
    assert_eq!(ran_count(&bot, "production-deploy-1", &sha(HISTORY - 1)), 0);
    bot.finish().await;
}

const SLOW_CHECK: &[(&str, Duration)] = &[("production-verify-1", Duration::from_secs(30))];

#[tokio::test(start_paused = true)]
async fn a_check_cut_by_a_restart_runs_again_and_production_does_not() {
    let opts = || Options {
        production_keys: VERIFY_3M,
        durations: SLOW_CHECK,
        ..Options::default()
    };
    let test = "a_check_cut_by_a_restart_runs_again_and_production_does_not";
    let bot = Bot::start(test, opts()).await;
    let head = sha(HISTORY - 1);
    bot.type_line(&format!("!force {}", head.short())).await;
    bot.chat.wait_for("production verify started").await;
    bot.clock_passes(TimeDelta::seconds(10)).await;
    let bot = bot.restart(test, &opts()).await;
    let (_, _, msg) = bot.chat.wait_for("train #1 deployed").await;
    assert!(
        text_of(&msg).contains("verified: 3 checks green"),
        "{msg:?}"
    );
    // The cut check ran again, then the two left; nothing of production.
    assert_eq!(ran_count(&bot, "production-verify-1", &head), 3);
    assert_eq!(ran_count(&bot, "production-deploy-1", &head), 0);
    assert_eq!(ran_count(&bot, "production-smoke-1", &head), 0);
    let said = bot.finish().await;
    assert_eq!(count_containing(&said, "interrupted"), 0);
}

#[tokio::test(start_paused = true)]
async fn an_automatic_rollback_that_could_not_leave_leaves_after_a_restart() {
    let red = sha(HISTORY - 1);
    let red_hex = red.as_str().to_string();
    let opts = || Options {
        production_keys: VERIFY_3M,
        fails: Some(Arc::new({
            let red_hex = red_hex.clone();
            move |name: &str, sha: &str, _: usize| name == "production-verify-1" && sha == red_hex
        })),
        ..Options::default()
    };
    let test = "an_automatic_rollback_that_could_not_leave_leaves_after_a_restart";
    let bot = Bot::start(test, opts()).await;
    let good = sha(HISTORY - 2);
    bot.type_line(&format!("!force {}", good.short())).await;
    bot.chat.wait_for("✅ train #1 deployed").await;
    bot.type_line(&format!("!force {}", red.short())).await;
    bot.chat.wait_for("train #2 verifies production").await;
    // The forge fails the rollback's commit listing.
    bot.forge.fail_commits.store(1, Ordering::SeqCst);
    bot.chat
        .wait_for("the automatic rollback did not leave, !rollback it: @local")
        .await;
    assert_eq!(bot.store.production().unwrap().unwrap().sha, red);
    let bot = bot.restart(test, &opts()).await;
    bot.chat
        .wait_for("✅ train #3 rolled production back to")
        .await;
    assert_eq!(bot.store.production().unwrap().unwrap().sha, good);
    // Once: a second restart does not roll back again.
    let bot = bot.restart(test, &opts()).await;
    bot.type_line("!status").await;
    bot.chat.wait_for("no train running").await;
    assert_eq!(bot.store.last_train().unwrap().unwrap().id, TrainId(3));
    bot.stop().await;
}

#[tokio::test(start_paused = true)]
async fn without_auto_rollback_a_red_window_mentions_ops_and_nothing_else() {
    let bot = Bot::start(
        "without_auto_rollback_a_red_window_mentions_ops_and_nothing_else",
        Options {
            production_keys: "verify = [{ run = \"true\" }]\nverify_for = \"3m\"\nverify_every = \"1m\"\nauto_rollback = false\n",
            fails: Some(Arc::new(|name: &str, sha: &str, _: usize| {
                name == "production-verify-1" && sha == super::sha(HISTORY - 1).as_str()
            })),
            ..Options::default()
        },
    )
    .await;
    bot.type_line(&format!("!force {}", sha(HISTORY - 2).short()))
        .await;
    bot.chat.wait_for("✅ train #1 deployed").await;
    let red = sha(HISTORY - 1);
    bot.type_line(&format!("!force {}", red.short())).await;
    let (_, _, msg) = bot
        .chat
        .wait_for("production is red and stays as it is; ops: @local")
        .await;
    assert!(text_of(&msg).contains("auto_rollback is off"), "{msg:?}");
    assert!(text_of(&msg).contains("cc @bob"), "{msg:?}");
    bot.type_line("!status").await;
    bot.chat.wait_for("no train running").await;
    assert_eq!(bot.store.production().unwrap().unwrap().sha, red);
    assert_eq!(bot.store.last_train().unwrap().unwrap().id, TrainId(2));
    assert!(!bot.store.train(TrainId(2)).unwrap().unwrap().rolled_back);
    bot.stop().await;
}

#[tokio::test(start_paused = true)]
async fn rollback_goes_while_a_train_verifies_and_ends_the_verification() {
    let bot = Bot::start(
        "rollback_goes_while_a_train_verifies_and_ends_the_verification",
        Options {
            production_keys: VERIFY_3M,
            ..Options::default()
        },
    )
    .await;
    let good = sha(HISTORY - 2);
    bot.type_line(&format!("!force {}", good.short())).await;
    bot.chat.wait_for("✅ train #1 deployed").await;
    bot.type_line(&format!("!force {}", sha(HISTORY - 1).short()))
        .await;
    bot.chat.wait_for("train #2 verifies production").await;
    bot.type_line("!rollback").await;
    bot.chat.wait_for("verification stopped by local").await;
    bot.chat
        .wait_for("✅ train #3 rolled production back to")
        .await;
    assert_eq!(bot.store.production().unwrap().unwrap().sha, good);
    assert!(bot.store.train(TrainId(2)).unwrap().unwrap().rolled_back);
    bot.finish().await;
}
