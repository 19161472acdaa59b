//! Plays the kubelet for one namespace of the testbed's API server, which has no kubelet: pods
//! become Running and Ready, Job pods succeed (or, with `--fail JOB_PREFIX=REASON`, fail), so the
//! real Job and Deployment controllers complete rollouts and Jobs. For `make demo` and the
//! end-to-end tests; stops on SIGTERM or Ctrl-C.
//!
//! Usage: berth-fake-kubelet NAMESPACE [--fail JOB_NAME_PREFIX=REASON]...
//! The cluster comes from KUBECONFIG (or ~/.kube/config).

use std::time::Duration;

use berth_provider_kubernetes::cluster::{ClusterSettings, Connection};
use berth_provider_kubernetes::testing::FakeKubelet;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let namespace = args.next().ok_or("usage: berth-fake-kubelet NAMESPACE [--fail JOB_NAME_PREFIX=REASON]...")?;
    let mut failing: Vec<(String, String)> = Vec::new();
    while let Some(arg) = args.next() {
        if arg == "--fail" {
            let spec = args.next().ok_or("--fail needs JOB_NAME_PREFIX=REASON")?;
            let (prefix, reason) = spec.split_once('=').ok_or("--fail needs JOB_NAME_PREFIX=REASON")?;
            failing.push((prefix.to_string(), reason.to_string()));
        } else {
            return Err(format!("unknown argument `{arg}`").into());
        }
    }
    let connection = Connection::new(ClusterSettings::default());
    let cluster = connection.get().await?;
    let kubelet = FakeKubelet::start(cluster.clone(), &namespace);
    eprintln!("fake kubelet: playing the kubelet for namespace {namespace} on {}", cluster.server);
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        // Job names carry a hash: match them by prefix as they appear.
        if !failing.is_empty() {
            let target = berth_provider_kubernetes::discovery::Target {
                group: "batch".into(),
                version: "v1".into(),
                kind: "Job".into(),
                plural: "jobs".into(),
                namespaced: true,
                negotiated_from: None,
            };
            if let Ok(jobs) = cluster.list(&target, Some(&namespace), "").await {
                for job in jobs {
                    let name = job.pointer("/metadata/name").and_then(|v| v.as_str()).unwrap_or_default();
                    if let Some((_, reason)) = failing.iter().find(|(prefix, _)| name.starts_with(prefix.as_str())) {
                        kubelet.fail_job(name, reason, &format!("{reason} (made to fail by berth-fake-kubelet)"));
                    }
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
        }
    }
    drop(kubelet);
    Ok(())
}
