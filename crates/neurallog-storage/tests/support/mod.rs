//! Test helpers for the Redis backend: a store that keeps its `redis-server` alive, the
//! ways of reaching Redis the suite runs in, and test certificates.

#![allow(dead_code)] // each test file uses a different part of this module

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use neurallog_core::{
    Entry, EntryId, LogName, TenantId,
    ingest::NewEvent,
    query::{Matcher, ReadQuery, SearchQuery},
};
use neurallog_storage::crypt::{Encryption, Keyring, MasterKey};
pub use neurallog_storage::redis::testing::{RedisServer, redis_available};
use neurallog_storage::redis::{RedisOptions, RedisStorage};
use neurallog_storage::{
    ImportOutcome, LogSummary, Page, PurgeOutcome, ReencryptOutcome, Result, Scope, Storage,
};

/// Path of a file in the server's directory.
pub fn in_dir(server: &RedisServer, name: &str) -> PathBuf {
    server.dir().join(name)
}

/// A Redis store that owns the server it talks to, so the server lives as long as the store.
#[derive(Debug)]
pub struct ServedStore {
    pub store: RedisStorage,
    server: Arc<ServerHandle>,
}

/// Keeps a [`RedisServer`] alive (not `Debug` itself).
pub struct ServerHandle(pub std::sync::Mutex<RedisServer>);

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerHandle")
    }
}

/// How the store reaches its Redis.
#[derive(Clone, Copy, Debug)]
pub enum Mode {
    /// No password.
    Plain,
    /// `requirepass`, password given as an option.
    Password,
    /// An ACL user confined to the deployment's key prefix, without `@dangerous` commands.
    Acl,
    /// `rediss://` with a CA generated for the test.
    Tls,
    /// No password, blocks sealed with tenants' data keys (as the server runs it).
    Encrypted,
}

impl ServedStore {
    /// A fresh server and a store on it with `prefix`.
    pub async fn fresh(prefix: Option<&str>) -> Self {
        let server = RedisServer::start(&[]);
        let mut opts = RedisOptions::new(server.url());
        opts.key_prefix = prefix.map(str::to_owned);
        Self::connect(server, opts).await
    }

    /// A fresh server set up for `mode`, and a store on it.
    pub async fn fresh_in(mode: Mode) -> Self {
        match mode {
            Mode::Plain => Self::fresh(None).await,
            Mode::Password => {
                let server = RedisServer::start(&["--requirepass", "suite-pw-4471"]);
                let mut opts = RedisOptions::new(server.url());
                opts.password = Some("suite-pw-4471".into());
                Self::connect(server, opts).await
            }
            Mode::Acl => {
                let server = RedisServer::start(&[]);
                let out = server.cli(
                    None,
                    &[
                        "ACL",
                        "SETUSER",
                        "suite",
                        "on",
                        ">suite-pw-1",
                        "~neurallog:*",
                        "+@all",
                        "-@dangerous",
                    ],
                );
                assert_eq!(out.trim(), "OK", "{out}");
                // The default user can no longer do anything: only the ACL user works.
                let out = server.cli(None, &["ACL", "SETUSER", "default", "off"]);
                assert_eq!(out.trim(), "OK", "{out}");
                let url = format!("redis://suite:suite-pw-1@127.0.0.1:{}", server.port);
                Self::connect(server, RedisOptions::new(url)).await
            }
            Mode::Encrypted => {
                let server = RedisServer::start(&[]);
                let mut opts = RedisOptions::new(server.url());
                opts.encryption =
                    Encryption::On(Arc::new(Keyring::new(MasterKey::generate().0, None)));
                Self::connect(server, opts).await
            }
            Mode::Tls => {
                let (server, ca) = tls_server();
                let mut opts = RedisOptions::new(format!("rediss://127.0.0.1:{}", server.port));
                opts.ca_cert_pem = Some(ca.into_bytes());
                Self::connect(server, opts).await
            }
        }
    }

    async fn connect(server: RedisServer, opts: RedisOptions) -> Self {
        let store = RedisStorage::connect(opts).await.expect("connect");
        Self {
            store,
            server: Arc::new(ServerHandle(std::sync::Mutex::new(server))),
        }
    }
}

/// A CA and a server certificate for 127.0.0.1 signed by it: (ca pem, cert pem, key pem).
pub fn pki() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().expect("ca key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).expect("ca cert");
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().expect("server key");
    let params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .expect("server params");
    let cert = params.signed_by(&key, &issuer).expect("server cert");
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}

pub fn tls_server() -> (RedisServer, String) {
    let (ca, cert, key) = pki();
    let dir = tempfile::tempdir().expect("pki dir");
    let write = |name: &str, body: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, body).expect("write pem");
        p.display().to_string()
    };
    let args = vec![
        "--save".to_owned(),
        String::new(),
        "--appendonly".into(),
        "no".into(),
        "--tls-cert-file".into(),
        write("server.pem", &cert),
        "--tls-key-file".into(),
        write("server.key", &key),
        "--tls-ca-cert-file".into(),
        write("ca.pem", &ca),
        "--tls-auth-clients".into(),
        "no".into(),
    ];
    let mut server = RedisServer::start_with(args, true);
    server.keep_dir(dir);
    (server, ca)
}

#[async_trait]
impl Storage for ServedStore {
    fn backend(&self) -> &'static str {
        self.store.backend()
    }
    async fn append(&self, t: &TenantId, l: &LogName, e: Vec<NewEvent>) -> Result<Vec<EntryId>> {
        self.store.append(t, l, e).await
    }
    async fn list_logs(&self, t: &TenantId) -> Result<Vec<LogName>> {
        self.store.list_logs(t).await
    }
    async fn read(&self, t: &TenantId, l: &LogName, q: &ReadQuery) -> Result<Page> {
        self.store.read(t, l, q).await
    }
    async fn get(&self, t: &TenantId, l: &LogName, id: EntryId) -> Result<Option<Entry>> {
        self.store.get(t, l, id).await
    }
    async fn delete_entry(&self, t: &TenantId, l: &LogName, id: EntryId) -> Result<bool> {
        self.store.delete_entry(t, l, id).await
    }
    async fn delete_log(&self, t: &TenantId, l: &LogName) -> Result<u64> {
        self.store.delete_log(t, l).await
    }
    async fn search(&self, t: &TenantId, q: &SearchQuery) -> Result<Page> {
        self.store.search(t, q).await
    }
    async fn log_summary(&self, t: &TenantId, l: &LogName) -> Result<LogSummary> {
        self.store.log_summary(t, l).await
    }
    async fn tenant_summary(&self, t: &TenantId) -> Result<Vec<(LogName, LogSummary)>> {
        self.store.tenant_summary(t).await
    }
    async fn delete_tenant(&self, t: &TenantId) -> Result<u64> {
        self.store.delete_tenant(t).await
    }
    async fn meta_get(&self, sc: Scope<'_>, sp: &str, k: &str) -> Result<Option<Vec<u8>>> {
        self.store.meta_get(sc, sp, k).await
    }
    async fn meta_put(&self, sc: Scope<'_>, sp: &str, k: &str, v: Vec<u8>) -> Result<()> {
        self.store.meta_put(sc, sp, k, v).await
    }
    async fn meta_delete(&self, sc: Scope<'_>, sp: &str, k: &str) -> Result<bool> {
        self.store.meta_delete(sc, sp, k).await
    }
    async fn meta_list(&self, sc: Scope<'_>, sp: &str) -> Result<Vec<(String, Vec<u8>)>> {
        self.store.meta_list(sc, sp).await
    }
    async fn audit_append(&self, sc: Scope<'_>, r: Vec<Vec<u8>>) -> Result<u64> {
        self.store.audit_append(sc, r).await
    }
    async fn audit_read(&self, sc: Scope<'_>, from: u64, n: usize) -> Result<Vec<(u64, Vec<u8>)>> {
        self.store.audit_read(sc, from, n).await
    }
    async fn audit_len(&self, sc: Scope<'_>) -> Result<u64> {
        self.store.audit_len(sc).await
    }
    async fn ping(&self) -> Result<()> {
        self.store.ping().await
    }
    async fn flush(&self) -> Result<()> {
        self.store.flush().await
    }
    async fn disk_usage(&self) -> Result<Option<u64>> {
        self.store.disk_usage().await
    }
    async fn purge_before(
        &self,
        t: &TenantId,
        l: &LogName,
        cutoff_ms: i64,
        max_blocks: usize,
    ) -> Result<PurgeOutcome> {
        self.store.purge_before(t, l, cutoff_ms, max_blocks).await
    }
    async fn erase(&self, t: &TenantId, l: &LogName, m: &Matcher) -> Result<u64> {
        self.store.erase(t, l, m).await
    }
    async fn reencrypt(&self, t: &TenantId, l: &LogName, n: usize) -> Result<ReencryptOutcome> {
        self.store.reencrypt(t, l, n).await
    }
    async fn compact(&self) -> Result<()> {
        self.store.compact().await
    }
    async fn import(&self, t: &TenantId, l: &LogName, e: Vec<Entry>) -> Result<ImportOutcome> {
        self.store.import(t, l, e).await
    }
}
