//! Branch builds: `!bb`, node leases, the queue, `!nodes`, `!release`.

use std::collections::BTreeMap;

use chrono::TimeDelta;
use tokio::sync::watch;

use super::calls::{Asked, Reply};
use super::publish::Publish;
use super::{Engine, Event};
use crate::chat::{Message, Run};
use crate::config::Step;
use crate::domain::build::{
    Build, BuildOutcome, BuildPhase, BuildPlan, BuildPos, BuildStage, BuildStep,
};
use crate::domain::build_messages as texts;
use crate::domain::ids::{BranchName, ChatUser, Sha};
use crate::domain::messages;
use crate::domain::nodes::{self, Node};
use crate::domain::refusal::Refusal;
use crate::domain::train::Actor;
use crate::forge::{CheckConclusion, CheckRun, CheckStatus, CommitState, ForgeError};
use crate::runner::{StepOutcome, StepRequest};

/// A build that has not finished, with the cancel switch of its running step.
pub(super) struct ActiveBuild {
    build: Build,
    pub(super) step: Option<watch::Sender<bool>>,
    /// The last lines of the step that failed, for the check run.
    tail: Vec<String>,
}

impl ActiveBuild {
    fn new(build: Build) -> ActiveBuild {
        ActiveBuild {
            build,
            step: None,
            tail: Vec::new(),
        }
    }
}

pub(super) type ActiveBuilds = BTreeMap<u64, ActiveBuild>;

impl Engine {
    fn build_plan(&self) -> BuildPlan {
        let b = &self.cfg.branch_builds;
        BuildPlan {
            checks: b.checks.len(),
            deploy: b.deploy.len(),
            smoke: b.smoke.len(),
        }
    }

    fn build_step_config(&self, pos: BuildPos) -> Option<&Step> {
        let b = &self.cfg.branch_builds;
        match pos.phase {
            BuildPhase::Checks => b.checks.get(pos.step),
            BuildPhase::Deploy => b.deploy.get(pos.step),
            BuildPhase::Smoke => b.smoke.get(pos.step),
        }
    }

    /// `!bb`: the branch head is read beside the engine; `bb_resolved`
    /// goes on.
    pub(super) fn bb(
        &mut self,
        asked: &Asked,
        branch: &BranchName,
    ) -> anyhow::Result<Result<(), Refusal>> {
        if self.cfg.branch_builds.nodes.is_empty() {
            return Ok(Err(Refusal::Forge(
                "branch builds are off: no [branch_builds] nodes configured".into(),
            )));
        }
        // A !bb of a branch already queued replaces it and adds nothing.
        let max = self.cfg.branch_builds.max_queued_per_user;
        let queued = self
            .builds
            .values()
            .filter(|a| {
                a.build.stage == BuildStage::Queued && a.build.requester == asked.actor.user
            })
            .filter(|a| a.build.branch != *branch)
            .count();
        if queued >= max {
            return Ok(Err(Refusal::TooManyQueued { queued, max }));
        }
        self.answer_later = true;
        let (asked, b) = (asked.clone(), branch.clone());
        let branch = branch.clone();
        self.beside(
            move |forge| async move { forge.branch_head(&b).await },
            move |result| Reply::BranchHead {
                asked,
                branch,
                result,
            },
        );
        Ok(Ok(()))
    }

    pub(super) async fn bb_resolved(
        &mut self,
        user: &ChatUser,
        branch: &BranchName,
        head: Result<Option<Sha>, ForgeError>,
    ) -> anyhow::Result<Result<(), Refusal>> {
        let sha = match head {
            Ok(Some(sha)) => sha,
            Ok(None) => return Ok(Err(Refusal::Forge(format!("no branch {branch}")))),
            Err(e) => return Ok(Err(Refusal::Forge(e.to_string()))),
        };
        let now = self.now();
        let id = self
            .store
            .next_build_id()?
            .max(self.builds.keys().next_back().map_or(0, |k| k + 1));
        // A newer !bb for the same branch supersedes the one running or queued.
        let older: Vec<u64> = self
            .builds
            .values()
            .filter(|a| a.build.branch == *branch)
            .map(|a| a.build.id)
            .collect();
        let mut node = None;
        for old in older {
            node = node.or(self.builds[&old].build.node.clone());
            self.end_build(old, BuildOutcome::Superseded { by: id }, false)
                .await?;
        }
        let build = Build::new(id, branch.clone(), sha, user.clone(), now);
        self.store.save_build(&build)?;
        self.builds.insert(id, ActiveBuild::new(build));
        if let Some(name) = node {
            // The newer build runs on the node the superseded one had, unless
            // another pipeline of its pool took it just now.
            let node = self.store.nodes(&[name])?.remove(0);
            if !node.is_busy() {
                self.start_build_on(id, node).await?;
            }
        }
        self.start_queued_builds().await?;
        if let Some(a) = self.builds.get(&id)
            && a.build.stage == BuildStage::Queued
        {
            let position = self
                .builds
                .values()
                .filter(|a| a.build.stage == BuildStage::Queued && a.build.id <= id)
                .count();
            let text = texts::queued(&a.build, position);
            self.publish_build_status(&a.build, &[]);
            self.show_build_status(id).await;
            self.say_build(id, text).await;
        }
        Ok(Ok(()))
    }

    /// Starts queued builds, oldest first, on whatever nodes are free.
    pub(super) async fn start_queued_builds(&mut self) -> anyhow::Result<()> {
        let queued: Vec<u64> = self
            .builds
            .values()
            .filter(|a| a.build.stage == BuildStage::Queued)
            .map(|a| a.build.id)
            .collect();
        for id in queued {
            // Another pipeline of a shared pool may lease the chosen node
            // between our read and our claim: then read and choose again.
            loop {
                let all = self.store.nodes(&self.cfg.branch_builds.nodes)?;
                let branch = self.builds[&id].build.branch.clone();
                let Some(i) = nodes::choose(&all, &self.cfg.pipeline.name, &branch) else {
                    break;
                };
                if self.start_build_on(id, all[i].clone()).await? {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Leases `node` (as just read) to the build and runs its first step.
    /// False if the node changed since it was read (another pipeline of
    /// the pool took it): nothing is done.
    async fn start_build_on(&mut self, id: u64, read: Node) -> anyhow::Result<bool> {
        let branch = self.builds[&id].build.branch.clone();
        let mut node = read.clone();
        let pipeline = &self.cfg.pipeline.name;
        if node.branch.as_ref() != Some(&branch) || node.held_by_other(pipeline).is_some() {
            // Another branch takes the node: the old lease ends here.
            node.sha = None;
            node.deployed_at = None;
        }
        node.branch = Some(branch);
        node.requester = Some(self.builds[&id].build.requester.clone());
        node.busy_with = Some(id);
        node.used = true;
        node.pipeline = Some(pipeline.clone());
        if !self.store.swap_node(&read, &node)? {
            return Ok(false);
        }
        let now = self.now();
        let plan = self.build_plan();
        let active = self.builds.get_mut(&id).expect("queued build");
        let step = active.build.start(&node.name, plan, now);
        self.store.save_build(&active.build)?;
        let url = texts::node_url(&self.cfg.branch_builds.node_url, &node.name);
        self.publish_build_status(&self.builds[&id].build, &[]);
        let text = texts::started(&self.ctx(), &self.builds[&id].build, &url);
        self.show_build_status(id).await;
        self.say_build(id, text).await;
        self.build_step(id, step).await?;
        Ok(true)
    }

    async fn build_step(&mut self, id: u64, step: BuildStep) -> anyhow::Result<()> {
        match step {
            BuildStep::Run(pos) => self.start_build_step(id, pos).await,
            BuildStep::Deployed(next) => {
                self.mark_deployed(id)?;
                match next {
                    Some(pos) => self.start_build_step(id, pos).await,
                    None => self.build_finished(id, true).await,
                }
            }
            BuildStep::Done(_) => self.build_finished(id, true).await,
        }
    }

    fn mark_deployed(&mut self, id: u64) -> anyhow::Result<()> {
        let b = &self.builds[&id].build;
        let Some(name) = b.node.clone() else {
            return Ok(());
        };
        let read = self.store.nodes(std::slice::from_ref(&name))?.remove(0);
        if !self.holds(&read, id) {
            return Ok(());
        }
        let mut node = read.clone();
        node.sha = Some(b.sha.clone());
        node.deployed_at = Some(self.now());
        // Nobody else writes a node while our build holds it.
        self.store.swap_node(&read, &node)?;
        Ok(())
    }

    async fn start_build_step(&mut self, id: u64, pos: BuildPos) -> anyhow::Result<()> {
        let Some(step) = self.build_step_config(pos).cloned() else {
            anyhow::bail!("no build step at {pos:?}")
        };
        let b = &self.builds[&id].build;
        let node = b.node.clone().unwrap_or_default();
        let url = texts::node_url(&self.cfg.branch_builds.node_url, &node);
        let run = format!("build-{id}");
        let mut env = self.step_env(&run, b.sha.as_str(), "", "branch", "", b.branch.as_str());
        for (k, v) in env.iter_mut() {
            match k.as_str() {
                "TRAINBOT_NODE" => *v = node.clone(),
                "TRAINBOT_NODE_URL" => *v = url.clone(),
                _ => {}
            }
        }
        let name = format!("{}-{}", pos.phase.name(), pos.step + 1);
        let req = StepRequest {
            key: format!("{run}/{name}"),
            step: step.clone(),
            env,
            cwd: self.cfg.config_dir.clone(),
            workdir: Some(self.workdir(&run)),
            log_path: self.log_path(&run, &name),
        };
        let text = texts::step_started(b, pos, &step.label());
        self.show_build_status(id).await;
        self.say_build(id, text).await;
        let (cancel, cancel_rx) = watch::channel(false);
        self.builds.get_mut(&id).expect("active build").step = Some(cancel);
        self.spawn_run(req, cancel_rx, move |outcome, took, log| {
            Event::BuildStepDone {
                build: id,
                pos,
                outcome,
                took,
                log,
            }
        });
        Ok(())
    }

    pub(super) async fn handle_build_step_done(
        &mut self,
        id: u64,
        pos: BuildPos,
        outcome: StepOutcome,
        took: TimeDelta,
        log: String,
    ) -> anyhow::Result<()> {
        let plan = self.build_plan();
        let Some(active) = self.builds.get_mut(&id) else {
            return Ok(());
        };
        let now = self.ports.clock.now();
        let ok = outcome.result.is_ok();
        let error = outcome.result.as_ref().err().map(|e| e.to_string());
        let Some(step) = active
            .build
            .step_finished(pos, ok, error.clone(), plan, now)
        else {
            return Ok(());
        };
        active.step = None;
        if !ok {
            active.tail.clone_from(&outcome.tail);
        }
        self.store.save_build(&active.build)?;
        let b = &self.builds[&id].build;
        let text = match &error {
            None => texts::step_passed(b, pos, took),
            Some(e) => texts::step_failed(b, pos, took, e, &log, &outcome.tail),
        };
        let text = crate::domain::messages::with_run_link(text, outcome.link.as_deref());
        self.say_build(id, text).await;
        self.build_step(id, step).await
    }

    /// Stops a build that has not finished (superseded, cancelled).
    async fn end_build(
        &mut self,
        id: u64,
        outcome: BuildOutcome,
        start_queue: bool,
    ) -> anyhow::Result<()> {
        let now = self.now();
        let Some(active) = self.builds.get_mut(&id) else {
            return Ok(());
        };
        if let Some(cancel) = active.step.take() {
            let _ = cancel.send(true);
        }
        active.build.end(outcome, now);
        self.store.save_build(&active.build)?;
        self.build_finished(id, start_queue).await
    }

    /// Frees the node, announces the result, lets the queue move.
    async fn build_finished(&mut self, id: u64, start_queue: bool) -> anyhow::Result<()> {
        let Some(active) = self.builds.remove(&id) else {
            return Ok(());
        };
        // Only a pass removes it: a superseded or cancelled build's step
        // may still be stopping in it.
        let passed = matches!(active.build.stage, BuildStage::Done(BuildOutcome::Passed));
        self.run_ended(&format!("build-{id}"), passed);
        if let Some(name) = &active.build.node {
            let read = self.store.nodes(std::slice::from_ref(name))?.remove(0);
            if self.holds(&read, id) {
                let node = Node {
                    busy_with: None,
                    ..read.clone()
                };
                if self.store.swap_node(&read, &node)? {
                    self.node_freed();
                }
            }
        }
        self.publish_build_status(&active.build, &active.tail);
        let text = texts::ended(&self.ctx(), &active.build, self.now());
        let url = texts::build_url(&self.ctx(), id);
        self.send_run_status(Run::Build(id), text.clone(), url)
            .await;
        self.forget_status(Run::Build(id));
        // A failed build mentions who asked for it (SPEC §14).
        let text = match &active.build.stage {
            BuildStage::Done(BuildOutcome::Failed { .. }) => {
                let who = messages::mention_user(&active.build.requester, self.ctx().console);
                format!("{text}\ncc {who}")
            }
            _ => text,
        };
        self.say_build(id, text).await;
        if start_queue {
            Box::pin(self.start_queued_builds()).await
        } else {
            Ok(())
        }
    }

    /// Whether the node is busy with build `id` of this pipeline (a shared
    /// pool's other pipelines number their builds too).
    fn holds(&self, node: &Node, id: u64) -> bool {
        node.busy_with == Some(id) && node.held_by_other(&self.cfg.pipeline.name).is_none()
    }

    /// A node of a shared pool is free: the pool's other engines start
    /// what they have queued at once, once the batch that freed it is in
    /// the store (`end_batch`).
    fn node_freed(&mut self) {
        if self.outbox.is_some() {
            self.pool_node_freed = true;
        } else {
            self.wake_pool();
        }
    }

    pub(super) fn wake_pool(&mut self) {
        self.pool_node_freed = false;
        if let Some(pool) = &self.pool {
            pool.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// Updates the build's one status message.
    async fn show_build_status(&mut self, id: u64) {
        let Some(active) = self.builds.get(&id) else {
            return;
        };
        let text = texts::status_line(&self.ctx(), &active.build, self.now());
        let url = texts::build_url(&self.ctx(), id);
        self.send_run_status(Run::Build(id), text, url).await;
    }

    /// Says something in the build's thread (the channel, on the console).
    async fn say_build(&mut self, id: u64, text: String) {
        let run = Some(Run::Build(id));
        self.send_msg(Message::Notice { run, text }).await;
    }

    /// Publishes the commit status and/or the check run the build's stage
    /// means (GitHub, `[forge.github] statuses` and `checks`); `tail`: the
    /// last lines of the step that failed.
    fn publish_build_status(&self, b: &Build, tail: &[String]) {
        let github = &self.cfg.forge.github;
        let url = texts::build_url(&self.ctx(), b.id);
        if github.checks {
            self.publisher.send(Publish::BuildCheck {
                build: b.id,
                sha: b.sha.clone(),
                run: check_run(b, self.build_plan(), tail, url.clone()),
            });
        }
        if github.statuses {
            let (state, description) = commit_status(b);
            self.publisher.send(Publish::BuildStatus {
                sha: b.sha.clone(),
                state,
                description,
                url,
            });
        }
    }

    pub(super) async fn cancel_build(
        &mut self,
        actor: &Actor,
        branch: &BranchName,
    ) -> anyhow::Result<Result<(), Refusal>> {
        let Some(id) = self
            .builds
            .values()
            .find(|a| a.build.branch == *branch)
            .map(|a| a.build.id)
        else {
            return Ok(Err(Refusal::Forge(format!(
                "no build is running for {branch}"
            ))));
        };
        if !actor.ops && self.builds[&id].build.requester != actor.user {
            return Ok(Err(Refusal::Forge(format!(
                "only ops or {} can cancel this build",
                self.builds[&id].build.requester.mention()
            ))));
        }
        self.end_build(
            id,
            BuildOutcome::Cancelled {
                by: actor.user.clone(),
            },
            true,
        )
        .await?;
        Ok(Ok(()))
    }

    pub(super) async fn release(
        &mut self,
        actor: &Actor,
        name: &str,
    ) -> anyhow::Result<Result<(), Refusal>> {
        if !self.cfg.branch_builds.nodes.iter().any(|n| n == name) {
            let known = self.cfg.branch_builds.nodes.join(", ");
            return Ok(Err(Refusal::Forge(format!(
                "no node {name}; nodes: {known}"
            ))));
        }
        let read: Node = self.store.nodes(&[name.to_string()])?.remove(0);
        if let Some(other) = read.held_by_other(&self.cfg.pipeline.name)
            && read.branch.is_some()
        {
            return Ok(Err(Refusal::Forge(format!(
                "{name} is held by pipeline {other}; release it there ({}release {other} {name})",
                self.cfg.bot.command_prefix
            ))));
        }
        let mut node = read.clone();
        if node.is_busy() {
            return Ok(Err(Refusal::Forge(format!(
                "{name} is busy with a build; !cancel it first"
            ))));
        }
        let Some(branch) = node.branch.clone() else {
            return Ok(Err(Refusal::Forge(format!("{name} is already free"))));
        };
        if !actor.ops && node.requester.as_ref() != Some(&actor.user) {
            let who = node
                .requester
                .as_ref()
                .map(|r| r.mention())
                .unwrap_or_else(|| "its requester".into());
            return Ok(Err(Refusal::Forge(format!(
                "only ops or {who} can release {name}"
            ))));
        }
        node.branch = None;
        node.sha = None;
        node.requester = None;
        node.pipeline = None;
        if !self.store.swap_node(&read, &node)? {
            return Ok(Err(Refusal::Forge(format!(
                "{name} changed just now (another pipeline of its pool); try again"
            ))));
        }
        self.node_freed();
        self.say(
            None,
            format!(
                "🔓 {name} released by {} (was {branch})",
                actor.user.mention()
            ),
        )
        .await;
        self.start_queued_builds().await?;
        Ok(Ok(()))
    }

    pub(super) fn nodes_text(&self) -> anyhow::Result<String> {
        let nodes = self.store.nodes(&self.cfg.branch_builds.nodes)?;
        Ok(texts::nodes(
            &nodes,
            &self.cfg.pipeline.name,
            &self.cfg.branch_builds.node_url,
            self.now(),
        ))
    }

    pub(super) fn branch_status_text(&self, branch: &BranchName) -> anyhow::Result<String> {
        Ok(match self.store.last_build_for(branch)? {
            Some(b) => texts::branch_status(&self.ctx(), &b, self.now()),
            None => format!(
                "no build of {branch} yet; {}bb {branch} starts one",
                self.cfg.bot.command_prefix
            ),
        })
    }

    /// After a restart: running builds run their step again (its processes
    /// are already killed); queued ones queue again.
    pub(super) async fn recover_builds(&mut self) -> anyhow::Result<()> {
        for mut build in self.store.unfinished_builds(1000)? {
            let id = build.id;
            if build.stage == BuildStage::Queued {
                self.builds.insert(id, ActiveBuild::new(build));
                continue;
            }
            // Branch deploys are by SHA, like lower environments: a step cut
            // by a stop or a crash runs again on the node it holds (SPEC §12).
            if let BuildStage::Running(pos) = build.stage
                && self.build_step_config(pos).is_some()
            {
                tracing::info!(build = id, "Resuming a branch build.");
                self.builds.insert(id, ActiveBuild::new(build));
                self.start_build_step(id, pos).await?;
                continue;
            }
            build.end(build.restart_outcome(self.build_plan()), self.now());
            self.store.save_build(&build)?;
            self.builds.insert(id, ActiveBuild::new(build));
            self.build_finished(id, true).await?;
        }
        // A node marked busy by a build that is no longer active is free.
        // Only ours: another pipeline's builds share the pool's nodes.
        for read in self.store.nodes(&self.cfg.branch_builds.nodes)? {
            if read.held_by_other(&self.cfg.pipeline.name).is_none()
                && read
                    .busy_with
                    .is_some_and(|b| !self.builds.contains_key(&b))
            {
                let node = Node {
                    busy_with: None,
                    ..read.clone()
                };
                if self.store.swap_node(&read, &node)? {
                    self.node_freed();
                }
            }
        }
        self.start_queued_builds().await
    }
}

/// `trainbot/branch` for a build: pending while queued or running, then
/// what its outcome means for merging.
fn commit_status(b: &Build) -> (CommitState, String) {
    let outcome = match &b.stage {
        BuildStage::Queued => {
            return (
                CommitState::Pending,
                format!("build {} queued for a branch node", b.id),
            );
        }
        BuildStage::Running(_) => {
            let node = b.node.as_deref().unwrap_or("?");
            return (CommitState::Pending, format!("build {} on {node}", b.id));
        }
        BuildStage::Done(outcome) => outcome,
    };
    match outcome {
        BuildOutcome::Passed => (CommitState::Success, "good to merge".to_string()),
        BuildOutcome::Failed { at, error } => (
            CommitState::Failure,
            format!("{} {} failed: {error}", at.phase.name(), at.step + 1),
        ),
        BuildOutcome::Superseded { by } => {
            (CommitState::Error, format!("superseded by build {by}"))
        }
        BuildOutcome::Cancelled { by } => (CommitState::Error, format!("cancelled by {by}")),
        BuildOutcome::Interrupted => (CommitState::Error, "interrupted".to_string()),
    }
}

/// Lines of a failed step's output shown in a check run at most.
const CHECK_TAIL_LINES: usize = 30;

/// `trainbot/branch` as a check run: queued, in progress, then completed
/// with the outcome; the summary lists the steps with their results and
/// the failing step's last lines.
fn check_run(b: &Build, plan: BuildPlan, tail: &[String], url: String) -> CheckRun {
    let (_, description) = commit_status(b);
    let (status, title) = match &b.stage {
        BuildStage::Queued => (CheckStatus::Queued, format!("Build {} queued", b.id)),
        BuildStage::Running(_) => (
            CheckStatus::InProgress,
            format!("Build {}: {description}", b.id),
        ),
        BuildStage::Done(outcome) => {
            let conclusion = match outcome {
                BuildOutcome::Passed => CheckConclusion::Success,
                BuildOutcome::Failed { .. } => CheckConclusion::Failure,
                BuildOutcome::Superseded { .. }
                | BuildOutcome::Cancelled { .. }
                | BuildOutcome::Interrupted => CheckConclusion::Cancelled,
            };
            (
                CheckStatus::Completed(conclusion),
                format!("Build {}: {description}", b.id),
            )
        }
    };
    let mut summary = format!("Build {} of `{}` at `{}`.\n", b.id, b.branch, b.sha.short());
    if let Some(node) = &b.node {
        summary.push_str(&format!("Node: {node}.\n"));
    }
    summary.push('\n');
    let phases = [
        (BuildPhase::Checks, plan.checks),
        (BuildPhase::Deploy, plan.deploy),
        (BuildPhase::Smoke, plan.smoke),
    ];
    let order = |pos: BuildPos| {
        let phase = phases
            .iter()
            .position(|(p, _)| *p == pos.phase)
            .unwrap_or(0);
        (phase, pos.step)
    };
    let mut failed = None;
    for (phase, count) in phases {
        for step in 0..count {
            let pos = BuildPos { phase, step };
            let result = match &b.stage {
                BuildStage::Queued => "waiting".to_string(),
                BuildStage::Running(at) => match order(pos).cmp(&order(*at)) {
                    std::cmp::Ordering::Less => "✅ passed".into(),
                    std::cmp::Ordering::Equal => "⏳ running".into(),
                    std::cmp::Ordering::Greater => "waiting".into(),
                },
                BuildStage::Done(BuildOutcome::Passed) => "✅ passed".into(),
                BuildStage::Done(BuildOutcome::Failed { at, error }) => {
                    match order(pos).cmp(&order(*at)) {
                        std::cmp::Ordering::Less => "✅ passed".into(),
                        std::cmp::Ordering::Equal => {
                            failed = Some(pos);
                            format!("❌ failed: {error}")
                        }
                        std::cmp::Ordering::Greater => "not run".into(),
                    }
                }
                BuildStage::Done(_) => "not finished".into(),
            };
            summary.push_str(&format!("- {} {}: {result}\n", phase.name(), step + 1));
        }
    }
    if let Some(pos) = failed
        && !tail.is_empty()
    {
        let start = tail.len().saturating_sub(CHECK_TAIL_LINES);
        summary.push_str(&format!(
            "\nLast lines of {} {}:\n\n```\n{}\n```\n",
            pos.phase.name(),
            pos.step + 1,
            tail[start..].join("\n")
        ));
    }
    CheckRun {
        name: super::publish::BRANCH_CONTEXT.to_string(),
        status,
        details_url: url,
        title,
        summary,
    }
}
