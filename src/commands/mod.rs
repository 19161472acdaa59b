//! One module per command group.

pub mod config;
pub mod import;
pub mod render;
pub mod stack;
pub mod state;
