//! What the `local` stack built, object by object, checked against the design of the original
//! program (docs/edxapp.md): the live objects as the API server and OpenBao hold them, not the
//! program's own view of them.

use std::collections::BTreeMap;
use std::process::Command;

use berth_components::edxapp::configuration::CELERY_BROKER_DB;
use berth_components::edxapp::vault::DATABASE_ROLES;
use berth_components::edxapp::workloads::CONFIG_HASH_ANNOTATION;
use berth_provider_kubernetes::kinds::Gvk;
use serde_json::Value as Json;

use super::{World, env};

impl World {
    /// Every Kubernetes object the `local` stack holds, by kind.
    async fn objects_by_kind(&self) -> BTreeMap<String, Vec<Json>> {
        let mut by_kind: BTreeMap<String, Vec<Json>> = BTreeMap::new();
        for (ty, id, object) in self.live_objects(Some("local")).await {
            let object = object.unwrap_or_else(|| panic!("{ty} {id} is in state but not in the cluster"));
            by_kind.entry(Gvk::from_token(&ty).unwrap().kind).or_default().push(object);
        }
        by_kind
    }

    /// The `local` stack's objects are what docs/edxapp.md says: webapps with probes, preStop,
    /// resources and anti-affinity; HPAs on CPU and memory; KEDA on the Celery queue with the
    /// password in a Secret; TLS routes for the three domains and an http→https redirect; the
    /// shared volume; the scheduled-emails worker; waffle flags after Studio's migrations; and
    /// every database role in OpenBao.
    pub async fn assert_built_as_designed(&self) {
        let objects = self.objects_by_kind().await;
        let of = |kind: &str| objects.get(kind).cloned().unwrap_or_default();
        let name = |o: &Json| o["metadata"]["name"].as_str().unwrap().to_string();

        let deployments = of("Deployment");
        let webapps: Vec<&Json> = deployments.iter().filter(|d| name(d).ends_with("-webapp")).collect();
        assert_eq!(webapps.len(), 2, "LMS and Studio webapps: {:?}", deployments.iter().map(name).collect::<Vec<_>>());
        for webapp in &webapps {
            let pod = &webapp["spec"]["template"]["spec"];
            let main = &pod["containers"][0];
            for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
                assert!(main[probe].is_object(), "{} has a {probe}", name(webapp));
            }
            assert_eq!(main["readinessProbe"]["httpGet"]["path"], "/heartbeat", "{}", name(webapp));
            assert!(main["lifecycle"]["preStop"].is_object(), "{} drains before it stops", name(webapp));
            assert!(
                main["resources"]["requests"]["cpu"].is_string() && main["resources"]["limits"]["memory"].is_string(),
                "{}",
                name(webapp)
            );
            assert!(pod["affinity"]["podAntiAffinity"].is_object(), "{} spreads over nodes", name(webapp));
            let init: Vec<String> = pod["initContainers"].as_array().unwrap().iter().map(name_of).collect();
            assert!(init.contains(&"config-aggregator".to_string()), "{}: {init:?}", name(webapp));
        }
        assert!(deployments.iter().any(|d| name(d).ends_with("-scheduled-emails")), "the scheduled-emails worker");
        for deployment in &deployments {
            let hash = &deployment["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH_ANNOTATION];
            assert!(hash.as_str().is_some_and(|h| h.len() == 16), "{} carries its configuration's hash: {hash}", name(deployment));
        }
        // The Vault Secrets Operator restarts the Deployments that read a secret fragment when
        // Vault's values change; every target exists.
        let deployment_names: Vec<String> = deployments.iter().map(name).collect();
        let synced: Vec<Json> = [of("VaultStaticSecret"), of("VaultDynamicSecret")].concat();
        assert_eq!(synced.len(), 7, "00, 01, 02, 03, 10, 70, 80");
        for secret in &synced {
            let targets = secret["spec"]["rolloutRestartTargets"].as_array().unwrap_or_else(|| panic!("{} restarts nothing", name(secret)));
            assert!(!targets.is_empty());
            for target in targets {
                assert!(deployment_names.iter().any(|d| target["name"] == d.as_str()), "{} restarts {target}, which exists", name(secret));
            }
        }
        let components: Vec<&Json> =
            deployments.iter().map(|d| &d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]).collect();
        let mut unique = components.clone();
        unique.sort_by_key(|c| c.to_string());
        unique.dedup();
        assert_eq!(unique.len(), deployments.len(), "every Deployment has its own component label: {components:?}");

        // Security groups for pods: one policy giving the pod group to every edxapp pod of the
        // environment, Jobs included (migrations reach the database through it).
        let policies = of("SecurityGroupPolicy");
        assert_eq!(policies.len(), 1);
        let pod_group = webapps[0]["spec"]["template"]["metadata"]["labels"]["vpc.amazonaws.com/pod-security-group"].as_str().unwrap();
        assert!(pod_group.starts_with("sg-"), "{pod_group}");
        assert_eq!(policies[0]["spec"]["securityGroups"]["groupIds"], serde_json::json!([pod_group]));
        let selector = policies[0]["spec"]["podSelector"]["matchLabels"].as_object().unwrap();
        let selected = |template: &Json| selector.iter().all(|(k, v)| template["metadata"]["labels"][k] == *v);
        for workload in deployments.iter().chain(of("Job").iter()) {
            assert!(selected(&workload["spec"]["template"]), "the policy selects the pods of {}", name(workload));
        }

        let hpas = of("HorizontalPodAutoscaler");
        assert_eq!(hpas.len(), 2);
        for hpa in &hpas {
            let mut metrics: Vec<&str> =
                hpa["spec"]["metrics"].as_array().unwrap().iter().map(|m| m["resource"]["name"].as_str().unwrap()).collect();
            metrics.sort();
            assert_eq!(metrics, ["cpu", "memory"], "{}", name(hpa));
        }
        for pdb in of("PodDisruptionBudget") {
            assert_eq!(pdb["spec"]["maxUnavailable"], 1, "{}: one pod at a time, drains never blocked", name(&pdb));
        }

        // KEDA: the Celery queue in the broker's database, authenticated through a Secret.
        let scalers = of("ScaledObject");
        assert_eq!(scalers.len(), 2);
        let auths = of("TriggerAuthentication");
        let secrets: Vec<String> = of("Secret").iter().map(name).collect();
        for scaler in &scalers {
            let trigger = &scaler["spec"]["triggers"][0];
            assert_eq!(trigger["type"], "redis");
            assert!(trigger["metadata"]["listName"].as_str().unwrap().ends_with(".core.default"), "{trigger}");
            assert_eq!(trigger["metadata"]["databaseIndex"], CELERY_BROKER_DB.to_string(), "KEDA watches the broker's database");
            assert!(trigger["metadata"].get("password").is_none(), "no password inline: {trigger}");
            let auth_name = trigger["authenticationRef"]["name"].as_str().unwrap();
            let auth = auths.iter().find(|a| name(a) == auth_name).unwrap_or_else(|| panic!("TriggerAuthentication {auth_name}"));
            let secret = auth["spec"]["secretTargetRef"][0]["name"].as_str().unwrap();
            assert!(secrets.iter().any(|s| s == secret), "{auth_name} reads Secret {secret}, which the stack holds");
        }

        // Routes: TLS listeners for the three domains, a route each, and the redirect.
        let gateways = of("Gateway");
        assert_eq!(gateways.len(), 1);
        let listeners = gateways[0]["spec"]["listeners"].as_array().unwrap();
        for host in ["lms.local.test", "studio.local.test", "preview.local.test"] {
            let listener = listeners.iter().find(|l| l["hostname"] == host).unwrap_or_else(|| panic!("a listener for {host}"));
            assert_eq!(listener["protocol"], "HTTPS");
            assert!(listener["tls"]["certificateRefs"][0]["name"].is_string(), "{host} has a certificate");
        }
        let routes = of("HTTPRoute");
        let redirects: Vec<&Json> =
            routes.iter().filter(|r| r["spec"]["rules"][0]["filters"][0]["requestRedirect"]["scheme"] == "https").collect();
        assert_eq!(redirects.len(), 1, "one http→https redirect");
        assert_eq!(redirects[0]["spec"]["rules"][0]["filters"][0]["requestRedirect"]["statusCode"], 301);
        assert_eq!(redirects[0]["spec"]["hostnames"].as_array().unwrap().len(), 3);
        assert_eq!(routes.len(), 4, "a route per domain plus the redirect");
        // The API server filled in the CRD's schema defaults (which the no-op `up` and the
        // refreshing previews then must not report as drift).
        let lms = routes.iter().find(|r| r["spec"]["hostnames"] == serde_json::json!(["lms.local.test"])).expect("the LMS route");
        assert_eq!(lms["spec"]["parentRefs"][0]["kind"], "Gateway", "{}", lms["spec"]);
        assert_eq!(lms["spec"]["rules"][0]["matches"][0]["path"]["type"], "PathPrefix", "{}", lms["spec"]);
        assert_eq!(lms["spec"]["rules"][0]["backendRefs"][0]["kind"], "Service", "{}", lms["spec"]);
        assert_eq!(listeners[1]["allowedRoutes"]["namespaces"]["from"], "Same", "{}", gateways[0]["spec"]);

        let claims = of("PersistentVolumeClaim");
        assert_eq!(claims.len(), 1);
        assert_eq!(claims[0]["spec"]["accessModes"][0], "ReadWriteMany", "/openedx/data is shared by every pod");

        // The pre-deploy Jobs ran one after the other: LMS, then Studio, then the waffle flags.
        let jobs = of("Job");
        let time = |purpose: &str, field: &str| -> String {
            let job = jobs.iter().find(|j| name(j).contains(purpose)).unwrap_or_else(|| panic!("a {purpose} Job"));
            let at = if field == "created" { &job["metadata"]["creationTimestamp"] } else { &job["status"]["completionTime"] };
            at.as_str().unwrap_or_else(|| panic!("{purpose} has no {field} time: {}", job["status"])).to_string()
        };
        assert!(time("-cms-migrate-", "created") >= time("-lms-migrate-", "completed"), "Studio migrations after the LMS's");
        assert!(time("-waffle-flags-", "created") >= time("-cms-migrate-", "completed"), "waffle flags after Studio's migrations");

        // Every database role exists in OpenBao, on the deployment's database mount.
        let out = Command::new(env("BERTH_BAO"))
            .args(["list", "-format=json", &format!("mariadb-{}/roles", self.id)])
            .env("VAULT_ADDR", env("VAULT_ADDR"))
            .env("VAULT_TOKEN", env("VAULT_TOKEN"))
            .output()
            .unwrap();
        assert!(out.status.success(), "bao list roles: {}", String::from_utf8_lossy(&out.stderr));
        let mut listed: Vec<String> = serde_json::from_slice(&out.stdout).unwrap();
        listed.sort();
        let mut expected: Vec<String> = DATABASE_ROLES.iter().map(|(role, _)| role.to_string()).collect();
        expected.sort();
        assert_eq!(listed, expected);
    }
}

fn name_of(container: &Json) -> String {
    container["name"].as_str().unwrap_or_default().to_string()
}
