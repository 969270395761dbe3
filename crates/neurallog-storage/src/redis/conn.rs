//! Connecting to Redis: URL and credentials, TLS, timeouts, and turning Redis errors into
//! [`StorageError`]s whose messages never carry a password.

use std::fmt;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{Client, ConnectionAddr, IntoConnectionInfo, RedisError, TlsCertificates};

use super::keys;
use crate::{ErrorKind, Result, StorageError};

/// How to reach Redis.
#[derive(Clone)]
pub struct RedisOptions {
    /// `redis://[user[:password]@]host[:port][/db]` or `rediss://…` for TLS.
    pub url: String,
    /// Password when it is not in the URL (it wins over one in the URL).
    pub password: Option<String>,
    /// PEM CA bundle that a `rediss://` server certificate must chain to; without it the
    /// system's trust store is used.
    pub ca_cert_pem: Option<Vec<u8>>,
    /// Start of every key (default [`keys::DEFAULT_PREFIX`]); lets several deployments share
    /// one Redis.
    pub key_prefix: Option<String>,
    /// Longest wait for one Redis reply, and for establishing a connection. A call that meets
    /// a Redis that does not answer fails with [`ErrorKind::Unavailable`] after about this long.
    pub timeout: Duration,
    /// Whether blocks are sealed with the tenants' data keys. Off by default for tests and
    /// tools; the server always turns it on.
    pub encryption: crate::crypt::Encryption,
}

impl RedisOptions {
    /// Options for `url` with defaults for everything else.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            password: None,
            ca_cert_pem: None,
            key_prefix: None,
            timeout: DEFAULT_TIMEOUT,
            encryption: crate::crypt::Encryption::Off,
        }
    }
}

/// Default for [`RedisOptions::timeout`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);

impl fmt::Debug for RedisOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisOptions")
            .field("url", &redact_url(&self.url))
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .field("ca_cert_pem", &self.ca_cert_pem.as_ref().map(|c| c.len()))
            .field("key_prefix", &self.key_prefix)
            .field("timeout", &self.timeout)
            .field("encryption", &self.encryption.keyring().is_some())
            .finish()
    }
}

/// The URL with any password replaced by `[redacted]` (for logs and errors).
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "[unparsable redis url]".to_owned();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:[redacted]@{host}"),
        None => format!("{scheme}://{userinfo}@{host}"),
    }
}

/// A connected client: the auto-reconnecting connection and where it goes (for messages).
#[derive(Clone)]
pub struct Connection {
    pub manager: ConnectionManager,
    /// `host:port/db` (and `tls`), never credentials.
    pub target: String,
}

/// Opens the connection, checks the credentials with `PING` and loads the scripts.
///
/// Every failure is [`ErrorKind::Unavailable`] with a message that says what went wrong
/// (unreachable, authentication, TLS, permission) and where, without any secret.
pub async fn connect(opts: &RedisOptions) -> Result<Connection> {
    if let Some(p) = &opts.key_prefix {
        keys::validate_prefix(p)?;
    }
    // Only one crypto provider is compiled in by this crate, but others in the process may
    // bring their own; rustls then needs a process default. Installing fails harmlessly when
    // one is set already.
    let _ = rustls::crypto::ring::default_provider().install_default();

    let shown = redact_url(&opts.url);
    let config_err = |what: &str| StorageError::unavailable(format!("redis url {shown}: {what}"));
    let mut info = opts
        .url
        .as_str()
        .into_connection_info()
        .map_err(|e| config_err(&e.to_string()))?;
    if let Some(pw) = &opts.password {
        let settings = info.redis_settings().clone().set_password(pw);
        info = info.set_redis_settings(settings);
    }
    let (target, tls) = match info.addr() {
        ConnectionAddr::Tcp(h, p) => (format!("{h}:{p}"), false),
        ConnectionAddr::TcpTls {
            host,
            port,
            insecure,
            ..
        } => {
            if *insecure {
                return Err(config_err(
                    "'#insecure' (no certificate check) is not supported; give the CA with REDIS_CA_CERT",
                ));
            }
            (format!("{host}:{port} (tls)"), true)
        }
        _ => return Err(config_err("only redis:// and rediss:// are supported")),
    };
    let target = format!("{target} db {}", info.redis_settings().db());
    if opts.ca_cert_pem.is_some() && !tls {
        return Err(config_err(
            "a CA certificate was given but the url is not rediss://",
        ));
    }
    let client = if tls {
        Client::build_with_tls(
            info,
            TlsCertificates {
                client_tls: None,
                root_cert: opts.ca_cert_pem.clone(),
            },
        )
    } else {
        Client::open(info)
    }
    .map_err(|e| config_err(&e.to_string()))?;

    // NB: few, quick reconnect attempts: a call made while Redis is away waits for the
    // reconnect future, and must fail within about `timeout` rather than queue for long.
    // Every failed call starts a new attempt, so the backend still reconnects by itself.
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(opts.timeout))
        .set_response_timeout(Some(opts.timeout))
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_millis(500));
    let conn_err = |e: RedisError| {
        let mut err = map_err(&target, e);
        err.message = format!("cannot connect: {}", err.message);
        err
    };
    let manager = tokio::time::timeout(
        opts.timeout * 3,
        ConnectionManager::new_with_config(client, config),
    )
    .await
    .map_err(|_| {
        StorageError::unavailable(format!("cannot connect: redis at {target} did not answer"))
    })?
    .map_err(conn_err)?;
    let mut m = manager.clone();
    let _: String = ::redis::cmd("PING")
        .query_async(&mut m)
        .await
        .map_err(conn_err)?;
    for s in super::scripts::all() {
        s.prepare_invoke()
            .load_async(&mut m)
            .await
            .map_err(conn_err)?;
    }
    Ok(Connection { manager, target })
}

/// Maps a Redis error to a storage error; `target` names the server in the message.
pub fn map_err(target: &str, e: RedisError) -> StorageError {
    use ::redis::{ErrorKind as K, ServerErrorKind as S};
    let code = e.code().unwrap_or("");
    let (kind, what) = match e.kind() {
        K::AuthenticationFailed => (ErrorKind::Unavailable, "authentication failed"),
        _ if code == "NOAUTH" => (ErrorKind::Unavailable, "authentication required"),
        _ if code == "WRONGPASS" => (ErrorKind::Unavailable, "authentication failed"),
        K::Server(S::NoPerm) => (ErrorKind::Unavailable, "permission denied"),
        _ if code == "OOM" => (ErrorKind::Unavailable, "redis is out of memory"),
        _ if code == "NEURALLOG" => (ErrorKind::Corrupt, "stored data has an unexpected shape"),
        K::Server(S::BusyLoading | S::TryAgain | S::MasterDown | S::ClusterDown | S::ReadOnly) => {
            (ErrorKind::Unavailable, "redis is not ready")
        }
        _ if code == "BUSY" => (ErrorKind::Unavailable, "redis is busy"),
        _ if e.to_string().contains("certificate") => {
            (ErrorKind::Unavailable, "tls certificate check failed")
        }
        K::Io | K::Parse => (ErrorKind::Unavailable, "unreachable"),
        _ if e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal() => {
            (ErrorKind::Unavailable, "unreachable")
        }
        _ => (ErrorKind::Internal, "command failed"),
    };
    StorageError::new(kind, format!("redis at {target}: {what}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redact_url("redis://u:s3cret@h:6379/2"),
            "redis://u:[redacted]@h:6379/2"
        );
        assert_eq!(redact_url("rediss://:s3cret@h"), "rediss://:[redacted]@h");
        assert_eq!(redact_url("redis://h:1"), "redis://h:1");
        assert!(!redact_url("nonsense s3cret").contains("s3cret"));
        let mut o = RedisOptions::new("redis://u:s3cret@h");
        o.password = Some("other-secret".into());
        let d = format!("{o:?}");
        assert!(!d.contains("s3cret") && !d.contains("other-secret"), "{d}");
    }
}
