use std::process::ExitCode;

fn main() -> ExitCode {
    berth::App::new().run()
}
