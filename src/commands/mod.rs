//! One module per command group.

pub mod config;
pub mod stack;
pub mod state;
