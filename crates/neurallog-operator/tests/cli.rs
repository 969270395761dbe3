//! The `neurallog-operator` binary end to end: `crd` and `render`, as a user runs them.

use std::process::Command;

fn operator(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_neurallog-operator"))
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .output()
        .expect("runs")
}

fn kinds(yaml: &str) -> Vec<String> {
    yaml.lines()
        .filter_map(|l| l.strip_prefix("kind: "))
        .map(str::to_owned)
        .collect()
}

#[test]
fn crd_prints_the_committed_file() {
    let out = operator(&["crd"]);
    assert!(out.status.success());
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/crd.yaml"
    ))
    .expect("deploy/crd.yaml");
    assert_eq!(String::from_utf8_lossy(&out.stdout), committed);
}

#[test]
fn render_prints_every_object_without_secrets_by_default() {
    let out = operator(&["render", "-f", "deploy/samples/tenant.yaml"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let k = kinds(&text);
    assert_eq!(k.first().map(String::as_str), Some("Namespace"));
    for want in [
        "ResourceQuota",
        "LimitRange",
        "NetworkPolicy",
        "Role",
        "RoleBinding",
        "StatefulSet",
        "Deployment",
        "CronJob",
        "PodDisruptionBudget",
    ] {
        assert!(k.iter().any(|x| x == want), "{want} missing");
    }
    assert!(!k.iter().any(|x| x == "Secret"));
    assert_eq!(
        text.matches("\n---\n").count() + 1,
        k.len(),
        "one document per object"
    );
}

#[test]
fn render_with_secrets_adds_the_three_generated_secrets() {
    let out = operator(&[
        "render",
        "-f",
        "deploy/samples/tenant.yaml",
        "--with-secrets",
    ]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(kinds(&text).iter().filter(|k| *k == "Secret").count(), 3);
    for name in ["name: api-keys", "name: redis-auth", "name: master-key"] {
        assert!(text.contains(name), "{name}");
    }
}

#[test]
fn render_refuses_an_invalid_tenant() {
    let dir = std::env::temp_dir().join(format!("nl-op-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let f = dir.join("bad.yaml");
    std::fs::write(
        &f,
        "apiVersion: neurallog.io/v1\nkind: Tenant\nmetadata: {name: bad}\nspec:\n  displayName: Bad\n  server:\n    env: [{name: API_KEY, value: inline}]\n",
    )
    .expect("write");
    let out = operator(&["render", "-f", f.to_str().expect("path")]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("spec.server.env[0]"));
    let _ = std::fs::remove_dir_all(&dir);
}
