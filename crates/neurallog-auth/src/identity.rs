//! What a verified token says about its bearer, and why a token was refused.
//!
//! JWT claims and introspection responses are both JSON objects; [`identity_from_claims`] maps
//! either to a [`TokenIdentity`] with the claim names of the configuration, so both token kinds
//! grant exactly the same things for the same claims.

use neurallog_core::TenantId;
use neurallog_core::rbac::LogPattern;
use serde_json::{Map, Value};

/// How a token was verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenMethod {
    /// A JSON Web Token whose signature was checked locally.
    Jwt,
    /// An opaque (or JWT) token the identity provider vouched for (RFC 7662).
    Introspection,
}

impl TokenMethod {
    /// A stable label for metrics and audit events.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenMethod::Jwt => "jwt",
            TokenMethod::Introspection => "oauth2",
        }
    }
}

/// The verified bearer of a token. Authorisation (which roles exist, what they may do, which
/// tenant is allowed) is the server's decision; this only reports what the issuer asserted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenIdentity {
    /// `sub` (introspection: `sub`, else `client_id`, else `username`).
    pub subject: String,
    /// The tenant claim, validated as a tenant id; `None` when the token names none.
    pub tenant: Option<TenantId>,
    /// Role names from the roles claim, else `role`, else the space-separated `scope`.
    pub roles: Vec<String>,
    /// Log-name patterns from the logs claim, validated; `None` when absent (no narrowing).
    pub logs: Option<Vec<LogPattern>>,
    /// `exp` in Unix seconds.
    pub expires_at: Option<i64>,
    /// How the token was verified.
    pub method: TokenMethod,
    /// `iss`, when present.
    pub issuer: Option<String>,
}

/// Why a token was refused. Every variant but [`TokenRejection::Unavailable`] is the caller's
/// fault (401); `Unavailable` means the identity provider could not be asked (503 or 401, the
/// server's choice). Messages name no secret and no token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenRejection {
    /// Not a token this verifier can read (bad encoding, bad JSON, wrong shape, too long).
    #[error("malformed token")]
    Malformed,
    /// The signature does not verify with any acceptable key.
    #[error("bad token signature")]
    BadSignature,
    /// `exp` has passed (beyond the leeway).
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("token not yet valid")]
    NotYetValid,
    /// `iss` is missing or not the configured issuer.
    #[error("token issuer not accepted")]
    WrongIssuer,
    /// `aud` is missing or does not include the configured audience.
    #[error("token audience not accepted")]
    WrongAudience,
    /// The header's `alg` is not one of the configured algorithms (including `none`).
    #[error("token algorithm not allowed")]
    AlgorithmNotAllowed,
    /// No configured or published key matches the token's key id and algorithm.
    #[error("token signing key unknown")]
    UnknownKey,
    /// The identity provider says the token is not active (revoked, expired, unknown).
    #[error("token not active")]
    Inactive,
    /// A required claim is absent.
    #[error("token claim {0} missing")]
    MissingClaim(&'static str),
    /// A claim has the wrong type or an invalid value.
    #[error("token claim {0} invalid")]
    InvalidClaim(&'static str),
    /// The identity provider (JWKS or introspection) could not be reached or answered badly.
    #[error("identity provider unavailable")]
    Unavailable,
}

impl TokenRejection {
    /// A stable, low-cardinality label for metrics and audit events.
    pub fn reason(&self) -> &'static str {
        match self {
            TokenRejection::Malformed => "malformed",
            TokenRejection::BadSignature => "bad_signature",
            TokenRejection::Expired => "expired",
            TokenRejection::NotYetValid => "not_yet_valid",
            TokenRejection::WrongIssuer => "wrong_issuer",
            TokenRejection::WrongAudience => "wrong_audience",
            TokenRejection::AlgorithmNotAllowed => "algorithm_not_allowed",
            TokenRejection::UnknownKey => "unknown_key",
            TokenRejection::Inactive => "inactive",
            TokenRejection::MissingClaim(_) => "missing_claim",
            TokenRejection::InvalidClaim(_) => "invalid_claim",
            TokenRejection::Unavailable => "unavailable",
        }
    }

    /// Whether the refusal is the identity provider's outage rather than the token's fault.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, TokenRejection::Unavailable)
    }
}

/// The claim names that carry tenant, roles and log patterns (`JWT_*_CLAIM`).
///
/// A name is looked up as a top-level key first; if absent and it contains dots, as a path
/// into nested objects (`realm_access.roles`), since identity providers nest role claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimNames {
    /// Tenant claim (default `tenant`).
    pub tenant: String,
    /// Roles claim (default `roles`); `role` and then `scope` are the fallbacks.
    pub roles: String,
    /// Log patterns claim (default `logs`).
    pub logs: String,
}

impl Default for ClaimNames {
    fn default() -> Self {
        Self {
            tenant: "tenant".into(),
            roles: "roles".into(),
            logs: "logs".into(),
        }
    }
}

/// Most entries a roles or logs claim may carry: a bound on what one token can make us hold.
const MAX_LIST_ENTRIES: usize = 64;

/// Maps verified claims to an identity. `subject_fallbacks` are the claims tried after `sub`
/// (introspection answers for client-credential tokens often carry only `client_id`).
pub fn identity_from_claims(
    claims: &Map<String, Value>,
    names: &ClaimNames,
    method: TokenMethod,
    subject_fallbacks: &[&str],
) -> Result<TokenIdentity, TokenRejection> {
    let subject = std::iter::once("sub")
        .chain(subject_fallbacks.iter().copied())
        .find_map(|name| match claims.get(name) {
            Some(Value::String(s)) if !s.is_empty() => Some(Ok(s.clone())),
            Some(Value::Null | Value::String(_)) | None => None,
            Some(_) => Some(Err(TokenRejection::InvalidClaim("sub"))),
        })
        .ok_or(TokenRejection::MissingClaim("sub"))??;

    let tenant = match lookup(claims, &names.tenant) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(
            s.parse::<TenantId>()
                .map_err(|_| TokenRejection::InvalidClaim("tenant"))?,
        ),
        Some(_) => return Err(TokenRejection::InvalidClaim("tenant")),
    };

    let roles = if let Some(v) = present(lookup(claims, &names.roles)) {
        string_list(v).ok_or(TokenRejection::InvalidClaim("roles"))?
    } else if let Some(v) = present(claims.get("role")) {
        string_list(v).ok_or(TokenRejection::InvalidClaim("role"))?
    } else if let Some(v) = present(claims.get("scope")) {
        string_list(v).ok_or(TokenRejection::InvalidClaim("scope"))?
    } else {
        Vec::new()
    };

    let logs = match present(lookup(claims, &names.logs)) {
        None => None,
        Some(v) => {
            let list = string_list(v).ok_or(TokenRejection::InvalidClaim("logs"))?;
            let patterns: Result<Vec<LogPattern>, _> =
                list.iter().map(|p| LogPattern::new(p)).collect();
            Some(patterns.map_err(|_| TokenRejection::InvalidClaim("logs"))?)
        }
    };

    let expires_at = match claims.get("exp") {
        None | Some(Value::Null) => None,
        Some(v) => Some(numeric_date(v).ok_or(TokenRejection::InvalidClaim("exp"))?),
    };
    let issuer = match claims.get("iss") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(TokenRejection::InvalidClaim("iss")),
    };

    Ok(TokenIdentity {
        subject,
        tenant,
        roles,
        logs,
        expires_at,
        method,
        issuer,
    })
}

fn present(v: Option<&Value>) -> Option<&Value> {
    v.filter(|v| !v.is_null())
}

/// A claim by exact name, else by dotted path into nested objects.
fn lookup<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    if let Some(v) = claims.get(name) {
        return Some(v);
    }
    if !name.contains('.') {
        return None;
    }
    let mut parts = name.split('.');
    let mut current = claims.get(parts.next()?)?;
    for part in parts {
        current = current.as_object()?.get(part)?;
    }
    Some(current)
}

/// An array of strings, or one string split on spaces and commas; `None` for any other shape
/// or more than [`MAX_LIST_ENTRIES`] entries.
fn string_list(v: &Value) -> Option<Vec<String>> {
    let items: Vec<String> = match v {
        Value::String(s) => s
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                let s = item.as_str()?.trim();
                if !s.is_empty() {
                    out.push(s.to_owned());
                }
            }
            out
        }
        _ => return None,
    };
    (items.len() <= MAX_LIST_ENTRIES).then_some(items)
}

/// A JSON NumericDate (RFC 7519 §2): seconds, possibly fractional; never a string.
pub(crate) fn numeric_date(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && f.abs() < 1e15)
                .map(|f| f.floor() as i64)
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    fn identity(v: Value) -> Result<TokenIdentity, TokenRejection> {
        identity_from_claims(&map(v), &ClaimNames::default(), TokenMethod::Jwt, &[])
    }

    #[test]
    fn maps_standard_claims() {
        let id = identity(json!({
            "sub": "alice", "tenant": "acme", "roles": ["reader", "writer"],
            "logs": ["app-*"], "exp": 2000000000, "iss": "https://idp"
        }))
        .unwrap();
        assert_eq!(id.subject, "alice");
        assert_eq!(id.tenant.unwrap().as_str(), "acme");
        assert_eq!(id.roles, ["reader", "writer"]);
        assert_eq!(id.logs, Some(vec![LogPattern::new("app-*").unwrap()]));
        assert_eq!(id.expires_at, Some(2000000000));
        assert_eq!(id.issuer.as_deref(), Some("https://idp"));
    }

    #[test]
    fn roles_from_string_role_or_scope() {
        let id = identity(json!({"sub": "a", "roles": "reader, writer admin"})).unwrap();
        assert_eq!(id.roles, ["reader", "writer", "admin"]);
        let id = identity(json!({"sub": "a", "role": "auditor"})).unwrap();
        assert_eq!(id.roles, ["auditor"]);
        let id = identity(json!({"sub": "a", "scope": "reader writer"})).unwrap();
        assert_eq!(id.roles, ["reader", "writer"]);
        // The roles claim wins over `role` and `scope`.
        let id = identity(json!({"sub": "a", "roles": ["admin"], "role": "reader", "scope": "x"}))
            .unwrap();
        assert_eq!(id.roles, ["admin"]);
        let id = identity(json!({"sub": "a"})).unwrap();
        assert!(id.roles.is_empty());
        assert_eq!(id.logs, None);
        assert_eq!(id.tenant, None);
    }

    #[test]
    fn custom_and_nested_claim_names() {
        let names = ClaimNames {
            tenant: "https://neurallog.io/tenant".into(),
            roles: "realm_access.roles".into(),
            logs: "nl_logs".into(),
        };
        let claims = map(json!({
            "sub": "a", "https://neurallog.io/tenant": "t1",
            "realm_access": {"roles": ["writer"]}, "nl_logs": "a-*,b-*"
        }));
        let id = identity_from_claims(&claims, &names, TokenMethod::Jwt, &[]).unwrap();
        assert_eq!(id.tenant.unwrap().as_str(), "t1");
        assert_eq!(id.roles, ["writer"]);
        let logs: Vec<&str> = id
            .logs
            .as_ref()
            .unwrap()
            .iter()
            .map(|p| p.as_str())
            .collect();
        assert_eq!(logs, ["a-*", "b-*"]);
    }

    #[test]
    fn refuses_bad_shapes() {
        assert_eq!(
            identity(json!({})),
            Err(TokenRejection::MissingClaim("sub"))
        );
        assert_eq!(
            identity(json!({"sub": ""})),
            Err(TokenRejection::MissingClaim("sub"))
        );
        assert_eq!(
            identity(json!({"sub": 5})),
            Err(TokenRejection::InvalidClaim("sub"))
        );
        assert_eq!(
            identity(json!({"sub": "a", "tenant": "Not A Label!"})),
            Err(TokenRejection::InvalidClaim("tenant"))
        );
        assert_eq!(
            identity(json!({"sub": "a", "tenant": ["acme"]})),
            Err(TokenRejection::InvalidClaim("tenant"))
        );
        assert_eq!(
            identity(json!({"sub": "a", "roles": [1, 2]})),
            Err(TokenRejection::InvalidClaim("roles"))
        );
        assert_eq!(
            identity(json!({"sub": "a", "roles": {"admin": true}})),
            Err(TokenRejection::InvalidClaim("roles"))
        );
        let many: Vec<String> = (0..100).map(|i| format!("r{i}")).collect();
        assert_eq!(
            identity(json!({"sub": "a", "roles": many})),
            Err(TokenRejection::InvalidClaim("roles"))
        );
        assert_eq!(
            identity(json!({"sub": "a", "logs": ["../etc", "a*b"]})),
            Err(TokenRejection::InvalidClaim("logs"))
        );
        assert_eq!(
            identity(json!({"sub": "a", "exp": "never"})),
            Err(TokenRejection::InvalidClaim("exp"))
        );
    }

    #[test]
    fn subject_fallbacks_for_introspection() {
        let claims = map(json!({"client_id": "svc-1", "active": true}));
        let id = identity_from_claims(
            &claims,
            &ClaimNames::default(),
            TokenMethod::Introspection,
            &["client_id", "username"],
        )
        .unwrap();
        assert_eq!(id.subject, "svc-1");
        assert_eq!(id.method, TokenMethod::Introspection);
    }

    #[test]
    fn reasons_are_stable_labels() {
        assert_eq!(
            TokenRejection::MissingClaim("sub").reason(),
            "missing_claim"
        );
        assert_eq!(TokenRejection::Unavailable.reason(), "unavailable");
        assert!(TokenRejection::Unavailable.is_unavailable());
        assert!(!TokenRejection::Expired.is_unavailable());
    }
}
