//! GitHub hanging (SPEC §12): the engine never waits on a forge call, so
//! commands and the API answer at once while a departure waits on GitHub.

use std::time::Duration;

use crate::Github;
use crate::support::http::http_get_json;
use crate::support::{BotConfig, short};

/// An upper bound for an answer while GitHub hangs, not a delay.
const PROMPT: Duration = Duration::from_secs(1);

#[test]
fn commands_and_the_api_answer_while_a_departure_waits_on_github() {
    let mut gh = Github::start(BotConfig::default());
    let bob = gh.fake.commit(
        "main",
        "Bob",
        "bob@example.com",
        Some("bob"),
        "Make the widget blue",
    );
    gh.bot.expect_allocated(&bob);
    // The first train lists every commit up to its head.
    gh.fake.hold("/commits?sha=");
    gh.bot.send("!depart");
    gh.fake.wait_held("/commits?sha=", 1);

    gh.bot.send("!status");
    gh.bot.expect_line(
        |l| l.contains(&format!("a train with {} is about to leave", short(&bob))),
        PROMPT,
    );
    gh.bot.send("!help");
    gh.bot.expect_line(|l| l.contains("commands:"), PROMPT);
    gh.bot.send("@bob !good");
    gh.bot
        .expect_line(|l| l.contains("no train is waiting for approval"), PROMPT);
    gh.bot.send("!depart");
    gh.bot.expect_line(
        |l| l.contains(&format!("a train with {} is about to leave", short(&bob))),
        PROMPT,
    );
    let started = std::time::Instant::now();
    let status = http_get_json(gh.port, "/api/status");
    assert!(
        started.elapsed() < PROMPT,
        "/api/status took {:?}",
        started.elapsed()
    );
    assert_eq!(status["gate"]["departure"], "go", "{status}");
    assert_eq!(
        status["gate"]["detail"],
        format!("a train with {} is about to leave", short(&bob)),
        "{status}"
    );

    // GitHub answers again: the train goes on, once.
    gh.fake.release();
    gh.bot.expect(&format!(
        "🚂 train #1 departs (sent by local) with {}",
        short(&bob)
    ));
    gh.bot.expect("🙋 train #1");
    assert_eq!(gh.bot.said("departs").len(), 1);
    gh.bot.send("@alice !good");
    gh.bot.send("@bob !good");
    gh.bot
        .expect(&format!("✅ train #1 deployed {}", short(&bob)));
    gh.bot.stop();
}
