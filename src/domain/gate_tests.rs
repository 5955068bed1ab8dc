//! Every road × every rule: the gate's whole contract in one table.

use chrono::{DateTime, TimeDelta, Utc};

use super::*;
use crate::domain::window::Window;

fn now() -> Ts {
    // A Monday, 12:00 UTC.
    "2026-11-30T12:00:00Z".parse::<DateTime<Utc>>().unwrap()
}

fn sha() -> Sha {
    Sha::new(&"ab".repeat(20)).unwrap()
}

/// The roads, named as the table names them.
fn roads() -> Vec<(&'static str, Road<'static>)> {
    vec![
        ("clock", Road::Clock),
        ("!depart", Road::Depart),
        ("enter staging", Road::Enter { env: "staging" }),
        ("production", Road::Production),
        (
            "!force #7",
            Road::Force {
                train: Some(TrainId(7)),
            },
        ),
        ("!force <sha>", Road::Force { train: None }),
        ("!rollback", Road::Rollback { sha_given: false }),
        ("!rollback <sha>", Road::Rollback { sha_given: true }),
        ("!deploy staging", Road::Deploy { env: "staging" }),
        ("!deploy production", Road::Deploy { env: PRODUCTION }),
        ("staging tag", Road::Tag { production: false }),
        ("production tag", Road::Tag { production: true }),
    ]
}

const RULES: [&str; 10] = [
    "interrupted",
    "rejected head",
    "freeze",
    "lock staging",
    "lock production",
    "window",
    "who",
    "on main",
    "tag source",
    "verifying",
];

/// Rows: roads. Columns: the one rule that is in force. `go`, `wait`, `no`;
/// `go*` is a go that overrides the rule (recorded).
const TABLE: &str = "
road               | interrupted | rejected head | freeze | lock staging | lock production | window | who | on main | tag source | verifying
clock              | wait        | no            | wait   | go           | go              | go     | go  | go      | go | wait
!depart            | no          | go            | no     | go           | go              | go     | go  | go      | go | no
enter staging      | go          | go            | go     | wait         | go              | go     | go  | go      | go | go
production         | go          | go            | go     | go           | wait            | wait   | go  | go      | go | wait
!force #7          | go          | go            | go     | go           | no              | go*    | no  | go      | go | no
!force <sha>       | no          | go            | go     | go           | no              | go*    | no  | no      | go | no
!rollback          | go          | go            | go     | go           | no              | go*    | no  | go      | go | go
!rollback <sha>    | go          | go            | go     | go           | no              | go*    | no  | no      | go | go
!deploy staging    | no          | go            | no     | wait         | go              | go     | go  | go      | go | go
!deploy production | no          | go            | no     | go           | wait            | no     | no  | no      | go | no
staging tag        | wait        | go            | wait   | go           | go              | go     | go  | go      | no | go
production tag     | wait        | go            | wait   | go           | wait            | wait   | go  | no      | no | wait
";

fn answer(road: &Road, rule: &str) -> Verdict {
    let s = sha();
    let ops = ChatUser::new("ops");
    let windows = Windows(vec!["Mon-Fri 14:00-17:00".parse::<Window>().unwrap()]);
    let open = Windows::default();
    let lock = |env: &str| Lock {
        env: env.into(),
        by: ChatUser::new("bob"),
        reason: "db migration".into(),
        since: now() - TimeDelta::minutes(5),
        until: Some(now() + TimeDelta::hours(1)),
    };
    let staging = [lock("staging")];
    let production = [lock(PRODUCTION)];
    let role = ["alice".to_string()];
    let mut f = Facts::open(now(), &open, &[]);
    f.actor = Some(&ops);
    // Every road that carries a SHA carries one on main, unless the rule
    // under test says otherwise.
    f.on_main = Some((s.short(), true));
    match rule {
        "interrupted" => f.interrupted = Some(TrainId(7)),
        "rejected head" => {
            f.rejected_head = Some(Rejected {
                sha: &s,
                train: TrainId(6),
                how: "rolled back",
            })
        }
        "freeze" => {
            f.frozen = Some(Frozen {
                by: &ops,
                reason: Some("incident"),
            })
        }
        "lock staging" => f.locks = &staging,
        "lock production" => f.locks = &production,
        "window" => f.windows = &windows,
        "who" => f.production_role = Some(&role),
        "on main" => f.on_main = Some((s.short(), false)),
        "tag source" => f.tag_problem = Some("tag v1.0 was deleted"),
        "verifying" => f.verifying = Some((TrainId(9), now() + TimeDelta::minutes(8))),
        _ => unreachable!("{rule}"),
    }
    gate(road, &f)
}

fn word(v: &Verdict) -> &'static str {
    match v {
        Verdict::Go { overrides: None } => "go",
        Verdict::Go { overrides: Some(_) } => "go*",
        Verdict::Wait(_) => "wait",
        Verdict::No(_) => "no",
    }
}

#[test]
fn every_road_asks_every_rule() {
    let mut lines = TABLE.trim().lines();
    let header: Vec<&str> = lines.next().unwrap().split('|').map(str::trim).collect();
    assert_eq!(
        &header[1..],
        &RULES[..],
        "the table's columns are the rules"
    );
    let roads = roads();
    let mut wrong = Vec::new();
    let mut rows = 0;
    for line in lines {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let (name, road) = roads
            .iter()
            .find(|(n, _)| *n == cells[0])
            .unwrap_or_else(|| panic!("no road {}", cells[0]));
        rows += 1;
        for (rule, want) in RULES.iter().zip(&cells[1..]) {
            let got = answer(road, rule);
            if word(&got) != *want {
                wrong.push(format!("{name} × {rule}: want {want}, got {got:?}"));
            }
            if let Some(h) = got.hold() {
                let named = h.rule.name();
                assert!(
                    rule.starts_with(named),
                    "{name} × {rule} names the rule {named}"
                );
            }
        }
    }
    assert_eq!(rows, roads.len(), "every road has a row");
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

#[test]
fn nothing_in_force_means_go_everywhere() {
    let open = Windows::default();
    let f = Facts::open(now(), &open, &[]);
    for (name, road) in roads() {
        let who = ChatUser::new("ops");
        let f = Facts {
            actor: Some(&who),
            ..f.clone()
        };
        assert_eq!(gate(&road, &f), Verdict::GO, "{name}");
    }
}

#[test]
fn holds_read_as_one_line_naming_the_rule() {
    let v = answer(&Road::Production, "window");
    let Verdict::Wait(h) = v else { panic!() };
    assert_eq!(
        h.to_string(),
        "production is outside its deploy windows; next opening Mon 2026-11-30 14:00 UTC (rule: window)"
    );
    assert_eq!(h.until, Some(now() + TimeDelta::hours(2)));
    let Verdict::Wait(h) = answer(&Road::Enter { env: "staging" }, "lock staging") else {
        panic!()
    };
    assert_eq!(
        h.to_string(),
        "staging is locked by bob (db migration) until Mon 2026-11-30 13:00 UTC; !unlock staging releases it (rule: lock)"
    );
    let Verdict::No(h) = answer(&Road::Force { train: None }, "on main") else {
        panic!()
    };
    assert_eq!(h.to_string(), "abababa is not on main (rule: on main)");
    let Verdict::No(h) = answer(&Road::Clock, "rejected head") else {
        panic!()
    };
    assert_eq!(
        h.to_string(),
        "abababa was rolled back in train #6; the clock does not send it again (a newer SHA or !depart does) (rule: rejected head)"
    );
}

#[test]
fn a_verifying_train_names_itself_and_its_end() {
    let Verdict::No(h) = answer(&Road::Force { train: None }, "verifying") else {
        panic!()
    };
    assert_eq!(
        h.to_string(),
        "train #9 is verifying production until 12:08 UTC (rule: verifying)"
    );
    assert_eq!(h.until, Some(now() + TimeDelta::minutes(8)));
    let Verdict::Wait(h) = answer(&Road::Clock, "verifying") else {
        panic!()
    };
    assert_eq!(h.rule, Rule::Verifying);
}

#[test]
fn an_expired_lock_holds_nothing() {
    let open = Windows::default();
    let old = [Lock {
        env: "staging".into(),
        by: ChatUser::new("bob"),
        reason: "x".into(),
        since: now() - TimeDelta::hours(2),
        until: Some(now() - TimeDelta::seconds(1)),
    }];
    let f = Facts::open(now(), &open, &old);
    assert_eq!(gate(&Road::Enter { env: "staging" }, &f), Verdict::GO);
}

#[test]
fn the_production_role_lets_its_members_through() {
    let open = Windows::default();
    let alice = ChatUser::new("alice");
    let role = ["alice".to_string()];
    let mut f = Facts::open(now(), &open, &[]);
    f.actor = Some(&alice);
    f.production_role = Some(&role);
    assert_eq!(gate(&Road::Force { train: None }, &f), Verdict::GO);
}
