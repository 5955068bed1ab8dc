//! A stored train meets the config of a new start (SPEC §12). Positions are
//! indices into the plan, so a config that removed, renamed or reordered
//! environments, or dropped steps, would send an unfinished train to a step
//! that no longer exists. The train's own list of environment names tells
//! a moved environment (the train follows it) from a removed one (the train
//! ends as failed, "config changed: …"); the bot goes on either way.

use super::{Effect, Outcome, Phase, Plan, Route, Stage, StepPos, Target, Train, phase_len};
use crate::domain::clock::Ts;

/// Where a stored lower environment is in the new plan.
enum Place {
    At(usize),
    /// Gone, named for people ("preview", or "#3" for records written
    /// before trains kept their environments' names).
    Gone(String),
}

impl Train {
    /// Fits an unfinished stored train to `plan` before it resumes: a moved
    /// environment is followed by name; one that is gone, or a step
    /// position past the end of its phase, ends the train as failed. The
    /// effects are those of that end (none when the train goes on).
    pub fn fit_config(&mut self, plan: &Plan, now: Ts) -> Vec<Effect> {
        if self.is_done() {
            return Vec::new();
        }
        let here = match self.stage {
            Stage::Running(pos) => Some(pos),
            Stage::Waiting { target, .. } => Some(StepPos {
                target,
                phase: Phase::Deploy,
                step: 0,
            }),
            Stage::AwaitingApproval { .. } | Stage::Verifying { .. } | Stage::Done(_) => None,
        };
        let route_env = match self.route {
            Route::Env(i) => Some(i),
            _ => None,
        };
        let here_env = here.and_then(|p| match p.target {
            Target::Lower(i) => Some(i),
            Target::Production => None,
        });
        for i in here_env.into_iter().chain(route_env) {
            if let Place::Gone(name) = self.place(plan, i) {
                let at = here.unwrap_or(StepPos {
                    target: Target::Lower(i),
                    phase: Phase::Deploy,
                    step: 0,
                });
                return self.config_gone(at, format!("environment {name} is gone"), now);
            }
        }
        self.follow_moved_envs(plan);
        if let Stage::Running(pos) = self.stage
            && pos.target != Target::Production
            && pos.step >= phase_len(plan, pos.target, pos.phase)
        {
            let what = format!(
                "{} {} step {} is gone",
                self.env_label(plan, pos.target),
                pos.phase.name(),
                pos.step + 1
            );
            return self.config_gone(pos, what, now);
        }
        Vec::new()
    }

    /// The name of a lower environment as this train knew it.
    pub fn env_label<'a>(&'a self, plan: &'a Plan, target: Target) -> &'a str {
        match target {
            Target::Lower(i) => self
                .envs
                .get(i)
                .map(String::as_str)
                .unwrap_or_else(|| super::target_name(plan, target)),
            Target::Production => "production",
        }
    }

    /// "staging deploy", with the train's own environment names (a config
    /// change may have removed or moved them since).
    pub fn pos_label(&self, plan: &Plan, pos: StepPos) -> String {
        format!("{} {}", self.env_label(plan, pos.target), pos.phase.name())
    }

    fn place(&self, plan: &Plan, i: usize) -> Place {
        match self.envs.get(i) {
            Some(name) => match plan.envs.iter().position(|e| &e.name == name) {
                Some(j) => Place::At(j),
                None => Place::Gone(name.clone()),
            },
            None if i < plan.envs.len() => Place::At(i),
            None => Place::Gone(format!("#{}", i + 1)),
        }
    }

    /// Renumbers the train's lower positions for the new plan, by name,
    /// and takes the new plan's names. Step records of environments that
    /// are gone keep their old numbers: they are history, shown only.
    fn follow_moved_envs(&mut self, plan: &Plan) {
        let names: Vec<String> = plan.envs.iter().map(|e| e.name.clone()).collect();
        if self.envs.is_empty() || self.envs == names {
            return;
        }
        let map = |t: Target, train: &Train| match t {
            Target::Lower(i) => match train.place(plan, i) {
                Place::At(j) => Target::Lower(j),
                Place::Gone(_) => t,
            },
            Target::Production => t,
        };
        let old = self.clone();
        match &mut self.stage {
            Stage::Running(pos) => pos.target = map(pos.target, &old),
            Stage::Waiting { target, .. } => *target = map(*target, &old),
            _ => {}
        }
        if let Route::Env(i) = self.route
            && let Target::Lower(j) = map(Target::Lower(i), &old)
        {
            self.route = Route::Env(j);
        }
        for rec in &mut self.steps {
            rec.pos.target = map(rec.pos.target, &old);
        }
        self.envs = names;
    }

    fn config_gone(&mut self, at: StepPos, what: String, now: Ts) -> Vec<Effect> {
        if let Some(rec) = self
            .steps
            .iter_mut()
            .rev()
            .find(|r| r.pos == at && r.finished.is_none())
        {
            rec.finished = Some(now);
            rec.ok = Some(false);
        }
        self.end(
            Outcome::Failed {
                at,
                error: format!("config changed: {what}"),
            },
            now,
        )
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;
    use crate::domain::approval::ApprovalPolicy;
    use crate::domain::test_trains::{at, train};
    use crate::domain::train::EnvPlan;

    fn plan(envs: &[(&str, usize)]) -> Plan {
        Plan {
            envs: envs
                .iter()
                .map(|(name, deploy)| EnvPlan {
                    name: name.to_string(),
                    deploy: *deploy,
                    acceptance: 1,
                })
                .collect(),
            production_deploy: 1,
            production_smoke: 1,
            approval: ApprovalPolicy::AllAuthors,
            approval_timeout: TimeDelta::minutes(30),
            verify: Default::default(),
        }
    }

    fn running(target: Target, phase: Phase, step: usize) -> Train {
        let mut t = train(1, 0);
        t.envs = ["staging", "preview", "preprod"].map(String::from).to_vec();
        let pos = StepPos {
            target,
            phase,
            step,
        };
        t.stage = Stage::Running(pos);
        crate::domain::test_trains::step(&mut t, pos, 0, None, None);
        t
    }

    fn error_of(t: &Train) -> &str {
        match t.outcome() {
            Some(Outcome::Failed { error, .. }) => error,
            other => panic!("not failed: {other:?}"),
        }
    }

    #[test]
    fn a_train_on_a_removed_environment_fails_naming_it() {
        let mut t = running(Target::Lower(1), Phase::Deploy, 0);
        let effects = t.fit_config(&plan(&[("staging", 1), ("preprod", 1)]), at(5));
        assert!(matches!(
            effects[..],
            [Effect::Ended(Outcome::Failed { .. })]
        ));
        assert_eq!(error_of(&t), "config changed: environment preview is gone");
        assert_eq!(t.steps[0].ok, Some(false));
        let p = plan(&[("staging", 1), ("preprod", 1)]);
        assert_eq!(
            t.pos_label(
                &p,
                StepPos {
                    target: Target::Lower(1),
                    phase: Phase::Deploy,
                    step: 0
                }
            ),
            "preview deploy"
        );
    }

    #[test]
    fn a_train_waiting_before_a_removed_environment_fails_too() {
        let mut t = running(Target::Lower(2), Phase::Deploy, 0);
        t.stage = Stage::Waiting {
            target: Target::Lower(2),
            since: at(1),
        };
        t.fit_config(&plan(&[("staging", 1)]), at(5));
        assert_eq!(error_of(&t), "config changed: environment preprod is gone");
    }

    #[test]
    fn a_step_past_the_end_of_its_phase_fails_naming_it() {
        let mut t = running(Target::Lower(0), Phase::Deploy, 1);
        t.fit_config(
            &plan(&[("staging", 1), ("preview", 1), ("preprod", 1)]),
            at(5),
        );
        assert_eq!(
            error_of(&t),
            "config changed: staging deploy step 2 is gone"
        );
    }

    #[test]
    fn a_moved_environment_is_followed_by_name() {
        let mut t = running(Target::Lower(2), Phase::Acceptance, 0);
        let p = plan(&[("preprod", 1), ("staging", 1)]);
        assert!(t.fit_config(&p, at(5)).is_empty());
        assert_eq!(
            t.stage,
            Stage::Running(StepPos {
                target: Target::Lower(0),
                phase: Phase::Acceptance,
                step: 0
            })
        );
        assert_eq!(t.steps[0].pos.target, Target::Lower(0));
        assert_eq!(t.envs, ["preprod", "staging"]);
    }

    #[test]
    fn an_old_record_without_names_goes_by_index() {
        let mut t = running(Target::Lower(2), Phase::Deploy, 0);
        t.envs.clear();
        let mut same = t.clone();
        assert!(
            same.fit_config(&plan(&[("a", 1), ("b", 1), ("c", 1)]), at(5))
                .is_empty()
        );
        t.fit_config(&plan(&[("a", 1)]), at(5));
        assert_eq!(error_of(&t), "config changed: environment #3 is gone");
    }

    #[test]
    fn a_train_awaiting_approval_or_in_production_is_left_alone() {
        let mut t = train(1, 0);
        t.envs = vec!["gone".into()];
        assert!(t.fit_config(&plan(&[]), at(5)).is_empty());
        let mut t = running(Target::Production, Phase::Deploy, 3);
        assert!(t.fit_config(&plan(&[]), at(5)).is_empty());
        assert!(!t.is_done());
    }
}
