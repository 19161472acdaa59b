//! berth's engine: the generic infrastructure-as-code core.
//!
//! A stack program registers typed [`Resource`]s through a [`Stack`]; their inputs may hold
//! [`Output`]s of other resources, each one a dependency edge. The engine builds the desired
//! [`DesiredGraph`], [`plan`]s it against the stack's [`State`], and [`apply`]s the plan with a
//! bounded-parallel DAG executor that journals every mutating call. Providers implement
//! [`Provider`] (usually through the typed [`ResourceProvider`] and [`Package`]).
//!
//! The engine knows nothing of AWS, Kubernetes, Vault or Open edX.

pub mod apply;
pub mod config;
pub mod crypto;
pub mod diff;
pub mod discover;
pub mod graph;
pub mod import;
mod introspect;
pub mod ops;
pub mod output;
pub mod plan;
pub mod program;
pub mod project;
pub mod provider;
pub mod references;
pub mod refresh;
pub mod registry;
pub mod render;
pub mod resource;
pub mod secret;
pub mod state;
pub mod typed;
pub mod urn;
pub mod value;

pub use apply::{ApplyObserver, ApplyOptions, ApplyReport, StepStatus, apply};
pub use diff::{DiffKind, FieldDiff, default_diff, diff_values};
pub use graph::{DesiredGraph, GraphError};
pub use output::{Input, Output};
pub use plan::{Op, Plan, PlanError, PlanOptions, Step, plan};
pub use program::{ComponentHandle, DynamicHandle, Program, ProgramResult, ResourceHandle, Stack, StackReference};
pub use provider::{CallContext, CheckFailure, Checked, Created, DiffResponse, ErrorKind, Observed, Provider, ProviderError};
pub use registry::Providers;
pub use resource::{Alias, CustomTimeouts, DependsOn, Options, Resource};
pub use secret::Secret;
pub use state::State;
pub use typed::{Package, ResourceProvider, TypedCreated, TypedObserved};
pub use urn::Urn;
pub use value::{Path, Value};

/// Re-exported for resource authors.
pub use async_trait::async_trait;
