//! Plan-time checks of the Kubernetes objects the program builds.

use std::collections::BTreeMap;

/// The workloads' pod labels and the Services' selectors, to check that every Service selects
/// the pods of exactly one workload. (A webapp Service that also selected the Celery pods
/// would send web traffic to workers that do not listen: it has happened.)
#[derive(Debug, Default)]
pub struct Workloads {
    workloads: Vec<(String, BTreeMap<String, String>)>,
    services: Vec<(String, BTreeMap<String, String>)>,
}

impl Workloads {
    pub fn add_workload(&mut self, name: &str, pod_labels: BTreeMap<String, String>) {
        self.workloads.push((name.to_string(), pod_labels));
    }

    pub fn add_service(&mut self, name: &str, selector: BTreeMap<String, String>) {
        self.services.push((name.to_string(), selector));
    }

    /// An error naming every Service that selects no workload's pods or more than one's.
    pub fn check(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        for (service, selector) in &self.services {
            let selected: Vec<&str> = self
                .workloads
                .iter()
                .filter(|(_, labels)| !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v)))
                .map(|(name, _)| name.as_str())
                .collect();
            match selected.len() {
                1 => {}
                0 => problems.push(format!("Service {service} selects no workload's pods (selector {selector:?})")),
                _ => problems.push(format!("Service {service} selects the pods of {} workloads: {} (selector {selector:?}); give each workload a unique component label", selected.len(), selected.join(", "))),
            }
        }
        if problems.is_empty() { Ok(()) } else { Err(problems.join("; ")) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn a_service_must_select_exactly_one_workload() {
        let mut w = Workloads::default();
        w.add_workload("web", labels(&[("app", "edxapp"), ("component", "lms-webapp")]));
        w.add_workload("celery", labels(&[("app", "edxapp"), ("component", "lms-celery")]));
        w.add_service("web", labels(&[("app", "edxapp"), ("component", "lms-webapp")]));
        assert!(w.check().is_ok());
        w.add_service("broad", labels(&[("app", "edxapp")]));
        let err = w.check().unwrap_err();
        assert!(err.contains("Service broad selects the pods of 2 workloads: web, celery"), "{err}");
    }
}
