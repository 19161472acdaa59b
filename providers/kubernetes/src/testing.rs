//! For tests against a real API server that has no kubelet or scheduler (the testbed's): a
//! stand-in kubelet that patches pod status, so that the real Job and Deployment controllers do
//! the rest (a Job completes or fails, a Deployment becomes available).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};

use crate::cluster::Cluster;
use crate::discovery::Target;

/// How the pods of one Job end.
#[derive(Clone, Debug, PartialEq)]
pub enum PodOutcome {
    /// Every container exits 0.
    Succeed,
    /// The first container exits 1 with this reason and message.
    Fail { reason: String, message: String },
}

/// Plays the kubelet for one namespace until dropped: Job pods (label `job-name`) end as told
/// (default: succeed); every other pod becomes Running and Ready.
pub struct FakeKubelet {
    task: tokio::task::JoinHandle<()>,
    outcomes: Arc<Mutex<HashMap<String, PodOutcome>>>,
    job_delay: Arc<Mutex<Duration>>,
}

impl FakeKubelet {
    pub fn start(cluster: Arc<Cluster>, namespace: &str) -> FakeKubelet {
        let outcomes: Arc<Mutex<HashMap<String, PodOutcome>>> = Arc::default();
        let job_delay: Arc<Mutex<Duration>> = Arc::default();
        let (shared, delay) = (outcomes.clone(), job_delay.clone());
        let namespace = namespace.to_string();
        let task = tokio::spawn(async move {
            let mut first_seen: HashMap<String, Instant> = HashMap::new();
            loop {
                if let Ok(pods) = cluster.list(&Target::pods(), Some(&namespace), "").await {
                    for pod in pods {
                        let uid = pod.pointer("/metadata/uid").and_then(Json::as_str).unwrap_or_default().to_string();
                        let seen = *first_seen.entry(uid).or_insert_with(Instant::now);
                        let job = pod.pointer("/metadata/labels/job-name").and_then(Json::as_str);
                        let hold = delay.lock().map(|d| *d).unwrap_or_default();
                        if job.is_some() && seen.elapsed() < hold {
                            continue;
                        }
                        let outcome = job.map(|job| shared.lock().ok().and_then(|o| o.get(job).cloned()).unwrap_or(PodOutcome::Succeed));
                        if let Some(patch) = status_patch(&pod, outcome.as_ref()) {
                            let name = pod.pointer("/metadata/name").and_then(Json::as_str).unwrap_or_default();
                            if let Err(e) = cluster.patch_status(&Target::pods(), Some(&namespace), name, &patch).await {
                                tracing::debug!("fake kubelet: pod {namespace}/{name}: {e}");
                            }
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        FakeKubelet { task, outcomes, job_delay }
    }

    /// Job pods run at least this long before they end (default: they end at once).
    pub fn delay_jobs(&self, delay: Duration) {
        if let Ok(mut d) = self.job_delay.lock() {
            *d = delay;
        }
    }

    /// Makes the pods of `job` succeed again (after [`fail_job`](Self::fail_job)).
    pub fn succeed_job(&self, job: &str) {
        if let Ok(mut outcomes) = self.outcomes.lock() {
            outcomes.remove(job);
        }
    }

    /// Makes the pods of `job` fail with `reason` and `message`.
    pub fn fail_job(&self, job: &str, reason: &str, message: &str) {
        if let Ok(mut outcomes) = self.outcomes.lock() {
            outcomes.insert(job.to_string(), PodOutcome::Fail { reason: reason.to_string(), message: message.to_string() });
        }
    }
}

impl Drop for FakeKubelet {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn now() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    // RFC 3339 in UTC from seconds since the epoch (civil-from-days).
    let days = secs / 86_400;
    let (h, m, s) = ((secs % 86_400) / 3600, (secs % 3600) / 60, secs % 60);
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z")
}

/// The status a kubelet would report next for `pod`, or `None` when it already has it.
fn status_patch(pod: &Json, job_outcome: Option<&PodOutcome>) -> Option<Json> {
    if pod.pointer("/metadata/deletionTimestamp").is_some() {
        return None;
    }
    let phase = pod.pointer("/status/phase").and_then(Json::as_str).unwrap_or("Pending");
    let containers: Vec<(String, String)> = pod
        .pointer("/spec/containers")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .map(|c| {
            let field = |k: &str| c.get(k).and_then(Json::as_str).unwrap_or_default().to_string();
            (field("name"), field("image"))
        })
        .collect();
    let time = now();
    match job_outcome {
        Some(_) if matches!(phase, "Succeeded" | "Failed") => None,
        Some(outcome) => {
            let (phase, code, reason, message) = match outcome {
                PodOutcome::Succeed => ("Succeeded", 0, "Completed".to_string(), String::new()),
                PodOutcome::Fail { reason, message } => ("Failed", 1, reason.clone(), message.clone()),
            };
            let statuses: Vec<Json> = containers
                .iter()
                .enumerate()
                .map(|(i, (name, image))| {
                    let (code, reason, message) = if i == 0 { (code, reason.as_str(), message.as_str()) } else { (0, "Completed", "") };
                    json!({"name": name, "image": image, "imageID": "", "ready": false, "restartCount": 0,
                           "state": {"terminated": {"exitCode": code, "reason": reason, "message": message, "startedAt": time, "finishedAt": time}}})
                })
                .collect();
            Some(json!({"status": {"phase": phase, "startTime": time, "containerStatuses": statuses}}))
        }
        None => {
            let ready = pod
                .pointer("/status/conditions")
                .and_then(Json::as_array)
                .is_some_and(|c| c.iter().any(|c| c.get("type") == Some(&json!("Ready")) && c.get("status") == Some(&json!("True"))));
            if phase == "Running" && ready {
                return None;
            }
            let statuses: Vec<Json> = containers
                .iter()
                .map(|(name, image)| {
                    json!({"name": name, "image": image, "imageID": "", "ready": true, "started": true, "restartCount": 0,
                           "state": {"running": {"startedAt": time}}})
                })
                .collect();
            Some(json!({"status": {
                "phase": "Running", "startTime": time, "containerStatuses": statuses,
                "conditions": [
                    {"type": "Ready", "status": "True", "lastTransitionTime": time},
                    {"type": "ContainersReady", "status": "True", "lastTransitionTime": time}
                ]
            }}))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patches_pods_once() {
        let pending =
            json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "web", "image": "edx:1"}]}, "status": {"phase": "Pending"}});
        let patch = status_patch(&pending, None).unwrap();
        assert_eq!(patch.pointer("/status/phase"), Some(&json!("Running")));
        let mut running = pending.clone();
        running["status"] = patch["status"].clone();
        assert!(status_patch(&running, None).is_none());
        let failing = PodOutcome::Fail { reason: "Error".into(), message: "boom".into() };
        let patch = status_patch(&pending, Some(&failing)).unwrap();
        assert_eq!(patch.pointer("/status/containerStatuses/0/state/terminated/message"), Some(&json!("boom")));
        assert!(now().ends_with('Z') && now().len() == 20, "{}", now());
    }
}
