//! The Open edX (edxapp) components and stack program.

pub mod bundle;
pub mod config;
