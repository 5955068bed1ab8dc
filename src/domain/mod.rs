//! The pure core: no I/O, no clock on the wall. Time comes in as arguments.

pub mod approval;
pub mod build;
pub mod build_messages;
pub mod clock;
pub mod command;
pub mod departure;
pub mod duration;
pub mod eject;
pub mod gate;
pub mod ids;
pub mod lock;
pub mod messages;
pub mod metrics;
pub mod nodes;
pub mod progress;
pub mod refusal;
pub mod rhythm;
pub mod route;
pub mod schedule;
pub mod size;
pub mod tags;
pub mod train;
pub mod window;

#[cfg(test)]
pub mod test_trains;
