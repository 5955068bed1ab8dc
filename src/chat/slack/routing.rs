//! Several pipelines over one Slack connection: which channel a message of
//! a pipeline goes to, where its message refs are kept, and what its
//! buttons say. A single-pipeline bot keeps the keys and button values it
//! always had, so one upgraded in place still finds its in-flight messages.

use slack_morphism::prelude::SlackChannelId;

use crate::chat::{Run, Scope};
use crate::domain::ids::TrainId;

/// The configured channels with their ids, in configuration order.
#[derive(Debug, Clone)]
pub struct Channels(Vec<(String, SlackChannelId)>);

impl Channels {
    /// `list` must not be empty: `Slack::start` refuses no channels.
    pub fn new(list: Vec<(String, SlackChannelId)>) -> Channels {
        assert!(!list.is_empty(), "at least one Slack channel");
        Channels(list)
    }

    /// Where unscoped messages go: the first configured channel.
    pub fn first(&self) -> &SlackChannelId {
        &self.0[0].1
    }

    /// The id of a configured channel string.
    pub fn id_of(&self, configured: &str) -> Option<&SlackChannelId> {
        self.0
            .iter()
            .find(|(c, _)| c == configured)
            .map(|(_, id)| id)
    }

    /// The configured strings, for people to read.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for (c, _) in &self.0 {
            if !names.contains(c) {
                names.push(c.clone());
            }
        }
        names
    }

    /// The configured string of a channel id; the first one when two
    /// configured strings (a name and an id) are the same channel.
    pub fn configured(&self, id: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(_, i)| i.0 == id)
            .map(|(c, _)| c.as_str())
    }
}

/// Where one pipeline's message refs live in the chat notes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    /// None: the single-pipeline keys.
    pipeline: Option<String>,
}

impl Keys {
    pub fn for_scope(scope: Option<&Scope>) -> Keys {
        Keys {
            pipeline: scope.filter(|s| s.multi).map(|s| s.pipeline.clone()),
        }
    }

    fn key(&self, what: &str, rest: &str) -> String {
        match &self.pipeline {
            None => format!("slack:{what}:{rest}"),
            Some(p) => format!("slack:{what}:{p}#{rest}"),
        }
    }

    /// Where a run's status message ts is kept. Trains keep the key they had
    /// before builds had status messages, so an upgrade finds their threads.
    pub fn status(&self, run: Run) -> String {
        match run {
            Run::Train(t) => self.key("status", &t.0.to_string()),
            Run::Build(b) => self.key("status", &format!("build-{b}")),
        }
    }

    pub fn approval(&self, train: TrainId) -> String {
        self.key("approval", &train.0.to_string())
    }

    pub fn approval_text(&self, train: TrainId) -> String {
        self.key("approval_text", &train.0.to_string())
    }

    /// The note naming the train whose approval buttons are live.
    pub fn open_approval(&self) -> String {
        match &self.pipeline {
            None => "slack:approval:open".to_string(),
            Some(p) => format!("slack:approval:open:{p}"),
        }
    }

    /// A Good / Bad button's value: the train, and its pipeline when there
    /// are several (`web#12`).
    pub fn button_value(&self, train: TrainId) -> String {
        match &self.pipeline {
            None => train.0.to_string(),
            Some(p) => format!("{p}#{}", train.0),
        }
    }
}

/// A button value read back: the pipeline (if it names one) and the train.
/// `12` and `#12` are single-pipeline values.
pub fn parse_button_value(value: &str) -> Option<(Option<String>, TrainId)> {
    let (pipeline, id) = match value.rsplit_once('#') {
        Some((p, id)) => (Some(p).filter(|p| !p.is_empty()), id),
        None => (None, value),
    };
    let id = id.parse::<u64>().ok()?;
    Some((pipeline.map(str::to_string), TrainId(id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(multi: bool) -> Scope {
        Scope {
            pipeline: "web".into(),
            channel: "#deploys".into(),
            multi,
            shared: false,
        }
    }

    #[test]
    fn a_single_pipeline_keeps_its_keys_and_values() {
        for keys in [Keys::for_scope(None), Keys::for_scope(Some(&scope(false)))] {
            assert_eq!(keys.status(Run::Train(TrainId(7))), "slack:status:7");
            assert_eq!(keys.status(Run::Build(2)), "slack:status:build-2");
            assert_eq!(keys.approval(TrainId(7)), "slack:approval:7");
            assert_eq!(keys.approval_text(TrainId(7)), "slack:approval_text:7");
            assert_eq!(keys.open_approval(), "slack:approval:open");
            assert_eq!(keys.button_value(TrainId(7)), "7");
        }
    }

    #[test]
    fn several_pipelines_key_by_pipeline_and_run() {
        let keys = Keys::for_scope(Some(&scope(true)));
        assert_eq!(keys.status(Run::Train(TrainId(7))), "slack:status:web#7");
        assert_eq!(keys.status(Run::Build(2)), "slack:status:web#build-2");
        assert_eq!(keys.approval(TrainId(7)), "slack:approval:web#7");
        assert_ne!(keys.open_approval(), Keys::for_scope(None).open_approval());
    }

    #[test]
    fn button_values_round_trip() {
        for keys in [Keys::for_scope(None), Keys::for_scope(Some(&scope(true)))] {
            let value = keys.button_value(TrainId(12));
            let want = (keys.pipeline.clone(), TrainId(12));
            assert_eq!(parse_button_value(&value), Some(want), "{value}");
        }
        assert_eq!(
            parse_button_value("web#12"),
            Some((Some("web".into()), TrainId(12)))
        );
        assert_eq!(parse_button_value("#12"), Some((None, TrainId(12))));
        assert_eq!(parse_button_value("web#"), None);
        assert_eq!(parse_button_value("web"), None);
    }

    #[test]
    fn channels_map_both_ways() {
        let ch = Channels::new(vec![
            ("#deploys".into(), SlackChannelId("C1".into())),
            ("C2".into(), SlackChannelId("C2".into())),
            ("C1".into(), SlackChannelId("C1".into())),
        ]);
        assert_eq!(ch.first().0, "C1");
        assert_eq!(ch.id_of("C2").map(|c| c.0.as_str()), Some("C2"));
        assert_eq!(ch.id_of("#other"), None);
        assert_eq!(ch.configured("C1"), Some("#deploys"));
        assert_eq!(ch.configured("C2"), Some("C2"));
        assert_eq!(ch.configured("C3"), None);
    }
}
