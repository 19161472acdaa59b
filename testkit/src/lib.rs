//! Test fixtures for berth's engine, used by the interruption and lock tests and the benchmarks:
//!
//! - the `test` provider: a "cloud" kept in a directory (so it survives the berth process being
//!   killed), with ids the cloud assigns (like EC2 or RDS), a `berth:urn` tag to find a
//!   resource an interrupted create left behind, an append-only log of every call, and an
//!   optional per-call latency;
//! - the `synthetic` program: a random (seeded) dependency graph of `test:index:Node`s.
//!
//! Not product features: they exist to test and measure the engine.

pub mod cloud;
pub mod synthetic;

pub use cloud::{CloudDir, TestPlugin};
pub use synthetic::synthetic;
