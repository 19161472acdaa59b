//! The workloads: the shared `/openedx/data` volume, the pre-deploy Jobs (migrations, waffle
//! flags), and per service a webapp (Deployment, Service, HPA, PodDisruptionBudget) and a Celery
//! worker (Deployment, KEDA ScaledObject authenticated through a TriggerAuthentication and a
//! Secret), plus the scheduled-emails worker.

use std::collections::BTreeMap;

use berth_engine::{DependsOn, Input, Options, Output, ProgramResult, Secret, Stack};
use berth_provider_kubernetes::k8s_openapi::api::apps::v1::DeploymentSpec;
use berth_provider_kubernetes::k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HPAScalingPolicy, HPAScalingRules, HorizontalPodAutoscalerBehavior, HorizontalPodAutoscalerSpec,
    MetricSpec, MetricTarget, ResourceMetricSource,
};
use berth_provider_kubernetes::k8s_openapi::api::batch::v1::JobSpec;
use berth_provider_kubernetes::k8s_openapi::api::core::v1::{
    Affinity, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, ExecAction, HTTPGetAction, Lifecycle,
    LifecycleHandler, PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource, PodAffinityTerm, PodAntiAffinity, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, SecretVolumeSource, ServicePort, ServiceSpec, TCPSocketAction, Volume, VolumeMount,
    VolumeResourceRequirements, WeightedPodAffinityTerm,
};
use berth_provider_kubernetes::k8s_openapi::api::policy::v1::PodDisruptionBudgetSpec;
use berth_provider_kubernetes::k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use berth_provider_kubernetes::k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use berth_provider_kubernetes::k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use berth_provider_kubernetes::{
    Deployment, HorizontalPodAutoscaler, Job, PersistentVolumeClaim, PodDisruptionBudget, Service as K8sService,
};
use serde_json::json;

use crate::edxapp::aws::{Cache, Groups};
use crate::edxapp::checks::Workloads;
use crate::edxapp::config::Workload;
use crate::edxapp::configuration::{Bundles, CELERY_BROKER_DB, Carrier};
use crate::edxapp::identity::Identity;
use crate::edxapp::kube::{self, KEDA};
use crate::edxapp::{Ctx, SERVICES, Service, short_hash};

const CONFIG_SOURCES: &str = "/openedx/config-sources";

/// The volume of the shared data claim.
fn data_claim(ctx: &Ctx) -> String {
    format!("{}-openedx-data-pvc", ctx.env_name)
}

/// The pod template every edxapp container shares: the config-aggregator init container that
/// concatenates the fragments, and the volumes it reads.
fn pod_spec(ctx: &Ctx, identity: &Identity, bundles: &Bundles, service: Service, main: Container, restart: Option<&str>) -> PodSpec {
    let svc = service.as_str();
    let mut volumes = vec![
        Volume { name: "config".into(), empty_dir: Some(EmptyDirVolumeSource::default()), ..Volume::default() },
        Volume {
            name: "data".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource { claim_name: data_claim(ctx), ..Default::default() }),
            ..Volume::default()
        },
        Volume {
            name: "uwsgi".into(),
            config_map: Some(ConfigMapVolumeSource { name: bundles.uwsgi.clone(), ..Default::default() }),
            ..Volume::default()
        },
    ];
    let mut source_mounts = Vec::new();
    for (name, carrier) in bundles.of(service) {
        let volume = match carrier {
            Carrier::ConfigMap => Volume {
                name: name.clone(),
                config_map: Some(ConfigMapVolumeSource { name: name.clone(), ..Default::default() }),
                ..Volume::default()
            },
            Carrier::Secret => Volume {
                name: name.clone(),
                secret: Some(SecretVolumeSource { secret_name: Some(name.clone()), ..Default::default() }),
                ..Volume::default()
            },
        };
        volumes.push(volume);
        source_mounts.push(VolumeMount {
            name: name.clone(),
            mount_path: format!("{CONFIG_SOURCES}/{name}"),
            read_only: Some(true),
            ..VolumeMount::default()
        });
    }
    source_mounts.push(VolumeMount { name: "config".into(), mount_path: "/openedx/config".into(), ..VolumeMount::default() });
    let aggregator = Container {
        name: "config-aggregator".into(),
        image: Some("busybox:1.36".into()),
        command: Some(vec!["/bin/sh".into(), "-c".into(), format!("cat {CONFIG_SOURCES}/*/*.yaml > /openedx/config/{svc}.env.yml")]),
        volume_mounts: Some(source_mounts),
        ..Container::default()
    };
    PodSpec {
        service_account_name: Some(identity.service_account.clone()),
        init_containers: Some(vec![aggregator]),
        containers: vec![main],
        volumes: Some(volumes),
        restart_policy: restart.map(str::to_string),
        termination_grace_period_seconds: Some(60),
        ..PodSpec::default()
    }
}

fn env(ctx: &Ctx, service: Service) -> Vec<EnvVar> {
    let svc = service.as_str();
    let var = |name: &str, value: String| EnvVar { name: name.into(), value: Some(value), ..EnvVar::default() };
    vec![
        var("SERVICE_VARIANT", svc.into()),
        var("DJANGO_SETTINGS_MODULE", format!("{svc}.envs.production")),
        var(&format!("{}_CFG", svc.to_uppercase()), format!("/openedx/config/{svc}.env.yml")),
        var("OPENEDX_RELEASE", ctx.config.openedx_release.clone()),
        var("UWSGI_WORKERS", "2".into()),
    ]
}

fn mounts() -> Vec<VolumeMount> {
    vec![
        VolumeMount { name: "config".into(), mount_path: "/openedx/config".into(), read_only: Some(true), ..VolumeMount::default() },
        VolumeMount { name: "data".into(), mount_path: "/openedx/data".into(), ..VolumeMount::default() },
        VolumeMount { name: "uwsgi".into(), mount_path: "/openedx/uwsgi".into(), read_only: Some(true), ..VolumeMount::default() },
    ]
}

fn resources(w: &Workload) -> ResourceRequirements {
    let mut requests = BTreeMap::new();
    requests.insert("cpu".to_string(), Quantity(w.cpu_request.clone()));
    requests.insert("memory".to_string(), Quantity(w.memory_request.clone()));
    let mut limits = BTreeMap::new();
    limits.insert("memory".to_string(), Quantity(w.memory_limit.clone()));
    if let Some(cpu) = &w.cpu_limit {
        limits.insert("cpu".to_string(), Quantity(cpu.clone()));
    }
    ResourceRequirements { requests: Some(requests), limits: Some(limits), ..ResourceRequirements::default() }
}

fn container(ctx: &Ctx, service: Service, name: &str, command: Vec<String>) -> Container {
    Container {
        name: name.into(),
        image: Some(ctx.config.image.reference()),
        command: Some(command),
        env: Some(env(ctx, service)),
        volume_mounts: Some(mounts()),
        ..Container::default()
    }
}

/// The names of the pre-deploy Jobs, for the Deployments to wait on.
pub struct Jobs {
    pub names: Vec<String>,
    pub handles: Vec<DependsOn>,
}

/// A short hash of what a Job runs: a new release (image digest) or command is a new Job, the
/// same one is the same Job (never re-run, even after its TTL removed it).
pub fn job_hash(template: &PodSpec) -> String {
    short_hash(&serde_json::to_vec(template).unwrap_or_default(), 4)
}

/// LMS migrations, then Studio migrations, then the waffle flags: one after the other, as the
/// flags' tables come from the LMS migrations and Studio's migrations share the database.
pub fn pre_deploy_jobs(stack: &mut Stack, ctx: &Ctx, identity: &Identity, bundles: &Bundles) -> ProgramResult<Jobs> {
    stack.component("edxapp:index:PreDeployJob", "pre-deploy", Options::new(), |stack, _| -> ProgramResult<Jobs> {
        let claim = data_claim(ctx);
        let pvc = stack.register(
            "data",
            PersistentVolumeClaim {
                metadata: Input::Value(kube::meta(ctx, &claim, "data")),
                spec: Input::Value(PersistentVolumeClaimSpec {
                    access_modes: Some(vec!["ReadWriteMany".into()]),
                    storage_class_name: Some(ctx.config.data_storage_class.clone()),
                    resources: Some(VolumeResourceRequirements {
                        requests: Some([("storage".to_string(), Quantity("5Gi".into()))].into()),
                        ..Default::default()
                    }),
                    ..PersistentVolumeClaimSpec::default()
                }),
                ..PersistentVolumeClaim::default()
            },
            Options::new(),
        )?;
        let flags: String = ctx
            .config
            .waffle_flags
            .iter()
            .map(|(flag, on)| format!("./manage.py lms waffle_flag {flag} --{} --create; ", if *on { "everyone" } else { "deactivate" }))
            .collect();
        let steps: Vec<(&str, Service, String, Vec<&str>)> = vec![
            ("lms-migrate", Service::Lms, "./manage.py lms migrate --noinput".into(), vec![]),
            ("cms-migrate", Service::Cms, "./manage.py cms migrate --noinput".into(), vec!["lms-migrate"]),
            ("waffle-flags", Service::Lms, if flags.is_empty() { "true".into() } else { flags }, vec!["cms-migrate"]),
        ];
        let mut names = Vec::new();
        let mut handles: BTreeMap<&str, berth_engine::ResourceHandle<Job>> = BTreeMap::new();
        for (purpose, service, command, after) in steps {
            let main = container(ctx, service, purpose, vec!["/bin/bash".into(), "-c".into(), command]);
            let spec = pod_spec(ctx, identity, bundles, service, main, Some("Never"));
            let name = format!("{}-{purpose}-{}", ctx.env_name, job_hash(&spec));
            let component = format!("{}-{purpose}", service.as_str());
            let template = PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(ctx.labels(&component)), ..ObjectMeta::default() }),
                spec: Some(spec),
            };
            let mut options = Options::new().depends_on(&pvc);
            for a in &after {
                options = options.depends_on(&handles[a]);
            }
            let job = stack.register(
                &name,
                Job {
                    metadata: Input::Value(kube::meta(ctx, &name, &component)),
                    spec: Input::Value(JobSpec {
                        template,
                        backoff_limit: Some(1),
                        ttl_seconds_after_finished: Some(1800),
                        ..JobSpec::default()
                    }),
                    ..Job::default()
                },
                options,
            )?;
            handles.insert(purpose, job);
            names.push(name);
        }
        Ok(Jobs { names, handles: handles.values().map(DependsOn::from).collect() })
    })
}

/// What the webapps expose, for the routes.
pub struct Pairs {
    /// service → its webapp's Service name.
    pub services: BTreeMap<&'static str, String>,
    pub workloads: Workloads,
}

fn percent_target(resource: &str) -> MetricSpec {
    MetricSpec {
        type_: "Resource".into(),
        resource: Some(ResourceMetricSource {
            name: resource.into(),
            target: MetricTarget { type_: "Utilization".into(), average_utilization: Some(80), ..MetricTarget::default() },
        }),
        ..MetricSpec::default()
    }
}

fn scaling(window: i32, kind: &str, value: i32) -> HPAScalingRules {
    HPAScalingRules {
        stabilization_window_seconds: Some(window),
        policies: Some(vec![HPAScalingPolicy { type_: kind.into(), value, period_seconds: 60 }]),
        ..HPAScalingRules::default()
    }
}

#[allow(clippy::too_many_arguments)]
pub fn webapp_pairs(
    stack: &mut Stack,
    ctx: &Ctx,
    identity: &Identity,
    bundles: &Bundles,
    jobs: &Jobs,
    cache: &Cache,
    groups: &Groups,
) -> ProgramResult<Pairs> {
    let mut services = BTreeMap::new();
    let mut workloads = Workloads::default();
    for service in SERVICES {
        let svc = service.as_str();
        let (web, worker) = match service {
            Service::Lms => (&ctx.config.webapp.lms, &ctx.config.celery.lms),
            Service::Cms => (&ctx.config.webapp.cms, &ctx.config.celery.cms),
        };
        let pair = stack.component("edxapp:index:WebappPair", svc, Options::new(), |stack, _| -> ProgramResult<String> {
            let webapp = format!("{}-edxapp-{svc}-webapp", ctx.env_name);
            let component = format!("{svc}-webapp");
            let mut main = container(ctx, service, "webapp", vec!["uwsgi".into(), "/openedx/uwsgi/uwsgi.ini".into()]);
            main.ports = Some(vec![ContainerPort { name: Some("http".into()), container_port: 8000, protocol: Some("TCP".into()), ..ContainerPort::default() }]);
            main.resources = Some(resources(web));
            let heartbeat = |initial: i32, failures: i32| Probe {
                http_get: Some(HTTPGetAction { path: Some("/heartbeat".into()), port: IntOrString::String("http".into()), ..HTTPGetAction::default() }),
                initial_delay_seconds: Some(initial),
                period_seconds: Some(10),
                failure_threshold: Some(failures),
                ..Probe::default()
            };
            main.startup_probe = Some(heartbeat(10, 30));
            main.readiness_probe = Some(heartbeat(0, 3));
            main.liveness_probe = Some(Probe { tcp_socket: Some(TCPSocketAction { port: IntOrString::Int(8000), ..TCPSocketAction::default() }), period_seconds: Some(20), ..Probe::default() });
            // Let the load balancer stop sending traffic before uWSGI stops.
            main.lifecycle = Some(Lifecycle { pre_stop: Some(LifecycleHandler { exec: Some(ExecAction { command: Some(vec!["sleep".into(), "30".into()]) }), ..LifecycleHandler::default() }), ..Lifecycle::default() });
            let mut spec = pod_spec(ctx, identity, bundles, service, main, None);
            let selector = ctx.selector(&component);
            spec.affinity = Some(Affinity {
                pod_anti_affinity: Some(PodAntiAffinity {
                    preferred_during_scheduling_ignored_during_execution: Some(vec![WeightedPodAffinityTerm {
                        weight: 100,
                        pod_affinity_term: PodAffinityTerm { label_selector: Some(LabelSelector { match_labels: Some(selector.clone()), ..LabelSelector::default() }), topology_key: "kubernetes.io/hostname".into(), ..PodAffinityTerm::default() },
                    }]),
                    ..PodAntiAffinity::default()
                }),
                ..Affinity::default()
            });
            let deployment = deploy(stack, ctx, groups, (&format!("{svc}-webapp"), &webapp), &component, (spec, &bundles.hashes[svc]), jobs, &mut workloads)?;
            stack.register(
                &format!("{svc}-service"),
                K8sService {
                    metadata: Input::Value(kube::meta(ctx, &webapp, &component)),
                    spec: Input::Value(ServiceSpec {
                        selector: Some(selector.clone()),
                        ports: Some(vec![ServicePort { name: Some("http".into()), port: 8000, target_port: Some(IntOrString::String("http".into())), protocol: Some("TCP".into()), ..ServicePort::default() }]),
                        type_: Some("ClusterIP".into()),
                        ..ServiceSpec::default()
                    }),
                    ..K8sService::default()
                },
                Options::new().depends_on(&deployment),
            )?;
            workloads.add_service(&webapp, selector.clone());
            stack.register(
                &format!("{svc}-autoscaler"),
                HorizontalPodAutoscaler {
                    metadata: Input::Value(kube::meta(ctx, &webapp, &component)),
                    spec: Input::Value(HorizontalPodAutoscalerSpec {
                        scale_target_ref: CrossVersionObjectReference { api_version: Some("apps/v1".into()), kind: "Deployment".into(), name: webapp.clone() },
                        min_replicas: Some(web.min_replicas as i32),
                        max_replicas: web.max_replicas as i32,
                        metrics: Some(vec![percent_target("cpu"), percent_target("memory")]),
                        behavior: Some(HorizontalPodAutoscalerBehavior { scale_up: Some(scaling(60, "Percent", 100)), scale_down: Some(scaling(300, "Percent", 25)) }),
                    }),
                    ..HorizontalPodAutoscaler::default()
                },
                Options::new().depends_on(&deployment),
            )?;
            stack.register(
                &format!("{svc}-disruption-budget"),
                PodDisruptionBudget {
                    metadata: Input::Value(kube::meta(ctx, &webapp, &component)),
                    spec: Input::Value(PodDisruptionBudgetSpec {
                        // At most one pod down at a time; `minAvailable: 1` would block every
                        // node drain of a one-replica (CI) deployment.
                        max_unavailable: Some(IntOrString::Int(1)),
                        selector: Some(LabelSelector { match_labels: Some(selector), ..LabelSelector::default() }),
                        ..PodDisruptionBudgetSpec::default()
                    }),
                    ..PodDisruptionBudget::default()
                },
                Options::new().depends_on(&deployment),
            )?;

            // Celery: scaled by KEDA on the length of the Redis queue.
            let celery = format!("{}-edxapp-{svc}-celery", ctx.env_name);
            let component = format!("{svc}-celery");
            let command = vec![
                "celery".into(),
                "--app".into(),
                format!("{svc}.celery"),
                "worker".into(),
                "-B".into(),
                "-E".into(),
                "--loglevel=info".into(),
                format!("--hostname=edx.{svc}.core.default.%%h"),
                "--max-tasks-per-child".into(),
                "100".into(),
            ];
            let mut main = container(ctx, service, "celery", command);
            main.resources = Some(resources(worker));
            let spec = pod_spec(ctx, identity, bundles, service, main, None);
            let worker_deployment = deploy(stack, ctx, groups, (&format!("{svc}-celery"), &celery), &component, (spec, &bundles.hashes[svc]), jobs, &mut workloads)?;
            let auth_secret = format!("{celery}-redis");
            let secret = stack.register(
                &format!("{svc}-celery-redis-auth"),
                berth_provider_kubernetes::Secret {
                    metadata: Input::Value(kube::meta(ctx, &auth_secret, &component)),
                    string_data: [("password".to_string(), Input::from(cache.token.map(Secret::new)))].into(),
                    ..berth_provider_kubernetes::Secret::default()
                },
                Options::new(),
            )?;
            let trigger_auth = format!("{celery}-redis");
            let auth = kube::custom(
                stack,
                &kube::token(KEDA, "TriggerAuthentication"),
                &format!("{svc}-celery-trigger-auth"),
                &kube::meta(ctx, &trigger_auth, &component),
                kube::spec(json!({"secretTargetRef": [{"parameter": "password", "name": auth_secret, "key": "password"}]})),
                Options::new().depends_on(&secret),
            )?;
            let (target, min, max) = (celery.clone(), worker.min_replicas, worker.max_replicas);
            kube::custom(
                stack,
                &kube::token(KEDA, "ScaledObject"),
                &format!("{svc}-celery-scaler"),
                &kube::meta(ctx, &celery, &component),
                kube::spec_from(&cache.address, move |address: String| {
                    json!({
                        "scaleTargetRef": {"name": target},
                        "pollingInterval": 3,
                        "cooldownPeriod": 10,
                        "minReplicaCount": min,
                        "maxReplicaCount": max,
                        "triggers": [{
                            "type": "redis",
                            "metadata": {"address": format!("{address}:6379"), "listName": format!("edx.{svc}.core.default"), "listLength": "10", "enableTLS": "true", "databaseIndex": CELERY_BROKER_DB.to_string()},
                            "authenticationRef": {"name": trigger_auth}
                        }]
                    })
                }),
                Options::new().depends_on(&worker_deployment).depends_on(&auth),
            )?;
            Ok(webapp)
        })?;
        services.insert(svc, pair);
    }
    // Scheduled emails: one worker, no Service.
    stack.component("edxapp:index:ScheduledEmails", "scheduled-emails", Options::new(), |stack, _| -> ProgramResult {
        let name = format!("{}-edxapp-scheduled-emails", ctx.env_name);
        let command = vec![
            "/bin/bash".into(),
            "-c".into(),
            "while true; do ./manage.py lms send_recurring_nudge; ./manage.py lms send_upgrade_reminder; sleep 300; done".into(),
        ];
        let main = container(ctx, Service::Lms, "scheduled-emails", command);
        let spec = pod_spec(ctx, identity, bundles, Service::Lms, main, None);
        deploy(stack, ctx, groups, ("scheduled-emails", &name), "scheduled-emails", (spec, &bundles.hashes["lms"]), jobs, &mut workloads)?;
        Ok(())
    })?;
    Ok(Pairs { services, workloads })
}

/// The pod-template annotation carrying the configuration's hash.
pub const CONFIG_HASH_ANNOTATION: &str = "berth.dev/config-hash";

/// A Deployment of `spec` labelled `component` (unique per workload), after the pre-deploy Jobs.
#[allow(clippy::too_many_arguments)]
fn deploy(
    stack: &mut Stack,
    ctx: &Ctx,
    groups: &Groups,
    (logical, name): (&str, &str),
    component: &str,
    (spec, config_hash): (PodSpec, &Output<String>),
    jobs: &Jobs,
    workloads: &mut Workloads,
) -> ProgramResult<berth_engine::ResourceHandle<Deployment>> {
    let selector = ctx.selector(component);
    workloads.add_workload(name, ctx.labels(component));
    let labels = ctx.labels(component);
    // The pod security group's id labels the pods (the security-groups-for-pods controller).
    // The configuration's hash on the pod template: a changed fragment rolls the pods (Helm's
    // checksum/config annotation). Not on the Jobs, whose names must follow the release only.
    let template = groups.pods.zip(config_hash).map(move |(group, hash): (String, String)| {
        let mut labels = labels.clone();
        labels.insert("vpc.amazonaws.com/pod-security-group".into(), group);
        let annotations = [(CONFIG_HASH_ANNOTATION.to_string(), hash)].into();
        PodTemplateSpec {
            metadata: Some(ObjectMeta { labels: Some(labels), annotations: Some(annotations), ..ObjectMeta::default() }),
            spec: Some(spec.clone()),
        }
    });
    let deployment_spec = template.map(move |template: PodTemplateSpec| DeploymentSpec {
        selector: LabelSelector { match_labels: Some(selector.clone()), ..LabelSelector::default() },
        template,
        ..DeploymentSpec::default()
    });
    let mut options = Options::new();
    for job in &jobs.handles {
        options = options.depends_on(job.clone());
    }
    Ok(stack.register(
        logical,
        Deployment { metadata: Input::Value(kube::meta(ctx, name, component)), spec: deployment_spec.into(), ..Deployment::default() },
        options,
    )?)
}
