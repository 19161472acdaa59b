//! berth's component resources and the stack programs that compose them.
//!
//! - [`demo`]: a small site made of built-in resources (a generated secret key, an id, rendered
//!   config files), runnable anywhere with no cloud; what `make demo` deploys.

pub mod cluster;
pub mod demo;
pub mod edxapp;
pub mod network;
