//! Token settings: what `JWT_*`, `OIDC_*` and `OAUTH2_*` configure, and the checks that stop
//! start-up on a setting that would weaken verification.
//!
//! The server owns precedence (flag > environment > file) and the `NAME_FILE` convention; it
//! hands [`TokenSettings::from_env`] a lookup function that already applies them.

use std::time::Duration;

use jsonwebtoken::{Algorithm, AlgorithmFamily};
use url::Url;

use crate::identity::ClaimNames;
use crate::keys;
use crate::secret::SecretBytes;

/// Everything the token verifier is configured with. Build it with [`TokenSettings::from_env`]
/// or by setting fields on [`TokenSettings::default`]; [`crate::TokenVerifier::new`] checks it.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    /// Accepted JWT algorithms (`JWT_ALGORITHMS`). Empty: JWTs are not verified locally.
    pub algorithms: Vec<Algorithm>,
    /// HMAC secret for HS256/384/512 (`JWT_SECRET`), used as raw bytes.
    pub secret: Option<SecretBytes>,
    /// PEM public key for RS*/PS*/ES*/EdDSA (`JWT_PUBLIC_KEY`, inline or read from a path).
    pub public_key_pem: Option<String>,
    /// JWKS location (`JWT_JWKS_URL`); overrides the one OIDC discovery finds.
    pub jwks_url: Option<Url>,
    /// Required `iss` (`JWT_ISSUER`); defaults to the OIDC issuer when discovery is used.
    pub issuer: Option<String>,
    /// Required audience (`JWT_AUDIENCE`): the token's `aud` (string or array) must contain it.
    pub audience: Option<String>,
    /// Claim names for tenant, roles and log patterns (`JWT_TENANT_CLAIM`, `JWT_ROLES_CLAIM`,
    /// `JWT_LOGS_CLAIM`).
    pub claims: ClaimNames,
    /// Clock leeway for `exp` and `nbf` (`JWT_LEEWAY_SECONDS`, default 30, at most 300).
    pub leeway_seconds: u64,
    /// OIDC issuer (`OIDC_ISSUER_URL`), kept as written: discovery must return exactly it.
    pub oidc_issuer: Option<String>,
    /// RFC 7662 endpoint (`OAUTH2_INTROSPECTION_URL`); defaults to the discovered one.
    pub introspection_url: Option<Url>,
    /// Client id for introspection (`OAUTH2_CLIENT_ID`).
    pub client_id: Option<String>,
    /// Client secret for introspection (`OAUTH2_CLIENT_SECRET`).
    pub client_secret: Option<SecretBytes>,
    /// Timeout of every call to the identity provider (default 5 s).
    pub http_timeout: Duration,
    /// Least time between two JWKS fetches, whatever triggers them (default 10 s).
    pub jwks_min_refresh_interval: Duration,
    /// Age after which the JWKS is fetched again even without an unknown key id, so a key the
    /// provider withdrew stops being accepted (default 15 min).
    pub jwks_max_age: Duration,
    /// Longest time a verified token (JWT or introspected) is remembered as valid, by its
    /// hash (default 60 s; never past the token's `exp`).
    pub token_cache_ttl: Duration,
    /// How long an inactive answer is reused (default 5 s).
    pub introspection_negative_ttl: Duration,
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self {
            algorithms: Vec::new(),
            secret: None,
            public_key_pem: None,
            jwks_url: None,
            issuer: None,
            audience: None,
            claims: ClaimNames::default(),
            leeway_seconds: DEFAULT_LEEWAY_SECONDS,
            oidc_issuer: None,
            introspection_url: None,
            client_id: None,
            client_secret: None,
            http_timeout: Duration::from_secs(5),
            jwks_min_refresh_interval: Duration::from_secs(10),
            jwks_max_age: Duration::from_secs(15 * 60),
            token_cache_ttl: Duration::from_secs(60),
            introspection_negative_ttl: Duration::from_secs(5),
        }
    }
}

/// Default clock leeway, seconds.
pub const DEFAULT_LEEWAY_SECONDS: u64 = 30;
/// Largest accepted leeway, seconds: more would make `exp` meaningless for short tokens.
pub const MAX_LEEWAY_SECONDS: u64 = 300;

/// Every variable [`TokenSettings::from_env`] reads.
pub const VARIABLES: &[&str] = &[
    "JWT_ALGORITHMS",
    "JWT_SECRET",
    "JWT_PUBLIC_KEY",
    "JWT_JWKS_URL",
    "JWT_ISSUER",
    "JWT_AUDIENCE",
    "JWT_TENANT_CLAIM",
    "JWT_ROLES_CLAIM",
    "JWT_LOGS_CLAIM",
    "JWT_LEEWAY_SECONDS",
    "OIDC_ISSUER_URL",
    "OAUTH2_INTROSPECTION_URL",
    "OAUTH2_CLIENT_ID",
    "OAUTH2_CLIENT_SECRET",
];

const ALLOWED_ALGORITHMS: &str = "a comma list of HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA";

/// A token setting that cannot be used. The message names the variable, the value (never a
/// secret) and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// A value that does not parse or is not allowed.
    #[error("{variable}={value} is not valid: {allowed}")]
    Invalid {
        /// The variable.
        variable: &'static str,
        /// The value as given, or `[redacted]` for secrets.
        value: String,
        /// What is allowed.
        allowed: String,
    },
    /// A variable that the other settings need.
    #[error("{variable} is required: {why}")]
    Missing {
        /// The variable.
        variable: &'static str,
        /// Which setting needs it.
        why: String,
    },
    /// A variable that is set but has no effect with the other settings (a likely mistake).
    #[error("{variable} is set but {why}")]
    Unused {
        /// The variable.
        variable: &'static str,
        /// Why it has no effect.
        why: String,
    },
    /// The HTTP client towards the identity provider could not be built.
    #[error("http client for the identity provider: {0}")]
    Client(String),
    /// OIDC discovery failed or returned something unusable.
    #[error("OIDC_ISSUER_URL={issuer}: discovery failed: {reason}")]
    Discovery {
        /// The configured issuer.
        issuer: String,
        /// What went wrong.
        reason: String,
    },
}

fn invalid(
    variable: &'static str,
    value: impl Into<String>,
    allowed: impl Into<String>,
) -> SettingsError {
    SettingsError::Invalid {
        variable,
        value: value.into(),
        allowed: allowed.into(),
    }
}

impl TokenSettings {
    /// Reads the token variables through `get` (which already resolves flags, `NAME_FILE` and
    /// the config file). `Ok(None)` when none of them is set: token authentication is off.
    pub fn from_env(get: &dyn Fn(&str) -> Option<String>) -> Result<Option<Self>, SettingsError> {
        let var = |name: &str| {
            get(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        if VARIABLES.iter().all(|name| var(name).is_none()) {
            return Ok(None);
        }
        let mut s = TokenSettings::default();
        if let Some(v) = var("JWT_ALGORITHMS") {
            s.algorithms = parse_algorithms(&v)?;
        }
        // NB: the secret is taken untrimmed: whitespace may be part of it.
        s.secret = get("JWT_SECRET")
            .filter(|v| !v.is_empty())
            .map(SecretBytes::new);
        if let Some(v) = var("JWT_PUBLIC_KEY") {
            s.public_key_pem = Some(read_pem(&v)?);
        }
        s.jwks_url = var("JWT_JWKS_URL")
            .map(|v| parse_url("JWT_JWKS_URL", &v))
            .transpose()?;
        s.issuer = var("JWT_ISSUER");
        s.audience = var("JWT_AUDIENCE");
        if let Some(v) = var("JWT_TENANT_CLAIM") {
            s.claims.tenant = v;
        }
        if let Some(v) = var("JWT_ROLES_CLAIM") {
            s.claims.roles = v;
        }
        if let Some(v) = var("JWT_LOGS_CLAIM") {
            s.claims.logs = v;
        }
        if let Some(v) = var("JWT_LEEWAY_SECONDS") {
            s.leeway_seconds = v.parse().map_err(|_| {
                invalid(
                    "JWT_LEEWAY_SECONDS",
                    &v,
                    format!("whole seconds, 0 to {MAX_LEEWAY_SECONDS}"),
                )
            })?;
        }
        if let Some(v) = var("OIDC_ISSUER_URL") {
            parse_url("OIDC_ISSUER_URL", &v)?;
            s.oidc_issuer = Some(v);
        }
        s.introspection_url = var("OAUTH2_INTROSPECTION_URL")
            .map(|v| parse_url("OAUTH2_INTROSPECTION_URL", &v))
            .transpose()?;
        s.client_id = var("OAUTH2_CLIENT_ID");
        s.client_secret = get("OAUTH2_CLIENT_SECRET")
            .filter(|v| !v.is_empty())
            .map(SecretBytes::new);
        s.validate()?;
        Ok(Some(s))
    }

    /// Checks that the settings are complete and coherent: every configured algorithm has a
    /// key source, no key or secret is set that nothing uses, HMAC secrets are long enough,
    /// the PEM key belongs to a configured family and is not the HMAC secret.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let has = |family: AlgorithmFamily| self.algorithms.iter().any(|a| a.family() == family);
        let hmac = has(AlgorithmFamily::Hmac);
        let asymmetric =
            has(AlgorithmFamily::Rsa) || has(AlgorithmFamily::Ec) || has(AlgorithmFamily::Ed);
        let introspection = self.introspection_url.is_some()
            || (self.oidc_issuer.is_some() && self.client_id.is_some());

        if self.algorithms.is_empty() && !introspection {
            return Err(SettingsError::Missing {
                variable: "JWT_ALGORITHMS",
                why: "token authentication is configured but neither JWT algorithms nor \
                      OAUTH2_INTROSPECTION_URL (or OIDC_ISSUER_URL with OAUTH2_CLIENT_ID) are set"
                    .into(),
            });
        }

        if hmac {
            let Some(secret) = &self.secret else {
                return Err(SettingsError::Missing {
                    variable: "JWT_SECRET",
                    why: "JWT_ALGORITHMS has an HMAC algorithm".into(),
                });
            };
            let needed = self
                .algorithms
                .iter()
                .map(|a| min_hmac_secret_len(*a))
                .max()
                .unwrap_or(0);
            if secret.len() < needed {
                return Err(invalid(
                    "JWT_SECRET",
                    "[redacted]",
                    format!(
                        "at least {needed} bytes for the configured HMAC algorithms (it has {})",
                        secret.len()
                    ),
                ));
            }
        } else if self.secret.is_some() {
            return Err(SettingsError::Unused {
                variable: "JWT_SECRET",
                why: "JWT_ALGORITHMS has no HMAC algorithm (HS256, HS384, HS512)".into(),
            });
        }

        if asymmetric {
            if self.public_key_pem.is_none()
                && self.jwks_url.is_none()
                && self.oidc_issuer.is_none()
            {
                return Err(SettingsError::Missing {
                    variable: "JWT_PUBLIC_KEY",
                    why: "JWT_ALGORITHMS has a public-key algorithm; set JWT_PUBLIC_KEY, \
                          JWT_JWKS_URL or OIDC_ISSUER_URL"
                        .into(),
                });
            }
        } else {
            for (variable, set) in [
                ("JWT_PUBLIC_KEY", self.public_key_pem.is_some()),
                ("JWT_JWKS_URL", self.jwks_url.is_some()),
            ] {
                if set {
                    return Err(SettingsError::Unused {
                        variable,
                        why: "JWT_ALGORITHMS has no public-key algorithm (RS*, PS*, ES*, EdDSA)"
                            .into(),
                    });
                }
            }
        }

        if let Some(pem) = &self.public_key_pem {
            keys::pem_key(pem, &self.algorithms)
                .map_err(|why| invalid("JWT_PUBLIC_KEY", "(PEM)", why))?;
            // NB: the classic key-confusion attack signs HS256 with the public key as secret;
            // refuse a configuration where that secret would be right.
            if self
                .secret
                .as_ref()
                .is_some_and(|s| s.expose() == pem.as_bytes())
            {
                return Err(invalid(
                    "JWT_SECRET",
                    "[redacted]",
                    "a secret of its own, never the text of JWT_PUBLIC_KEY",
                ));
            }
        }

        if self.introspection_url.is_some() {
            if self.client_id.is_none() {
                return Err(SettingsError::Missing {
                    variable: "OAUTH2_CLIENT_ID",
                    why: "OAUTH2_INTROSPECTION_URL is set".into(),
                });
            }
            if self.client_secret.is_none() {
                return Err(SettingsError::Missing {
                    variable: "OAUTH2_CLIENT_SECRET",
                    why: "OAUTH2_INTROSPECTION_URL is set".into(),
                });
            }
        } else if self.oidc_issuer.is_none() {
            for (variable, set) in [
                ("OAUTH2_CLIENT_ID", self.client_id.is_some()),
                ("OAUTH2_CLIENT_SECRET", self.client_secret.is_some()),
            ] {
                if set {
                    return Err(SettingsError::Unused {
                        variable,
                        why: "neither OAUTH2_INTROSPECTION_URL nor OIDC_ISSUER_URL is set".into(),
                    });
                }
            }
        }
        if self.client_id.is_some() != self.client_secret.is_some() {
            let variable = if self.client_id.is_none() {
                "OAUTH2_CLIENT_ID"
            } else {
                "OAUTH2_CLIENT_SECRET"
            };
            return Err(SettingsError::Missing {
                variable,
                why: "introspection needs both OAUTH2_CLIENT_ID and OAUTH2_CLIENT_SECRET".into(),
            });
        }

        if self.leeway_seconds > MAX_LEEWAY_SECONDS {
            return Err(invalid(
                "JWT_LEEWAY_SECONDS",
                self.leeway_seconds.to_string(),
                format!("whole seconds, 0 to {MAX_LEEWAY_SECONDS}"),
            ));
        }
        for (variable, name) in [
            ("JWT_TENANT_CLAIM", &self.claims.tenant),
            ("JWT_ROLES_CLAIM", &self.claims.roles),
            ("JWT_LOGS_CLAIM", &self.claims.logs),
        ] {
            if name.trim().is_empty() {
                return Err(invalid(variable, name.as_str(), "a non-empty claim name"));
            }
        }
        Ok(())
    }

    /// Identity-provider URLs that use plain `http://` to a host other than loopback: keys and
    /// introspection answers could be forged on the way. For `config check` and a start-up
    /// warning (plain HTTP stays possible for in-cluster providers).
    pub fn insecure_urls(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let mut check = |variable: &'static str, url: Option<Url>| {
            if let Some(url) = url
                && url.scheme() == "http"
                && !is_loopback(&url)
            {
                out.push((variable, url.to_string()));
            }
        };
        check("JWT_JWKS_URL", self.jwks_url.clone());
        check(
            "OIDC_ISSUER_URL",
            self.oidc_issuer.as_deref().and_then(|u| Url::parse(u).ok()),
        );
        check("OAUTH2_INTROSPECTION_URL", self.introspection_url.clone());
        out
    }
}

/// Parses `JWT_ALGORITHMS`.
fn parse_algorithms(value: &str) -> Result<Vec<Algorithm>, SettingsError> {
    let mut out = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let alg = parse_algorithm(item).ok_or_else(|| {
            let allowed = if item.eq_ignore_ascii_case("none") {
                format!("`none` is never accepted; {ALLOWED_ALGORITHMS}")
            } else {
                ALLOWED_ALGORITHMS.to_owned()
            };
            invalid("JWT_ALGORITHMS", value, allowed)
        })?;
        if !out.contains(&alg) {
            out.push(alg);
        }
    }
    if out.is_empty() {
        return Err(invalid("JWT_ALGORITHMS", value, ALLOWED_ALGORITHMS));
    }
    Ok(out)
}

/// One algorithm name, case-insensitively (`EdDSA` is also accepted as `EDDSA`).
pub(crate) fn parse_algorithm(name: &str) -> Option<Algorithm> {
    Some(match name.to_ascii_uppercase().as_str() {
        "HS256" => Algorithm::HS256,
        "HS384" => Algorithm::HS384,
        "HS512" => Algorithm::HS512,
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EDDSA" => Algorithm::EdDSA,
        _ => return None,
    })
}

/// RFC 7518 §3.2: an HMAC key at least as long as the hash output.
fn min_hmac_secret_len(alg: Algorithm) -> usize {
    match alg {
        Algorithm::HS256 => 32,
        Algorithm::HS384 => 48,
        Algorithm::HS512 => 64,
        _ => 0,
    }
}

/// `JWT_PUBLIC_KEY`: inline PEM, or the path of a PEM file.
fn read_pem(value: &str) -> Result<String, SettingsError> {
    if value.contains("-----BEGIN") {
        return Ok(value.to_owned());
    }
    std::fs::read_to_string(value).map_err(|e| {
        invalid(
            "JWT_PUBLIC_KEY",
            value,
            format!("inline PEM or the path of a readable PEM file ({e})"),
        )
    })
}

fn parse_url(variable: &'static str, value: &str) -> Result<Url, SettingsError> {
    let url = Url::parse(value)
        .map_err(|e| invalid(variable, value, format!("an http:// or https:// URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(invalid(
            variable,
            value,
            "an http:// or https:// URL with a host",
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            variable,
            "[redacted]",
            "a URL without credentials (use OAUTH2_CLIENT_ID and OAUTH2_CLIENT_SECRET)",
        ));
    }
    Ok(url)
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(vars: &[(&str, &str)]) -> Result<Option<TokenSettings>, SettingsError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        TokenSettings::from_env(&|name| map.get(name).cloned())
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn nothing_set_means_off() {
        assert!(from(&[]).unwrap().is_none());
        assert!(from(&[("JWT_ALGORITHMS", "  ")]).unwrap().is_none());
    }

    #[test]
    fn hmac_settings() {
        let s = from(&[("JWT_ALGORITHMS", "hs256, HS256"), ("JWT_SECRET", SECRET)])
            .unwrap()
            .unwrap();
        assert_eq!(s.algorithms, [Algorithm::HS256]);
        assert_eq!(s.claims, ClaimNames::default());
        assert_eq!(s.leeway_seconds, 30);
    }

    #[test]
    fn algorithm_none_and_unknown_are_refused() {
        let e = from(&[("JWT_ALGORITHMS", "none"), ("JWT_SECRET", SECRET)]).unwrap_err();
        assert!(e.to_string().contains("JWT_ALGORITHMS=none"), "{e}");
        assert!(e.to_string().contains("never accepted"), "{e}");
        let e = from(&[("JWT_ALGORITHMS", "HS256,XS1")]).unwrap_err();
        assert!(
            e.to_string()
                .contains("JWT_ALGORITHMS=HS256,XS1 is not valid"),
            "{e}"
        );
        assert!(e.to_string().contains("RS256"), "{e}");
    }

    #[test]
    fn secrets_never_appear_in_errors() {
        let e = from(&[
            ("JWT_ALGORITHMS", "HS512"),
            ("JWT_SECRET", "short-but-secret"),
        ])
        .unwrap_err();
        let msg = e.to_string();
        assert!(!msg.contains("short-but-secret"), "{msg}");
        assert!(
            msg.contains("JWT_SECRET") && msg.contains("64 bytes"),
            "{msg}"
        );
    }

    #[test]
    fn missing_and_unused_pieces() {
        let e = from(&[("JWT_ALGORITHMS", "HS256")]).unwrap_err();
        assert!(
            matches!(
                e,
                SettingsError::Missing {
                    variable: "JWT_SECRET",
                    ..
                }
            ),
            "{e}"
        );
        let e = from(&[("JWT_ALGORITHMS", "RS256")]).unwrap_err();
        assert!(
            matches!(
                e,
                SettingsError::Missing {
                    variable: "JWT_PUBLIC_KEY",
                    ..
                }
            ),
            "{e}"
        );
        let e = from(&[
            ("JWT_ALGORITHMS", "RS256"),
            ("JWT_JWKS_URL", "https://idp/jwks"),
            ("JWT_SECRET", SECRET),
        ])
        .unwrap_err();
        assert!(
            matches!(
                e,
                SettingsError::Unused {
                    variable: "JWT_SECRET",
                    ..
                }
            ),
            "{e}"
        );
        let e = from(&[("JWT_SECRET", SECRET)]).unwrap_err();
        assert!(
            matches!(
                e,
                SettingsError::Missing {
                    variable: "JWT_ALGORITHMS",
                    ..
                }
            ),
            "{e}"
        );
        let e = from(&[("OAUTH2_INTROSPECTION_URL", "https://idp/introspect")]).unwrap_err();
        assert!(
            matches!(
                e,
                SettingsError::Missing {
                    variable: "OAUTH2_CLIENT_ID",
                    ..
                }
            ),
            "{e}"
        );
        let e = from(&[
            ("JWT_ALGORITHMS", "HS256"),
            ("JWT_SECRET", SECRET),
            ("OAUTH2_CLIENT_ID", "x"),
        ])
        .unwrap_err();
        assert!(
            matches!(
                e,
                SettingsError::Unused {
                    variable: "OAUTH2_CLIENT_ID",
                    ..
                }
            ),
            "{e}"
        );
        let e = from(&[
            ("JWT_ALGORITHMS", "ES256"),
            ("JWT_PUBLIC_KEY", "/nonexistent/key.pem"),
        ])
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("JWT_PUBLIC_KEY=/nonexistent/key.pem"),
            "{e}"
        );
    }

    #[test]
    fn urls_are_checked() {
        let e = from(&[
            ("JWT_ALGORITHMS", "RS256"),
            ("JWT_JWKS_URL", "ftp://idp/jwks"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("JWT_JWKS_URL=ftp://idp/jwks"), "{e}");
        let e = from(&[
            ("JWT_ALGORITHMS", "RS256"),
            ("JWT_JWKS_URL", "https://u:pw@idp/jwks"),
        ])
        .unwrap_err();
        assert!(!e.to_string().contains("pw"), "{e}");
        let s = from(&[
            ("JWT_ALGORITHMS", "RS256"),
            ("JWT_JWKS_URL", "http://idp.internal/jwks"),
            ("OIDC_ISSUER_URL", "http://127.0.0.1:8080/realms/x"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            s.insecure_urls(),
            [("JWT_JWKS_URL", "http://idp.internal/jwks".to_owned())]
        );
    }

    #[test]
    fn leeway_and_claim_names() {
        let e = from(&[
            ("JWT_ALGORITHMS", "HS256"),
            ("JWT_SECRET", SECRET),
            ("JWT_LEEWAY_SECONDS", "3600"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("JWT_LEEWAY_SECONDS=3600"), "{e}");
        let s = from(&[
            ("JWT_ALGORITHMS", "HS256"),
            ("JWT_SECRET", SECRET),
            ("JWT_TENANT_CLAIM", "org"),
            ("JWT_ROLES_CLAIM", "groups"),
            ("JWT_LOGS_CLAIM", "streams"),
            ("JWT_LEEWAY_SECONDS", "5"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(s.claims.tenant, "org");
        assert_eq!(s.claims.roles, "groups");
        assert_eq!(s.claims.logs, "streams");
        assert_eq!(s.leeway_seconds, 5);
    }
}
