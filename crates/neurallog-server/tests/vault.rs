//! Secrets read from HashiCorp Vault's KV v2 API (a stand-in server speaking its responses):
//! start-up resolution, rotation, and every failure a clear error without the token.

mod support;

use std::time::Duration;

use neurallog_server::ServerConfig;
use neurallog_server::config::Flags;
use support::vault::{FakeVault, TOKEN};

fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn resolve(pairs: &[(&str, &str)]) -> Result<ServerConfig, String> {
    ServerConfig::resolve_with_secrets(&Flags::default(), &vars(pairs))
        .await
        .map_err(|e| e.0)
}

const API: &str = "vault-api-key-0123456789-0123456789-abcdef";

#[tokio::test]
async fn references_are_replaced_and_never_printed() {
    let vault = FakeVault::start().await;
    vault.put("secret/neurallog", "api_key", API);
    vault.put("secret/neurallog/redis", "password", "vault-redis-pw-xyz");
    let dir = tempfile::tempdir().expect("dir");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).expect("write");
    let c = resolve(&[
        ("VAULT_ADDR", &vault.addr),
        ("VAULT_TOKEN_FILE", token_file.to_str().expect("utf-8")),
        ("API_KEY", "vault:secret/neurallog#api_key"),
        ("REDIS_PASSWORD", "vault:secret/neurallog/redis#password"),
    ])
    .await
    .expect("resolve");
    assert_eq!(c.api_key.as_ref().expect("key").expose(), API);
    assert_eq!(
        c.redis_password.as_ref().expect("pw").expose(),
        "vault-redis-pw-xyz"
    );
    let dump = format!("{c:?} {:?}", c.redacted());
    for secret in [API, "vault-redis-pw-xyz", TOKEN] {
        assert!(!dump.contains(secret), "{secret} printed: {dump}");
    }
    let shown = c.redacted();
    assert!(shown["VAULT_ADDR"].starts_with(&vault.addr));
    assert_eq!(shown["VAULT_SECRETS"], "API_KEY, REDIS_PASSWORD");
}

#[tokio::test]
async fn failures_are_clear_and_never_show_the_token() {
    let vault = FakeVault::start().await;
    vault.put("secret/neurallog", "api_key", API);
    let e = resolve(&[
        ("VAULT_ADDR", &vault.addr),
        ("VAULT_TOKEN", "hvs.wrong-token-777"),
        ("API_KEY", "vault:secret/neurallog#api_key"),
    ])
    .await
    .unwrap_err();
    assert!(
        e.contains("403") && e.contains("VAULT_TOKEN") && e.contains("API_KEY"),
        "{e}"
    );
    assert!(!e.contains("wrong-token-777"), "{e}");

    let e = resolve(&[
        ("VAULT_ADDR", &vault.addr),
        ("VAULT_TOKEN", TOKEN),
        ("API_KEY", "vault:secret/neurallog#nope"),
    ])
    .await
    .unwrap_err();
    assert!(
        e.contains("has no field 'nope'") && e.contains("API_KEY"),
        "{e}"
    );

    let e = resolve(&[
        ("VAULT_ADDR", &vault.addr),
        ("VAULT_TOKEN", TOKEN),
        ("API_KEY", "vault:secret/elsewhere#api_key"),
    ])
    .await
    .unwrap_err();
    assert!(e.contains("no secret at secret/elsewhere"), "{e}");

    // Vault down: a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let down = format!("http://127.0.0.1:{port}");
    let e = resolve(&[
        ("VAULT_ADDR", &down),
        ("VAULT_TOKEN", TOKEN),
        ("API_KEY", "vault:secret/neurallog#api_key"),
    ])
    .await
    .unwrap_err();
    assert!(
        e.contains("cannot reach Vault") && !e.contains(TOKEN),
        "{e}"
    );

    let e = resolve(&[
        ("VAULT_TOKEN", TOKEN),
        ("API_KEY", "vault:secret/neurallog#api_key"),
    ])
    .await
    .unwrap_err();
    assert!(e.contains("VAULT_ADDR"), "{e}");
    let e = resolve(&[
        ("VAULT_ADDR", &vault.addr),
        ("API_KEY", "vault:secret/neurallog#api_key"),
    ])
    .await
    .unwrap_err();
    assert!(e.contains("VAULT_TOKEN"), "{e}");
    // Malformed and path-escaping references.
    for bad in [
        "vault:secret#x",
        "vault:secret/a",
        "vault:secret/../sys#x",
        "vault:/a#b",
    ] {
        let e = resolve(&[
            ("VAULT_ADDR", &vault.addr),
            ("VAULT_TOKEN", TOKEN),
            ("API_KEY", bad),
        ])
        .await
        .unwrap_err();
        assert!(e.starts_with("invalid API_KEY"), "{bad}: {e}");
    }
}

#[tokio::test]
async fn rotated_values_are_published() {
    let vault = FakeVault::start().await;
    vault.put("secret/neurallog", "api_key", API);
    let c = resolve(&[
        ("VAULT_ADDR", &vault.addr),
        ("VAULT_TOKEN", TOKEN),
        ("VAULT_REFRESH_SECONDS", "1"),
        ("API_KEY", "vault:secret/neurallog#api_key"),
    ])
    .await
    .expect("resolve");
    let mut rx = c.live.subscribe("API_KEY").expect("vault-backed");
    assert!(c.live.subscribe("REDIS_PASSWORD").is_none());
    let task = c.live.spawn_refresh().expect("refresh task");
    vault.put(
        "secret/neurallog",
        "api_key",
        "rotated-key-9876543210-9876543210-x",
    );
    tokio::time::timeout(Duration::from_secs(60), rx.changed())
        .await
        .expect("rotation seen")
        .expect("channel open");
    assert_eq!(rx.borrow().expose(), "rotated-key-9876543210-9876543210-x");
    task.abort();
}
