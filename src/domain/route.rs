//! Which pipeline a chat command is for (SPEC §16). Pure: the caller says
//! which pipelines the place serves and what each one is doing.

/// What one pipeline is doing, as far as choosing it goes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub name: String,
    /// Its train waits for approval from these users (empty: it does not).
    pub awaiting: Vec<String>,
    /// Its train waits for approval at all.
    pub approval: bool,
    /// A train is on its way (not ended).
    pub running: bool,
    pub frozen: bool,
}

/// Where a command goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// To this pipeline, with the pipeline's name taken out of the text.
    To { pipeline: String, text: String },
    /// It could be for any of these: the user must name one.
    Choose(Vec<String>),
    /// `!use NAME`: the place's default from now on.
    Use(String),
    /// `!use` with a name no pipeline here has (or none).
    UseUnknown(Vec<String>),
    /// Not a command (no prefix): nothing to do.
    Ignore,
}

/// One message to route.
pub struct Said<'a> {
    pub text: &'a str,
    pub prefix: &'a str,
    pub user: &'a str,
    /// The pipeline of a clicked button.
    pub button: Option<&'a str>,
}

/// Routes `said` among `here`, the pipelines this channel (or the console)
/// serves. A command may name its pipeline first (`!status web`) or name a
/// train as `web#12`; otherwise the place's `default` (`!use`) or the only
/// pipeline that fits takes it. `summary` tells what a pipeline is doing; it
/// is asked only when the command names no pipeline.
pub fn route(
    said: &Said<'_>,
    here: &[&str],
    default: Option<&str>,
    summary: impl Fn(&str) -> Summary,
) -> Route {
    let Some(rest) = said.text.trim().strip_prefix(said.prefix) else {
        return Route::Ignore;
    };
    let mut words: Vec<&str> = rest.split_whitespace().collect();
    if words.is_empty() {
        return Route::Ignore;
    }
    let name = words[0].to_ascii_lowercase();
    let names = || here.iter().map(|p| p.to_string()).collect::<Vec<_>>();
    let is_here = |n: &str| here.contains(&n);
    if name == "use" {
        return match words.get(1) {
            Some(n) if words.len() == 2 && is_here(n) => Route::Use(n.to_string()),
            _ => Route::UseUnknown(names()),
        };
    }
    let to = |pipeline: &str, words: &[&str]| Route::To {
        pipeline: pipeline.to_string(),
        text: format!("{}{}", said.prefix, words.join(" ")),
    };
    if let Some(first) = words.get(1).copied()
        && is_here(first)
    {
        words.remove(1);
        return to(first, &words);
    }
    if let Some((i, pipeline, number)) = words
        .iter()
        .enumerate()
        .skip(1)
        .find_map(|(i, w)| labelled_train(w).map(|(p, n)| (i, p, n)))
        && is_here(pipeline)
    {
        let pipeline = pipeline.to_string();
        let number = format!("#{number}");
        words[i] = &number;
        return to(&pipeline, &words);
    }
    if let Some(pipeline) = said.button.filter(|p| is_here(p)) {
        return to(pipeline, &words);
    }
    if let [only] = here {
        return to(only, &words);
    }
    if let Some(pipeline) = default.filter(|p| is_here(p)) {
        return to(pipeline, &words);
    }
    if name == "help" {
        // The same text for every pipeline.
        return match here.first() {
            Some(p) => to(p, &words),
            None => Route::Choose(Vec::new()),
        };
    }
    let summaries: Vec<Summary> = here.iter().map(|p| summary(p)).collect();
    let fitting = fits(&name, words.len() > 1, said.user, &summaries);
    match fitting.as_slice() {
        [one] => to(one, &words),
        [] => Route::Choose(names()),
        several => Route::Choose(several.to_vec()),
    }
}

/// The pipelines a command without a pipeline name could be for.
fn fits(command: &str, has_args: bool, user: &str, here: &[Summary]) -> Vec<String> {
    let pick = |keep: &dyn Fn(&Summary) -> bool| -> Vec<String> {
        here.iter()
            .filter(|p| keep(p))
            .map(|p| p.name.clone())
            .collect()
    };
    match command {
        "good" | "bad" => {
            let asked = pick(&|p| p.awaiting.iter().any(|u| u == user));
            if asked.is_empty() {
                pick(&|p| p.approval)
            } else {
                asked
            }
        }
        "unfreeze" => pick(&|p| p.frozen),
        "cancel" if !has_args => pick(&|p| p.running),
        _ => pick(&|_| true),
    }
}

/// `web#12` -> ("web", 12).
fn labelled_train(word: &str) -> Option<(&str, u64)> {
    let (pipeline, number) = word.split_once('#')?;
    if pipeline.is_empty() {
        return None;
    }
    Some((pipeline, number.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(name: &str) -> Summary {
        Summary {
            name: name.into(),
            ..Summary::default()
        }
    }

    /// Routes among `here` as the dispatcher would, with their summaries.
    fn route(said: &Said<'_>, here: &[Summary], default: Option<&str>) -> Route {
        let names: Vec<&str> = here.iter().map(|p| p.name.as_str()).collect();
        super::route(said, &names, default, |name| {
            here.iter()
                .find(|p| p.name == name)
                .cloned()
                .expect("asked about a pipeline here")
        })
    }

    fn said(text: &str) -> Said<'_> {
        Said {
            text,
            prefix: "!",
            user: "alice",
            button: None,
        }
    }

    fn to(pipeline: &str, text: &str) -> Route {
        Route::To {
            pipeline: pipeline.into(),
            text: text.into(),
        }
    }

    #[test]
    fn a_named_pipeline_is_taken_out_of_the_text() {
        let here = [p("api"), p("web")];
        assert_eq!(
            route(&said("!status web"), &here, None),
            to("web", "!status")
        );
        assert_eq!(
            route(&said("!depart api"), &here, None),
            to("api", "!depart")
        );
        assert_eq!(
            route(&said("!bad web  it breaks login"), &here, None),
            to("web", "!bad it breaks login")
        );
        assert_eq!(
            route(&said("!status feature/x"), &here, None),
            Route::Choose(vec!["api".into(), "web".into()])
        );
    }

    #[test]
    fn a_labelled_train_names_its_pipeline() {
        let here = [p("api"), p("web")];
        assert_eq!(
            route(&said("!good web#12"), &here, None),
            to("web", "!good #12")
        );
        assert_eq!(
            route(&said("!cancel api#3"), &here, None),
            to("api", "!cancel #3")
        );
        // A label of a pipeline not served here is left to the user.
        assert_eq!(
            route(&said("!good ops#2"), &here, None),
            Route::Choose(vec!["api".into(), "web".into()])
        );
    }

    #[test]
    fn one_pipeline_here_takes_everything() {
        let here = [p("web")];
        assert_eq!(route(&said("!depart"), &here, None), to("web", "!depart"));
        assert_eq!(
            route(&said("!status web"), &here, None),
            to("web", "!status")
        );
        assert_eq!(route(&said("hello"), &here, None), Route::Ignore);
        assert_eq!(route(&said("!"), &here, None), Route::Ignore);
    }

    #[test]
    fn use_sets_a_default_that_names_still_override() {
        let here = [p("api"), p("web")];
        assert_eq!(
            route(&said("!use web"), &here, None),
            Route::Use("web".into())
        );
        assert_eq!(
            route(&said("!use ops"), &here, None),
            Route::UseUnknown(vec!["api".into(), "web".into()])
        );
        assert_eq!(
            route(&said("!depart"), &here, Some("web")),
            to("web", "!depart")
        );
        assert_eq!(
            route(&said("!depart api"), &here, Some("web")),
            to("api", "!depart")
        );
    }

    #[test]
    fn approvals_go_to_the_only_train_that_asks() {
        let mut web = p("web");
        web.approval = true;
        web.awaiting = vec!["bob".into()];
        let mut api = p("api");
        api.approval = true;
        api.awaiting = vec!["alice".into()];
        let here = [api.clone(), web.clone()];
        assert_eq!(route(&said("!good"), &here, None), to("api", "!good"));
        let mut bob = said("!bad flaky");
        bob.user = "bob";
        assert_eq!(route(&bob, &here, None), to("web", "!bad flaky"));
        let mut carol = said("!good");
        carol.user = "carol";
        assert_eq!(
            route(&carol, &here, None),
            Route::Choose(vec!["api".into(), "web".into()])
        );
        let only_web = [p("api"), web];
        assert_eq!(route(&carol, &only_web, None), to("web", "!good"));
    }

    #[test]
    fn state_picks_unfreeze_and_cancel_and_buttons_carry_theirs() {
        let mut web = p("web");
        web.frozen = true;
        let mut api = p("api");
        api.running = true;
        let here = [api, web];
        assert_eq!(
            route(&said("!unfreeze"), &here, None),
            to("web", "!unfreeze")
        );
        assert_eq!(route(&said("!cancel"), &here, None), to("api", "!cancel"));
        let mut click = said("!good #4");
        click.button = Some("web");
        assert_eq!(route(&click, &here, None), to("web", "!good #4"));
        assert_eq!(route(&said("!help"), &here, None), to("api", "!help"));
    }
}
