//! Property tests of the rendered state: each asserts one promise of spec §8 or the security
//! guide over every relevant object, for several Tenant shapes.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, PodSpec};
use serde_json::Value;

use super::*;
use crate::pss;
use crate::secrets::SecretKind;

fn variants() -> Vec<Tenant> {
    vec![
        Tenant::test(),
        Tenant::test().with_tls(),
        Tenant::test().with_backup(),
        Tenant::test().with_replicas(1),
        Tenant::test()
            .with_tls()
            .with_backup()
            .with_rotation(30)
            .with_replicas(3),
    ]
}

fn rendered(t: &Tenant) -> Vec<Object> {
    render(t, &OperatorConfig::default(), &RenderInputs::default()).expect("renders")
}

fn find<'a>(objs: &'a [Object], kind: &str, name: &str) -> &'a Object {
    objs.iter()
        .find(|o| o.kind() == kind && o.name() == name)
        .unwrap_or_else(|| panic!("{kind}/{name} rendered"))
}

fn json(o: &Object) -> Value {
    serde_json::to_value(o).expect("serializes")
}

/// Every pod spec in the rendered objects, with its owner's id.
fn pods(objs: &[Object]) -> Vec<(String, BTreeMap<String, String>, PodSpec)> {
    objs.iter()
        .filter_map(|o| {
            let (ann, spec) = pss::pod_template(&json(o))?.expect("pod spec parses");
            Some((o.id(), ann, spec))
        })
        .collect()
}

fn all_containers(spec: &PodSpec) -> Vec<&Container> {
    spec.init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
        .collect()
}

#[test]
fn renders_every_object_of_spec_8() {
    let objs = rendered(&Tenant::test().with_backup());
    let ids: Vec<String> = objs.iter().map(Object::id).collect();
    for want in [
        "Namespace/tenant-acme",
        "ResourceQuota/tenant-quota",
        "LimitRange/tenant-limits",
        "NetworkPolicy/default-deny-all",
        "NetworkPolicy/allow-internal-traffic",
        "NetworkPolicy/allow-api-access",
        "NetworkPolicy/allow-dns-egress",
        "NetworkPolicy/allow-monitoring-scrape",
        "ServiceAccount/neurallog-server",
        "ServiceAccount/redis",
        "Role/neurallog-server",
        "RoleBinding/neurallog-server",
        "ConfigMap/redis-config",
        "Service/redis",
        "StatefulSet/redis",
        "Service/neurallog-server",
        "Deployment/neurallog-server",
        "PodDisruptionBudget/neurallog-server",
        "PersistentVolumeClaim/neurallog-backup",
        "CronJob/neurallog-backup",
    ] {
        assert!(
            ids.contains(&want.to_owned()),
            "{want} missing from {ids:?}"
        );
    }
    assert_eq!(
        objs[0].kind(),
        "Namespace",
        "the namespace is applied first"
    );
}

#[test]
fn rendering_is_deterministic() {
    for t in variants() {
        assert_eq!(rendered(&t), rendered(&t));
    }
}

#[test]
fn everything_is_labelled_owned_and_in_the_tenant_namespace() {
    for t in variants() {
        for o in rendered(&t) {
            let m = o.meta();
            let l = m.labels.as_ref().expect("labels");
            assert_eq!(
                l.get(LABEL_TENANT).map(String::as_str),
                Some("acme"),
                "{}",
                o.id()
            );
            assert!(l.contains_key(LABEL_COMPONENT), "{}", o.id());
            assert_eq!(
                l.get(LABEL_MANAGED_BY).map(String::as_str),
                Some(MANAGER),
                "{}",
                o.id()
            );
            let owners = m.owner_references.as_ref().expect("owner");
            assert_eq!(owners.len(), 1);
            assert_eq!(owners[0].kind, "Tenant");
            assert_eq!(owners[0].uid, t.metadata.uid.clone().expect("uid"));
            assert_eq!(owners[0].controller, Some(true));
            if o.is_namespaced() {
                assert_eq!(m.namespace.as_deref(), Some("tenant-acme"), "{}", o.id());
            } else {
                assert_eq!(m.namespace, None);
            }
        }
    }
}

#[test]
fn a_tenant_from_a_file_gets_no_owner_reference() {
    let mut t = Tenant::test();
    t.metadata.uid = None;
    assert!(
        rendered(&t)
            .iter()
            .all(|o| o.meta().owner_references.is_none())
    );
}

#[test]
fn namespace_enforces_restricted_pod_security() {
    let objs = rendered(&Tenant::test());
    let Object::Namespace(ns) = find(&objs, "Namespace", "tenant-acme") else {
        panic!("namespace")
    };
    let l = ns.metadata.labels.as_ref().expect("labels");
    for mode in ["enforce", "audit", "warn"] {
        assert_eq!(
            l.get(&format!("pod-security.kubernetes.io/{mode}"))
                .map(String::as_str),
            Some("restricted")
        );
    }
}

#[test]
fn quota_and_limits_come_from_spec_resources() {
    let mut t = Tenant::test();
    t.spec.resources.cpu = "8".into();
    t.spec.resources.memory = "16Gi".into();
    let objs = rendered(&t);
    let q = json(find(&objs, "ResourceQuota", "tenant-quota"));
    assert_eq!(q["spec"]["hard"]["limits.cpu"], "8");
    assert_eq!(q["spec"]["hard"]["limits.memory"], "16Gi");
    assert_eq!(q["spec"]["hard"]["services.nodeports"], "0");
    assert_eq!(q["spec"]["hard"]["services.loadbalancers"], "0");
    let lr = json(find(&objs, "LimitRange", "tenant-limits"));
    assert_eq!(lr["spec"]["limits"][0]["max"]["cpu"], "8");
    assert!(lr["spec"]["limits"][0]["default"]["memory"].is_string());
}

#[test]
fn every_pod_passes_the_restricted_profile() {
    for t in variants() {
        for (id, ann, spec) in pods(&rendered(&t)) {
            let v = pss::check_restricted(&spec, &ann);
            assert!(v.is_empty(), "{id}: {v:?}");
        }
    }
}

#[test]
fn every_pod_is_hardened_as_spec_8_says() {
    let uid = OperatorConfig::default().run_as_user;
    for t in variants() {
        let objs = rendered(&t);
        let pods = pods(&objs);
        assert!(pods.len() >= 2);
        for (id, _, spec) in pods {
            let psc = spec
                .security_context
                .as_ref()
                .expect("pod security context");
            assert_eq!(psc.run_as_non_root, Some(true), "{id}");
            assert_eq!(psc.run_as_user, Some(uid), "{id}");
            assert_eq!(psc.run_as_group, Some(uid), "{id}");
            assert_ne!(uid, 0);
            assert_eq!(spec.automount_service_account_token, Some(false), "{id}");
            assert!(
                spec.host_network.is_none() && spec.host_pid.is_none(),
                "{id}"
            );
            let tmp = spec
                .volumes
                .iter()
                .flatten()
                .find(|v| v.name == pod::TMP_VOLUME)
                .expect("tmp volume");
            assert!(tmp.empty_dir.is_some(), "{id}: /tmp is an emptyDir");
            for c in all_containers(&spec) {
                let sc = c
                    .security_context
                    .as_ref()
                    .expect("container security context");
                assert_eq!(sc.read_only_root_filesystem, Some(true), "{id}/{}", c.name);
                assert_eq!(
                    sc.allow_privilege_escalation,
                    Some(false),
                    "{id}/{}",
                    c.name
                );
                assert_eq!(sc.run_as_non_root, Some(true), "{id}/{}", c.name);
                let caps = sc.capabilities.as_ref().expect("capabilities");
                assert_eq!(caps.drop.as_deref(), Some(&["ALL".to_owned()][..]));
                assert!(caps.add.is_none());
                assert_eq!(
                    sc.seccomp_profile.as_ref().map(|s| s.type_.as_str()),
                    Some("RuntimeDefault")
                );
                let mounts = c.volume_mounts.as_ref().expect("mounts");
                assert!(
                    mounts.iter().any(|m| m.mount_path == "/tmp"),
                    "{id}/{}",
                    c.name
                );
                let r = c.resources.as_ref().expect("resources");
                for set in [&r.requests, &r.limits] {
                    let set = set.as_ref().expect("requests and limits");
                    assert!(
                        set.contains_key("cpu") && set.contains_key("memory"),
                        "{id}"
                    );
                }
                let image = c.image.as_deref().expect("image");
                assert!(
                    !image.ends_with(":latest") && image.contains(':'),
                    "{id}: pinned image"
                );
            }
        }
    }
}

#[test]
fn no_role_grants_a_wildcard_and_the_server_role_is_read_only_configmaps() {
    for t in variants() {
        for o in rendered(&t) {
            let Object::Role(r) = &o else { continue };
            for rule in r.rules.iter().flatten() {
                let all = rule
                    .verbs
                    .iter()
                    .chain(rule.resources.iter().flatten())
                    .chain(rule.api_groups.iter().flatten());
                assert!(all.into_iter().all(|s| s != "*"), "{}", o.id());
            }
        }
        let objs = rendered(&t);
        let Object::Role(r) = find(&objs, "Role", "neurallog-server") else {
            panic!("role")
        };
        let rules = r.rules.as_ref().expect("rules");
        assert_eq!(rules.len(), 1);
        assert_eq!(
            rules[0].resources.as_deref(),
            Some(&["configmaps".to_owned()][..])
        );
        assert_eq!(rules[0].verbs, ["get", "list"]);
        assert_eq!(rules[0].api_groups.as_deref(), Some(&[String::new()][..]));
        let rb = json(find(&objs, "RoleBinding", "neurallog-server"));
        assert_eq!(rb["subjects"][0]["name"], "neurallog-server");
        assert_eq!(rb["subjects"][0]["namespace"], "tenant-acme");
    }
}

#[test]
fn service_accounts_do_not_automount_tokens() {
    for o in rendered(&Tenant::test().with_backup()) {
        if let Object::ServiceAccount(sa) = &o {
            assert_eq!(
                sa.automount_service_account_token,
                Some(false),
                "{}",
                o.id()
            );
        }
    }
}

#[test]
fn default_deny_covers_both_directions_for_every_pod() {
    let objs = rendered(&Tenant::test());
    let p = json(find(&objs, "NetworkPolicy", "default-deny-all"));
    assert_eq!(p["spec"]["podSelector"], serde_json::json!({}));
    assert_eq!(
        p["spec"]["policyTypes"],
        serde_json::json!(["Ingress", "Egress"])
    );
    assert_eq!(p["spec"]["ingress"], serde_json::json!([]));
    assert_eq!(p["spec"]["egress"], serde_json::json!([]));
}

#[test]
fn api_policy_allows_only_port_3030_from_the_allowed_namespaces() {
    let objs = rendered(&Tenant::test());
    let p = json(find(&objs, "NetworkPolicy", "allow-api-access"));
    assert_eq!(
        p["spec"]["podSelector"]["matchLabels"][LABEL_COMPONENT],
        "server"
    );
    assert_eq!(p["spec"]["policyTypes"], serde_json::json!(["Ingress"]));
    let rules = p["spec"]["ingress"].as_array().expect("rules");
    assert_eq!(rules.len(), 1);
    assert_eq!(
        rules[0]["ports"],
        serde_json::json!([{"port": 3030, "protocol": "TCP"}])
    );
    let from = rules[0]["from"].as_array().expect("from");
    assert_eq!(from.len(), 1);
    assert!(from[0].get("podSelector").is_none() && from[0].get("ipBlock").is_none());
    let expr = &from[0]["namespaceSelector"]["matchExpressions"][0];
    assert_eq!(expr["key"], "kubernetes.io/metadata.name");
    assert_eq!(expr["operator"], "In");
    assert_eq!(expr["values"], serde_json::json!(["ingress-nginx", "apps"]));
}

#[test]
fn api_policy_is_closed_without_allowed_namespaces() {
    let mut t = Tenant::test();
    t.spec.network_policy.allowed_namespaces.clear();
    let objs = rendered(&t);
    let p = json(find(&objs, "NetworkPolicy", "allow-api-access"));
    assert_eq!(p["spec"]["ingress"], serde_json::json!([]));
}

#[test]
fn only_declared_paths_open_the_namespace() {
    // Every ingress rule anywhere names its ports, except pod-to-pod inside the namespace.
    let objs = rendered(&Tenant::test());
    for o in &objs {
        let Object::NetworkPolicy(_) = o else {
            continue;
        };
        let p = json(o);
        for rule in p["spec"]["ingress"].as_array().into_iter().flatten() {
            let internal = rule["from"] == serde_json::json!([{"podSelector": {}}]);
            assert!(internal || rule["ports"].is_array(), "{}: {rule}", o.id());
        }
    }
    let dns = json(find(&objs, "NetworkPolicy", "allow-dns-egress"));
    assert_eq!(dns["spec"]["egress"][0]["ports"][0]["port"], 53);
    assert_eq!(
        dns["spec"]["egress"][0]["to"][0]["podSelector"]["matchLabels"]["k8s-app"],
        "kube-dns"
    );
    let mon = json(find(&objs, "NetworkPolicy", "allow-monitoring-scrape"));
    assert_eq!(mon["spec"]["ingress"][0]["ports"][0]["port"], 9464);
    assert_eq!(
        mon["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchExpressions"][0]["values"],
        serde_json::json!(["monitoring"])
    );
}

#[test]
fn custom_rules_are_rendered_and_disabled_policies_are_not() {
    let mut t = Tenant::test();
    t.spec.network_policy.egress_rules =
        vec![serde_json::from_value(serde_json::json!({
        "to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}], "ports": [{"port": 443, "protocol": "TCP"}]
    }))
    .expect("rule")];
    let objs = rendered(&t);
    let c = json(find(&objs, "NetworkPolicy", "allow-custom-rules"));
    assert_eq!(c["spec"]["policyTypes"], serde_json::json!(["Egress"]));
    assert_eq!(c["spec"]["egress"][0]["ports"][0]["port"], 443);
    t.spec.network_policy.enabled = false;
    assert!(!rendered(&t).iter().any(|o| o.kind() == "NetworkPolicy"));
}

fn server_env(objs: &[Object]) -> Vec<k8s_openapi::api::core::v1::EnvVar> {
    let Object::Deployment(d) = find(objs, "Deployment", "neurallog-server") else {
        panic!("deployment")
    };
    let spec = d
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("pod");
    spec.containers[0].env.clone().expect("env")
}

fn env_value<'a>(env: &'a [k8s_openapi::api::core::v1::EnvVar], name: &str) -> &'a str {
    env.iter()
        .find(|e| e.name == name)
        .and_then(|e| e.value.as_deref())
        .unwrap_or_else(|| panic!("{name} has a literal value"))
}

fn env_secret(env: &[k8s_openapi::api::core::v1::EnvVar], name: &str) -> (String, String) {
    let r = env
        .iter()
        .find(|e| e.name == name)
        .and_then(|e| e.value_from.as_ref())
        .and_then(|v| v.secret_key_ref.as_ref())
        .unwrap_or_else(|| panic!("{name} is a secretKeyRef"));
    (r.name.clone(), r.key.clone())
}

#[test]
fn server_gets_its_settings_and_secrets_by_reference() {
    let objs = rendered(&Tenant::test().with_tls());
    let env = server_env(&objs);
    assert_eq!(env_value(&env, "PORT"), "3030");
    assert_eq!(env_value(&env, "NEURALLOG_BIND"), "0.0.0.0");
    assert_eq!(env_value(&env, "TENANT_ID"), "acme");
    assert_eq!(env_value(&env, "NODE_ENV"), "production");
    let url = env_value(&env, "REDIS_URL");
    assert_eq!(
        url,
        "redis://redis-0.redis.tenant-acme.svc.cluster.local:6379"
    );
    assert!(!url.contains('@'), "no credentials in the URL");
    assert_eq!(
        env_secret(&env, "API_KEY"),
        ("api-keys".into(), "server-key".into())
    );
    assert_eq!(
        env_secret(&env, "REDIS_PASSWORD"),
        ("redis-auth".into(), "password".into())
    );
    assert_eq!(
        env_secret(&env, "NEURALLOG_MASTER_KEY"),
        ("master-key".into(), "master-key".into())
    );
    assert_eq!(
        env_secret(&env, "TLS_CERT"),
        ("tls-certs".into(), "cert".into())
    );
    assert_eq!(
        env_secret(&env, "TLS_KEY"),
        ("tls-certs".into(), "key".into())
    );
    assert!(
        !env.iter().any(|e| e.name == "NEURALLOG_TLS_PROXY"),
        "a server with its own certificate does not claim a proxy"
    );
}

#[test]
fn tls_variables_only_when_tls_is_set() {
    let env = server_env(&rendered(&Tenant::test()));
    assert!(!env.iter().any(|e| e.name.starts_with("TLS_")));
    // Production mode refuses plain HTTP unless a TLS-terminating proxy is declared.
    assert_eq!(env_value(&env, "NEURALLOG_TLS_PROXY"), "true");
}

#[test]
fn no_secret_value_is_ever_inline() {
    // Every variable whose name says it is secret comes from a secretKeyRef, in every
    // container, and no ConfigMap or env value holds a generated secret.
    let values: Vec<String> = SecretKind::ALL
        .iter()
        .map(|k| k.generate().expose().to_owned())
        .collect();
    for t in variants() {
        let objs = rendered(&t);
        for (id, _, spec) in pods(&objs) {
            for c in all_containers(&spec) {
                for e in c.env.iter().flatten() {
                    if crate::crd::is_secret_env_name(&e.name) || e.name == "REDISCLI_AUTH" {
                        assert!(e.value.is_none(), "{id}/{}: {} inline", c.name, e.name);
                        assert!(
                            e.value_from
                                .as_ref()
                                .and_then(|v| v.secret_key_ref.as_ref())
                                .is_some()
                        );
                    }
                }
            }
        }
        let text = to_yaml(&objs).expect("yaml");
        for v in &values {
            assert!(!text.contains(v.as_str()));
        }
        assert!(
            !objs.iter().any(|o| o.kind() == "Secret"),
            "secrets are rendered apart"
        );
    }
}

#[test]
fn server_is_probed_on_health_and_ready() {
    for (t, scheme) in [
        (Tenant::test(), "HTTP"),
        (Tenant::test().with_tls(), "HTTPS"),
    ] {
        let d = json(find(&rendered(&t), "Deployment", "neurallog-server"));
        let c = &d["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/health");
        assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/ready");
        assert_eq!(c["livenessProbe"]["httpGet"]["scheme"], scheme);
    }
}

#[test]
fn redis_requires_the_password_and_disables_dangerous_commands() {
    let mut t = Tenant::test();
    t.spec
        .redis
        .config
        .insert("maxmemory".into(), "256mb".into());
    let objs = rendered(&t);
    let Object::ConfigMap(cm) = find(&objs, "ConfigMap", "redis-config") else {
        panic!("configmap")
    };
    let conf = cm
        .data
        .as_ref()
        .and_then(|d| d.get("redis.conf"))
        .expect("redis.conf");
    let lines: Vec<&str> = conf.lines().collect();
    for want in [
        "protected-mode yes",
        "appendonly yes",
        "appendfsync always",
        "maxmemory 256mb",
    ] {
        assert!(lines.contains(&want), "{want}");
    }
    for cmd in ["FLUSHALL", "FLUSHDB", "CONFIG", "DEBUG", "KEYS"] {
        assert!(
            lines.contains(&format!("rename-command {cmd} \"\"").as_str()),
            "{cmd}"
        );
    }
    assert!(
        !lines.iter().any(|l| l.starts_with("requirepass")),
        "no password in the ConfigMap"
    );
    let sts = json(find(&objs, "StatefulSet", "redis"));
    let c = &sts["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        c["args"],
        serde_json::json!([
            "/etc/redis/redis.conf",
            "--dir",
            "/data",
            "--requirepass",
            "$(REDIS_PASSWORD)"
        ])
    );
    assert_eq!(c["env"][0]["name"], "REDIS_PASSWORD");
    assert_eq!(
        c["env"][0]["valueFrom"]["secretKeyRef"]["name"],
        "redis-auth"
    );
    assert_eq!(
        sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"],
        "1Gi"
    );
    let svc = json(find(&objs, "Service", "redis"));
    assert_eq!(svc["spec"]["clusterIP"], "None");
}

#[test]
fn pdb_only_with_more_than_one_server() {
    assert!(
        rendered(&Tenant::test().with_replicas(1))
            .iter()
            .all(|o| o.kind() != "PodDisruptionBudget")
    );
    let objs = rendered(&Tenant::test().with_replicas(3));
    let pdb = json(find(&objs, "PodDisruptionBudget", "neurallog-server"));
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
}

#[test]
fn backup_cron_job_only_with_a_schedule() {
    assert!(
        rendered(&Tenant::test())
            .iter()
            .all(|o| o.kind() != "CronJob")
    );
    let objs = rendered(&Tenant::test().with_backup());
    let cj = json(find(&objs, "CronJob", "neurallog-backup"));
    assert_eq!(cj["spec"]["schedule"], "0 3 * * *");
    assert_eq!(cj["spec"]["concurrencyPolicy"], "Forbid");
    let c = &cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["args"][0], "backup");
    // The archive key comes from a Secret of its own, never the master key's.
    let env = c["env"].as_array().expect("env");
    let key = env
        .iter()
        .find(|e| e["name"] == "NEURALLOG_BACKUP_KEY")
        .expect("backup key variable");
    assert_eq!(key["valueFrom"]["secretKeyRef"]["name"], "backup-key");
    assert!(env.iter().any(|e| e["name"] == "NEURALLOG_MASTER_KEY"));
}

#[test]
fn rotation_time_rolls_server_and_redis() {
    let t = Tenant::test();
    let inputs = RenderInputs {
        rotated_at: Some("2026-12-01T00:00:00Z".into()),
    };
    let objs = render(&t, &OperatorConfig::default(), &inputs).expect("renders");
    for (kind, name) in [("Deployment", "neurallog-server"), ("StatefulSet", "redis")] {
        let o = json(find(&objs, kind, name));
        assert_eq!(
            o["spec"]["template"]["metadata"]["annotations"][ROTATION_ANNOTATION],
            "2026-12-01T00:00:00Z"
        );
    }
}

#[test]
fn invalid_tenants_are_refused() {
    let mut t = Tenant::test();
    t.spec.server.env.push(crate::crd::ServerEnvVar {
        name: "API_KEY".into(),
        value: Some("inline".into()),
        value_from: None,
    });
    assert!(render(&t, &OperatorConfig::default(), &RenderInputs::default()).is_err());
}

#[test]
fn secrets_carry_the_value_under_the_guides_key() {
    let t = Tenant::test();
    let v = crate::secrets::SecretString::new("nl_0011_abc");
    let Object::Secret(s) = secret::secret(&t, SecretKind::ApiKey, &v, "2026-12-01T00:00:00Z")
    else {
        panic!("secret")
    };
    assert_eq!(s.metadata.name.as_deref(), Some("api-keys"));
    assert_eq!(s.metadata.namespace.as_deref(), Some("tenant-acme"));
    let data = s.data.expect("data");
    assert_eq!(data["server-key"].0, b"nl_0011_abc");
    assert!(s.metadata.owner_references.is_some());
}

#[test]
fn yaml_quotes_timestamps_so_yaml_1_1_readers_keep_them_strings() {
    // Regression: kubernetes-validate (PyYAML) read an unquoted generated-at annotation as a
    // datetime and refused the Secret.
    let t = Tenant::test();
    let v = crate::secrets::SecretString::new("x");
    let o = secret::secret(&t, SecretKind::ApiKey, &v, "2026-12-03T14:20:55.060646Z");
    let text = to_yaml(std::slice::from_ref(&o)).expect("yaml");
    assert!(
        text.contains("neurallog.io/generated-at: '2026-12-03T14:20:55.060646Z'"),
        "{text}"
    );
    let back: serde_json::Value =
        serde_yaml::from_str(text.trim_start_matches("---\n")).expect("parses");
    assert_eq!(
        back["metadata"]["annotations"][secret::GENERATED_AT],
        "2026-12-03T14:20:55.060646Z"
    );
}

#[test]
fn redis_tls_closes_the_plain_port_and_the_clients_verify_it() {
    let objs = rendered(&Tenant::test().with_redis_tls().with_backup());
    let Object::ConfigMap(cm) = find(&objs, "ConfigMap", "redis-config") else {
        panic!("configmap")
    };
    let conf = cm
        .data
        .as_ref()
        .and_then(|d| d.get("redis.conf"))
        .expect("conf");
    let lines: Vec<&str> = conf.lines().collect();
    for want in [
        "port 0",
        "tls-port 6379",
        "tls-cert-file /etc/redis-tls/tls.crt",
        "tls-ca-cert-file /etc/redis-tls/ca.crt",
    ] {
        assert!(lines.contains(&want), "{want}");
    }
    assert!(!lines.contains(&"port 6379"));
    let sts = json(find(&objs, "StatefulSet", "redis"));
    let pod = &sts["spec"]["template"]["spec"];
    let vol = pod["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .find(|v| v["name"] == "tls")
        .expect("tls volume");
    assert_eq!(vol["secret"]["secretName"], "redis-tls");
    assert_eq!(
        pod["containers"][0]["readinessProbe"]["exec"]["command"],
        serde_json::json!([
            "redis-cli",
            "--tls",
            "--cacert",
            "/etc/redis-tls/ca.crt",
            "ping"
        ])
    );
    let env = server_env(&objs);
    assert!(env_value(&env, "REDIS_URL").starts_with("rediss://"));
    assert_eq!(
        env_secret(&env, "REDIS_CA_CERT"),
        ("redis-tls".into(), "ca.crt".into())
    );
    let cj = json(find(&objs, "CronJob", "neurallog-backup"));
    let benv =
        cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["env"].to_string();
    assert!(benv.contains("rediss://") && benv.contains("REDIS_CA_CERT"));
    // Without TLS: plain port, no CA.
    let plain = rendered(&Tenant::test());
    assert!(!server_env(&plain).iter().any(|e| e.name == "REDIS_CA_CERT"));
}

#[test]
fn isolation_closes_the_api_and_drops_custom_rules_but_keeps_dns_and_metrics() {
    let mut t = Tenant::test();
    t.spec.network_policy.ingress_rules = vec![
        serde_json::from_value(serde_json::json!({
            "from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]
        }))
        .expect("rule"),
    ];
    t.spec.network_policy.isolate = true;
    let objs = rendered(&t);
    let api = json(find(&objs, "NetworkPolicy", "allow-api-access"));
    assert_eq!(api["spec"]["ingress"], serde_json::json!([]));
    assert!(!objs.iter().any(|o| o.name() == "allow-custom-rules"));
    for kept in [
        "default-deny-all",
        "allow-internal-traffic",
        "allow-dns-egress",
        "allow-monitoring-scrape",
    ] {
        find(&objs, "NetworkPolicy", kept);
    }
}

#[test]
fn zero_replicas_shuts_the_server_down_without_a_budget() {
    let objs = rendered(&Tenant::test().with_replicas(0));
    let d = json(find(&objs, "Deployment", "neurallog-server"));
    assert_eq!(d["spec"]["replicas"], 0);
    assert!(objs.iter().all(|o| o.kind() != "PodDisruptionBudget"));
}

#[test]
fn redis_memory_is_capped_below_the_container_limit_and_never_evicts() {
    let objs = rendered(&Tenant::test());
    let Object::ConfigMap(cm) = find(&objs, "ConfigMap", "redis-config") else {
        panic!("configmap")
    };
    let conf = cm
        .data
        .as_ref()
        .and_then(|d| d.get("redis.conf"))
        .expect("conf");
    // 512Mi limit -> 384Mi.
    assert!(conf.lines().any(|l| l == "maxmemory 402653184"), "{conf}");
    assert!(conf.lines().any(|l| l == "maxmemory-policy noeviction"));
    let mut t = Tenant::test();
    t.spec
        .redis
        .config
        .insert("maxmemory".into(), "100mb".into());
    let objs = rendered(&t);
    let Object::ConfigMap(cm) = find(&objs, "ConfigMap", "redis-config") else {
        panic!("configmap")
    };
    let conf = cm
        .data
        .as_ref()
        .and_then(|d| d.get("redis.conf"))
        .expect("conf");
    assert_eq!(
        conf.matches("maxmemory ").count(),
        1,
        "the Tenant's value replaces ours"
    );
    assert_eq!(redis::quantity_bytes("1Gi"), Some(1 << 30));
    assert_eq!(redis::quantity_bytes("500m"), None);
}

#[test]
fn env_names_are_unique_and_a_tenant_value_replaces_a_default() {
    // Regression: the sample's LOG_LEVEL duplicated the operator's default, which
    // server-side apply refuses (env is a list keyed by name).
    let mut t = Tenant::test();
    t.spec.server.env.push(crate::crd::ServerEnvVar {
        name: "LOG_LEVEL".into(),
        value: Some("debug".into()),
        value_from: None,
    });
    t.spec.auth.rate_limit_rps = Some(5);
    t.spec.server.env.push(crate::crd::ServerEnvVar {
        name: "RATE_LIMIT_RPS".into(),
        value: Some("7".into()),
        value_from: None,
    });
    for t in variants().into_iter().chain([t.clone()]) {
        for (id, _, spec) in pods(&rendered(&t)) {
            for c in all_containers(&spec) {
                let mut names: Vec<_> = c.env.iter().flatten().map(|e| e.name.clone()).collect();
                let n = names.len();
                names.sort();
                names.dedup();
                assert_eq!(names.len(), n, "{id}/{}: duplicate env names", c.name);
            }
        }
    }
    let env = server_env(&rendered(&t));
    assert_eq!(env_value(&env, "LOG_LEVEL"), "debug");
    assert_eq!(env_value(&env, "RATE_LIMIT_RPS"), "7");
}
