//! Configuration: `raw` mirrors the TOML file 1:1; `settings` is the
//! validated, typed form the rest of the bot uses.

mod environments;
mod pipelines;
mod problem;
mod raw;
mod schedule_preview;
mod settings;
mod step_secrets;
mod steps;
mod validate;

#[cfg(test)]
mod pipelines_tests;

pub use schedule_preview::next_departures;
pub use settings::*;
pub use step_secrets::{load_step_secrets, load_step_secrets_with, step_secret};
