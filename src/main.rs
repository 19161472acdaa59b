use std::process::ExitCode;

// Plans allocate many small values; mimalloc is markedly faster at that than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    berth::App::new()
        .program("demo", berth_components::demo::demo)
        .program("edxapp", berth_components::edxapp::edxapp)
        .import_config("edxapp", |resources| {
            let resources: Vec<_> =
                resources.iter().map(|(ty, name, inputs)| berth_components::edxapp::adopt::ImportedResource { ty, name, inputs }).collect();
            berth_components::edxapp::adopt::imported_config(&resources)
        })
        .program("network", berth_components::network::network)
        .program("cluster", berth_components::cluster::cluster)
        .plugins(berth_provider_builtin::plugins())
        .plugin(berth_provider_aws::plugin())
        .backend(berth_provider_aws::backend_factory())
        .secrets_provider(berth_provider_aws::secrets_provider())
        .plugin(berth_provider_vault::plugin())
        .plugin(berth_provider_kubernetes::plugin())
        .run()
}
