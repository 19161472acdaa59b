//! Await: a create or update returns when the object is usable: a Deployment rolled out, a Job
//! complete, a CRD established; a delete returns when the object is gone. Each wait has a limit
//! (the resource's `custom_timeouts`, or a default) and says what it was waiting for.

use std::time::{Duration, Instant};

use berth_engine::ProviderError;
use serde_json::Value as Json;

use crate::cluster::{Change, Cluster, describe};
use crate::discovery::Target;

pub const DEFAULT_ROLLOUT_TIMEOUT: Duration = Duration::from_secs(600);
pub const DEFAULT_JOB_TIMEOUT: Duration = Duration::from_secs(1800);
pub const DEFAULT_CRD_TIMEOUT: Duration = Duration::from_secs(120);
pub const DEFAULT_DELETE_TIMEOUT: Duration = Duration::from_secs(600);
/// How many log lines of a failed Job's pod an error shows.
const LOG_TAIL_LINES: i64 = 20;

/// When to stop waiting. A custom timeout is shortened a little so that berth's own message,
/// which says what it waited for, wins the race against the engine's enforcement of the limit.
#[derive(Clone, Copy, Debug)]
pub struct Deadline {
    until: Instant,
    limit: Duration,
}

impl Deadline {
    pub fn new(custom: Option<Duration>, default: Duration) -> Deadline {
        let limit = match custom {
            Some(limit) => limit.saturating_sub((limit / 10).clamp(Duration::from_millis(500), Duration::from_secs(2)).min(limit / 2)),
            None => default,
        };
        Deadline { until: Instant::now() + limit, limit }
    }

    pub fn expired(&self) -> bool {
        Instant::now() >= self.until
    }

    /// Time left, at least a moment (so a last look happens after expiry).
    pub fn remaining(&self) -> Duration {
        self.until.saturating_duration_since(Instant::now()).max(Duration::from_millis(50))
    }

    pub fn limit(&self) -> String {
        humantime::format_duration(Duration::from_secs(self.limit.as_secs().max(1))).to_string()
    }
}

/// Why a wait ended without success.
#[derive(Debug)]
pub enum AwaitError {
    /// The object reached a state it will not recover from (a failed Job).
    Failed(String),
    /// The limit passed first.
    TimedOut(String),
    /// A request failed.
    Api(ProviderError),
}

impl AwaitError {
    pub fn into_provider_error(self) -> ProviderError {
        match self {
            AwaitError::Failed(message) => ProviderError::api("Failed", message),
            AwaitError::TimedOut(message) => ProviderError::timeout(message),
            AwaitError::Api(e) => e,
        }
    }
}

/// Polls quickly at first, then every 2 s.
struct Pacer(u32);

impl Pacer {
    /// Sleeps until the next look, never past the deadline.
    async fn wait(&mut self, deadline: &Deadline) {
        self.0 += 1;
        let ms = match self.0 {
            0..10 => 250,
            10..30 => 1000,
            _ => 2000,
        };
        tokio::time::sleep(Duration::from_millis(ms).min(deadline.remaining())).await;
    }
}

fn int(value: &Json, pointer: &str) -> i64 {
    value.pointer(pointer).and_then(Json::as_i64).unwrap_or(0)
}

fn condition<'a>(object: &'a Json, kind: &str) -> Option<&'a Json> {
    object.pointer("/status/conditions")?.as_array()?.iter().find(|c| c.get("type").and_then(Json::as_str) == Some(kind))
}

fn condition_true(object: &Json, kind: &str) -> bool {
    condition(object, kind).and_then(|c| c.get("status")).and_then(Json::as_str) == Some("True")
}

fn text<'a>(value: &'a Json, key: &str) -> &'a str {
    value.get(key).and_then(Json::as_str).unwrap_or("")
}

/// What a Deployment still lacks, or `Ok(None)` when it is rolled out (kubectl rollout status).
pub fn rollout_pending(deployment: &Json) -> Result<Option<String>, String> {
    let generation = int(deployment, "/metadata/generation");
    let observed = int(deployment, "/status/observedGeneration");
    if observed < generation {
        return Ok(Some(format!("the controller to observe generation {generation} (it has seen {observed})")));
    }
    if let Some(progressing) = condition(deployment, "Progressing")
        && text(progressing, "reason") == "ProgressDeadlineExceeded"
    {
        return Err(format!("its rollout exceeded its progress deadline: {}", text(progressing, "message")));
    }
    let wanted = deployment.pointer("/spec/replicas").and_then(Json::as_i64).unwrap_or(1);
    let updated = int(deployment, "/status/updatedReplicas");
    let total = int(deployment, "/status/replicas");
    let available = int(deployment, "/status/availableReplicas");
    if updated < wanted {
        return Ok(Some(format!("{updated} of {wanted} replicas updated")));
    }
    if total > updated {
        return Ok(Some(format!("{} old replicas to terminate", total - updated)));
    }
    if available < updated {
        return Ok(Some(format!("{available} of {updated} updated replicas available")));
    }
    Ok(None)
}

/// A label selector string from `spec.selector.matchLabels`.
fn selector_of(object: &Json) -> Option<String> {
    let labels = object.pointer("/spec/selector/matchLabels")?.as_object()?;
    let parts: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect();
    (!parts.is_empty()).then(|| parts.join(","))
}

/// One line about a pod: phase, and why it is not running or failed.
fn pod_summary(pod: &Json) -> String {
    let name = pod.pointer("/metadata/name").and_then(Json::as_str).unwrap_or("?");
    let phase = pod.pointer("/status/phase").and_then(Json::as_str).unwrap_or("Unknown");
    let mut details = Vec::new();
    let reason = pod.pointer("/status/reason").and_then(Json::as_str).unwrap_or("");
    let message = pod.pointer("/status/message").and_then(Json::as_str).unwrap_or("");
    if !reason.is_empty() || !message.is_empty() {
        details.push(format!("{reason} {message}").trim().to_string());
    }
    for status in pod.pointer("/status/containerStatuses").and_then(Json::as_array).into_iter().flatten() {
        let container = text(status, "name");
        if let Some(terminated) = status.pointer("/state/terminated") {
            let code = terminated.get("exitCode").and_then(Json::as_i64).unwrap_or(0);
            if code != 0 || phase == "Failed" {
                let mut line = format!("container `{container}` exited with code {code}");
                let why = text(terminated, "reason");
                if !why.is_empty() {
                    line.push_str(&format!(" ({why})"));
                }
                let said = text(terminated, "message");
                if !said.is_empty() {
                    line.push_str(&format!(": {said}"));
                }
                details.push(line);
            }
        } else if let Some(waiting) = status.pointer("/state/waiting") {
            details.push(
                format!("container `{container}` waiting: {} {}", text(waiting, "reason"), text(waiting, "message")).trim().to_string(),
            );
        }
    }
    if phase == "Pending" && pod.pointer("/spec/nodeName").is_none() && details.is_empty() {
        details.push("not scheduled to a node".into());
    }
    if details.is_empty() { format!("pod {name}: {phase}") } else { format!("pod {name}: {phase}; {}", details.join("; ")) }
}

async fn pods_of(cluster: &Cluster, namespace: Option<&str>, owner: &Json) -> Vec<Json> {
    let Some(selector) = selector_of(owner) else { return Vec::new() };
    cluster.list(&Target::pods(), namespace, &selector).await.unwrap_or_default()
}

/// Waits until a Deployment is rolled out.
pub async fn deployment_rollout(
    cluster: &Cluster,
    target: &Target,
    namespace: Option<&str>,
    name: &str,
    deadline: Deadline,
) -> Result<Json, AwaitError> {
    let what = describe(&target.kind, namespace, name);
    let mut pacer = Pacer(0);
    loop {
        let live = cluster.get(target, namespace, name).await.map_err(AwaitError::Api)?;
        let Some(live) = live else { return Err(AwaitError::Failed(format!("{what} was deleted while berth waited for its rollout"))) };
        let pending = match rollout_pending(&live) {
            Ok(None) => return Ok(live),
            Ok(Some(pending)) => pending,
            Err(failure) => return Err(AwaitError::Failed(format!("{what}: {failure}{}", pods_line(cluster, namespace, &live).await))),
        };
        if deadline.expired() {
            return Err(AwaitError::TimedOut(format!(
                "{what} did not roll out within {}: waiting for {pending}{}",
                deadline.limit(),
                pods_line(cluster, namespace, &live).await
            )));
        }
        pacer.wait(&deadline).await;
    }
}

async fn pods_line(cluster: &Cluster, namespace: Option<&str>, owner: &Json) -> String {
    let pods = pods_of(cluster, namespace, owner).await;
    if pods.is_empty() {
        return String::new();
    }
    let lines: Vec<String> = pods.iter().take(5).map(pod_summary).collect();
    format!("; {}", lines.join("; "))
}

/// Waits until a Job completes; a failed Job is an error that names the failing pod's reason
/// and, where the cluster can serve logs, the tail of its log.
///
/// It follows the Job's changes from the object as applied (a watch from its resource
/// version), not by polling: a Job that `ttlSecondsAfterFinished` removes the moment it
/// finishes — even before berth's first look — is still seen finished, in the delete event's
/// record of its last state.
pub async fn job_completion(
    cluster: &Cluster,
    target: &Target,
    namespace: Option<&str>,
    name: &str,
    applied: Json,
    deadline: Deadline,
) -> Result<Json, AwaitError> {
    let what = describe("Job", namespace, name);
    let deleted = || AwaitError::Failed(format!("{what} was deleted while berth waited for it to complete"));
    let mut pacer = Pacer(0);
    let mut current = applied;
    loop {
        if let Some(done) = job_finished(cluster, namespace, &what, &current).await {
            return done;
        }
        if deadline.expired() {
            let live = cluster.get(target, namespace, name).await.map_err(AwaitError::Api)?.unwrap_or(current);
            return Err(AwaitError::TimedOut(format!(
                "{what} did not complete within {}: {} active, {} succeeded, {} failed pods{}",
                deadline.limit(),
                int(&live, "/status/active"),
                int(&live, "/status/succeeded"),
                int(&live, "/status/failed"),
                pods_line(cluster, namespace, &live).await
            )));
        }
        let version = current.pointer("/metadata/resourceVersion").and_then(Json::as_str).unwrap_or_default().to_string();
        let wait = deadline.remaining().min(Duration::from_secs(30));
        current = match cluster.next_change(target, namespace, name, &version, wait).await {
            Ok(Some(Change::Modified(object))) => object,
            Ok(Some(Change::Deleted(last))) => {
                return job_finished(cluster, namespace, &what, &last).await.unwrap_or_else(|| Err(deleted()));
            }
            // Nothing within the wait, or the watch cannot resume from that version: look again.
            Ok(None) => cluster.get(target, namespace, name).await.map_err(AwaitError::Api)?.ok_or_else(deleted)?,
            Err(e) => {
                // Watching is an optimisation; polling still works.
                tracing::debug!("{what}: cannot watch, polling instead: {e}");
                pacer.wait(&deadline).await;
                cluster.get(target, namespace, name).await.map_err(AwaitError::Api)?.ok_or_else(deleted)?
            }
        };
    }
}

/// `Some` once a Job (live, or its last state) has finished: its object when it completed (or
/// is suspended), the failure with its pods' reasons when it failed.
async fn job_finished(cluster: &Cluster, namespace: Option<&str>, what: &str, job: &Json) -> Option<Result<Json, AwaitError>> {
    if condition_true(job, "Complete") || job.pointer("/spec/suspend").and_then(Json::as_bool) == Some(true) {
        return Some(Ok(job.clone()));
    }
    let failed = condition(job, "Failed").filter(|c| text(c, "status") == "True")?;
    let mut message = format!("{what} failed: {}", text(failed, "reason"));
    let said = text(failed, "message");
    if !said.is_empty() {
        message.push_str(&format!(" ({said})"));
    }
    message.push_str(&failed_pods(cluster, namespace, job).await);
    Some(Err(AwaitError::Failed(message)))
}

/// The failed pods of a Job, each with its reason and log tail.
async fn failed_pods(cluster: &Cluster, namespace: Option<&str>, job: &Json) -> String {
    let pods = pods_of(cluster, namespace, job).await;
    let failed: Vec<&Json> = pods.iter().filter(|p| p.pointer("/status/phase").and_then(Json::as_str) == Some("Failed")).collect();
    let mut out = String::new();
    for pod in failed.iter().take(3) {
        out.push_str("; ");
        out.push_str(&pod_summary(pod));
        let pod_name = pod.pointer("/metadata/name").and_then(Json::as_str).unwrap_or_default();
        let container = pod
            .pointer("/status/containerStatuses")
            .and_then(Json::as_array)
            .and_then(|s| s.iter().find(|c| c.pointer("/state/terminated/exitCode").and_then(Json::as_i64).unwrap_or(0) != 0))
            .and_then(|c| c.get("name"))
            .and_then(Json::as_str);
        if let Some(ns) = namespace {
            match cluster.log_tail(ns, pod_name, container, LOG_TAIL_LINES).await {
                Ok(log) if !log.trim().is_empty() => out.push_str(&format!("; last log lines:\n{}", log.trim_end())),
                Ok(_) => {}
                Err(e) => tracing::debug!("no log for pod {ns}/{pod_name}: {e}"),
            }
        }
    }
    if failed.is_empty() && !pods.is_empty() {
        out.push_str(&pods_line_of(&pods));
    }
    out
}

fn pods_line_of(pods: &[Json]) -> String {
    let lines: Vec<String> = pods.iter().take(5).map(pod_summary).collect();
    format!("; {}", lines.join("; "))
}

/// Waits until a CustomResourceDefinition is established (its kind can be served).
pub async fn crd_established(cluster: &Cluster, target: &Target, name: &str, deadline: Deadline) -> Result<Json, AwaitError> {
    let what = describe("CustomResourceDefinition", None, name);
    let mut pacer = Pacer(0);
    loop {
        let live = cluster.get(target, None, name).await.map_err(AwaitError::Api)?;
        let Some(live) = live else { return Err(AwaitError::Failed(format!("{what} was deleted while berth waited for it"))) };
        if condition_true(&live, "Established") {
            return Ok(live);
        }
        if let Some(names) = condition(&live, "NamesAccepted").filter(|c| text(c, "status") == "False") {
            return Err(AwaitError::Failed(format!("{what}: its names were not accepted: {}", text(names, "message"))));
        }
        if deadline.expired() {
            return Err(AwaitError::TimedOut(format!("{what} was not established within {}", deadline.limit())));
        }
        pacer.wait(&deadline).await;
    }
}

/// Waits until the object with `uid` is gone (a new object of the same name does not count).
pub async fn gone(
    cluster: &Cluster,
    target: &Target,
    namespace: Option<&str>,
    name: &str,
    uid: &str,
    deadline: Deadline,
) -> Result<(), AwaitError> {
    let what = describe(&target.kind, namespace, name);
    let mut pacer = Pacer(0);
    loop {
        let live = cluster.get(target, namespace, name).await.map_err(AwaitError::Api)?;
        let Some(live) = live.filter(|l| l.pointer("/metadata/uid").and_then(Json::as_str) == Some(uid)) else { return Ok(()) };
        if deadline.expired() {
            let finalizers: Vec<&str> =
                live.pointer("/metadata/finalizers").and_then(Json::as_array).into_iter().flatten().filter_map(Json::as_str).collect();
            let mut message = format!("{what} was not gone within {}", deadline.limit());
            if !finalizers.is_empty() {
                message.push_str(&format!("; finalizers still pending: {}", finalizers.join(", ")));
            }
            let conditions: Vec<String> = live
                .pointer("/status/conditions")
                .and_then(Json::as_array)
                .into_iter()
                .flatten()
                .filter(|c| text(c, "status") == "True")
                .map(|c| format!("{}: {}", text(c, "type"), text(c, "message")))
                .collect();
            if !conditions.is_empty() {
                message.push_str(&format!("; {}", conditions.join("; ")));
            }
            return Err(AwaitError::TimedOut(message));
        }
        pacer.wait(&deadline).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rollout_status_follows_kubectl() {
        let base = |status: Json| json!({"metadata": {"generation": 2}, "spec": {"replicas": 2}, "status": status});
        assert!(rollout_pending(&base(json!({"observedGeneration": 1}))).unwrap().unwrap().contains("observe generation 2"));
        let updating = base(json!({"observedGeneration": 2, "updatedReplicas": 1, "replicas": 2}));
        assert_eq!(rollout_pending(&updating).unwrap().unwrap(), "1 of 2 replicas updated");
        let old = base(json!({"observedGeneration": 2, "updatedReplicas": 2, "replicas": 3}));
        assert_eq!(rollout_pending(&old).unwrap().unwrap(), "1 old replicas to terminate");
        let unavailable = base(json!({"observedGeneration": 2, "updatedReplicas": 2, "replicas": 2, "availableReplicas": 1}));
        assert_eq!(rollout_pending(&unavailable).unwrap().unwrap(), "1 of 2 updated replicas available");
        let done = base(json!({"observedGeneration": 2, "updatedReplicas": 2, "replicas": 2, "availableReplicas": 2}));
        assert_eq!(rollout_pending(&done).unwrap(), None);
        let stuck = base(json!({"observedGeneration": 2, "conditions": [
            {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "ReplicaSet \"web-1\" has timed out progressing."}
        ]}));
        assert!(rollout_pending(&stuck).unwrap_err().contains("timed out progressing"));
    }

    #[test]
    fn pod_summaries_say_why() {
        let failed = json!({"metadata": {"name": "migrate-x"}, "spec": {"nodeName": "n"}, "status": {"phase": "Failed", "containerStatuses": [
            {"name": "migrate", "state": {"terminated": {"exitCode": 1, "reason": "Error", "message": "table exists"}}}
        ]}});
        assert_eq!(pod_summary(&failed), "pod migrate-x: Failed; container `migrate` exited with code 1 (Error): table exists");
        let pending = json!({"metadata": {"name": "web-1"}, "status": {"phase": "Pending"}});
        assert_eq!(pod_summary(&pending), "pod web-1: Pending; not scheduled to a node");
        let pulling = json!({"metadata": {"name": "web-2"}, "spec": {"nodeName": "n"}, "status": {"phase": "Pending", "containerStatuses": [
            {"name": "web", "state": {"waiting": {"reason": "ImagePullBackOff", "message": "no such image"}}}
        ]}});
        assert_eq!(pod_summary(&pulling), "pod web-2: Pending; container `web` waiting: ImagePullBackOff no such image");
        assert_eq!(selector_of(&json!({"spec": {"selector": {"matchLabels": {"a": "1", "b": "2"}}}})).unwrap(), "a=1,b=2");
    }

    #[test]
    fn custom_timeouts_leave_room_for_berths_message() {
        let d = Deadline::new(Some(Duration::from_secs(10)), DEFAULT_ROLLOUT_TIMEOUT);
        assert_eq!(d.limit, Duration::from_secs(9));
        let d = Deadline::new(Some(Duration::from_secs(3)), DEFAULT_ROLLOUT_TIMEOUT);
        assert_eq!(d.limit, Duration::from_millis(2500));
        let d = Deadline::new(Some(Duration::from_secs(600)), DEFAULT_ROLLOUT_TIMEOUT);
        assert_eq!(d.limit, Duration::from_secs(598));
        assert_eq!(Deadline::new(None, DEFAULT_JOB_TIMEOUT).limit(), "30m");
    }
}
