//! The berth command line with the test fixtures: the `test` provider and the `synthetic`
//! program. Used by the interruption and lock tests and by the benchmarks.

use std::process::ExitCode;

// Plans allocate many small values; mimalloc is markedly faster at that than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::sync::Arc;

fn main() -> ExitCode {
    berth::App::new().program("synthetic", berth_testkit::synthetic).plugin(Arc::new(berth_testkit::TestPlugin)).run()
}
