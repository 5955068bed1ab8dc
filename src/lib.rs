//! trainbot: a ChatOps deploy bot. `domain` is pure; everything else is an
//! adapter or the engine that wires them.

pub mod chat;
pub mod cli;
pub mod config;
pub mod dispatch;
pub mod domain;
pub mod engine;
pub mod forge;
pub mod harden;
pub mod runner;
pub mod secrets;
pub mod store;
pub mod supervise;
pub mod web;
