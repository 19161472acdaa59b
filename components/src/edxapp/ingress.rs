//! Routes: a Gateway API Gateway with TLS listeners for the LMS, Studio and preview domains and
//! an http→https redirect, or (`gateway: false`) an Ingress.

use berth_engine::{Options, ProgramResult, Stack};
use serde_json::json;

use crate::edxapp::Ctx;
use crate::edxapp::kube::{self, GATEWAY};
use crate::edxapp::workloads::Pairs;

pub fn routes(stack: &mut Stack, ctx: &Ctx, pairs: &Pairs) -> ProgramResult {
    let d = &ctx.config.domains;
    let hosts = [
        ("lms", d.lms.clone(), pairs.services["lms"].clone()),
        ("studio", d.studio.clone(), pairs.services["cms"].clone()),
        ("preview", d.preview.clone(), pairs.services["lms"].clone()),
    ];
    let gateway = format!("{}-edxapp", ctx.env_name);
    let tls = format!("{}-edxapp-tls", ctx.env_name);
    stack.component("edxapp:index:Routes", "routes", Options::new(), |stack, _| -> ProgramResult {
        if !ctx.config.gateway {
            let rules: Vec<serde_json::Value> = hosts
                .iter()
                .map(|(_, host, service)| json!({"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {"service": {"name": service, "port": {"number": 8000}}}}]}}))
                .collect();
            let hostnames: Vec<&String> = hosts.iter().map(|(_, h, _)| h).collect();
            let mut metadata = kube::meta(ctx, &gateway, "routes");
            metadata.annotations = Some([("cert-manager.io/cluster-issuer".to_string(), "letsencrypt-production".to_string())].into());
            kube::custom(stack, "kubernetes:networking.k8s.io/v1:Ingress", "ingress", &metadata, kube::spec(json!({"tls": [{"hosts": hostnames, "secretName": tls}], "rules": rules})), Options::new())?;
            return Ok(());
        }
        let mut listeners = vec![json!({"name": "http", "protocol": "HTTP", "port": 80})];
        for (name, host, _) in &hosts {
            listeners.push(json!({"name": format!("https-{name}"), "hostname": host, "protocol": "HTTPS", "port": 443, "tls": {"mode": "Terminate", "certificateRefs": [{"kind": "Secret", "name": tls}]}}));
        }
        let mut metadata = kube::meta(ctx, &gateway, "routes");
        metadata.annotations = Some([("cert-manager.io/cluster-issuer".to_string(), "letsencrypt-production".to_string())].into());
        let gw = kube::custom(stack, &kube::token(GATEWAY, "Gateway"), "gateway", &metadata, kube::spec(json!({"gatewayClassName": "traefik", "listeners": listeners})), Options::new())?;
        for (name, host, service) in &hosts {
            let route = format!("{}-edxapp-{name}", ctx.env_name);
            kube::custom(
                stack,
                &kube::token(GATEWAY, "HTTPRoute"),
                name,
                &kube::meta(ctx, &route, "routes"),
                kube::spec(json!({
                    "parentRefs": [{"name": gateway, "sectionName": format!("https-{name}")}],
                    "hostnames": [host],
                    "rules": [{"backendRefs": [{"name": service, "port": 8000}]}]
                })),
                Options::new().depends_on(&gw),
            )?;
        }
        let hostnames: Vec<&String> = hosts.iter().map(|(_, h, _)| h).collect();
        kube::custom(
            stack,
            &kube::token(GATEWAY, "HTTPRoute"),
            "https-redirect",
            &kube::meta(ctx, &format!("{}-edxapp-https-redirect", ctx.env_name), "routes"),
            kube::spec(json!({
                "parentRefs": [{"name": gateway, "sectionName": "http"}],
                "hostnames": hostnames,
                "rules": [{"filters": [{"type": "RequestRedirect", "requestRedirect": {"scheme": "https", "statusCode": 301}}]}]
            })),
            Options::new().depends_on(&gw),
        )?;
        Ok(())
    })
}
