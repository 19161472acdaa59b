use std::process::ExitCode;

fn main() -> ExitCode {
    berth::App::new().program("demo", berth_components::demo::demo).plugins(berth_provider_builtin::plugins()).run()
}
