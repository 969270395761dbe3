//! Who is calling: credentials → [`Principal`].
//!
//! A request presents one credential, as `X-API-Key: <key>` or `Authorization: Bearer <key>`.
//! [`Authenticator::identify`] resolves it to an identity — what it is ([`AuthMethod`]), what
//! it may do (a [`Grant`]) and which tenants it may act on — trying in turn:
//!
//! 1. the keys fixed by configuration ([`bootstrap`]): the bootstrap admin key of the default
//!    or pinned tenant and the system key;
//! 2. API keys of the `nl_<id>_<secret>` shape ([`api_keys`]);
//! 3. bearer tokens, through the [`TokenVerifier`] when one is configured (JWT, OIDC).
//!
//! The [`Principal`] extractor then picks the tenant of the request — the credential's own,
//! or the one `X-Tenant-ID` names when the credential allows it — checks that the tenant
//! exists, and tells the audit layer who is calling. Handlers then ask
//! [`Principal::require`], which is `neurallog_core::rbac::authorize`, for each permission.
//!
//! Missing or wrong credentials answer 401 with one fixed body and `WWW-Authenticate`; a known
//! caller without the permission answers 403 `forbidden`.

pub mod api_keys;
pub mod bootstrap;
pub mod roles;
pub mod tokens;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts};
use neurallog_core::rbac::{
    Decision, DenyReason, Grant, LogPattern, Permission, TenantAccess, authorize,
};
use neurallog_core::{LogName, TenantId};
use neurallog_storage::StorageError;

use crate::app::AppState;
use crate::audit::layer::{AuditSlot, Caller};
use crate::error::ApiError;
use crate::tenants::Tenants;

pub use api_keys::{KeyHasher, KeyRecord, KeyStore};
pub use bootstrap::{BootstrapAuth, generate_key};
pub use roles::RoleBook;

/// How a caller proved who it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    /// A managed `nl_…` API key.
    ApiKey,
    /// `API_KEY` (or the generated bootstrap key).
    BootstrapKey,
    /// `NEURALLOG_SYSTEM_KEY`.
    SystemKey,
    /// A JWT checked against a configured key.
    Jwt,
    /// A token checked through OIDC discovery or introspection.
    Oidc,
    /// Authentication is off (benchmark-only setting).
    Disabled,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::ApiKey => "api_key",
            AuthMethod::BootstrapKey => "bootstrap_key",
            AuthMethod::SystemKey => "system_key",
            AuthMethod::Jwt => "jwt",
            AuthMethod::Oidc => "oidc",
            AuthMethod::Disabled => "none",
        }
    }
}

/// A verified credential, before a tenant is chosen.
#[derive(Clone, Debug)]
pub struct Identity {
    /// `key:<id>`, `bootstrap`, `system`, or a token's subject.
    pub id: String,
    pub method: AuthMethod,
    /// Role name(s), for display and audit.
    pub role: String,
    pub grant: Grant,
    /// The tenant used when the request names none.
    pub home: TenantId,
}

/// A bearer token that a [`TokenVerifier`] accepted.
#[derive(Clone, Debug)]
pub struct VerifiedToken {
    pub subject: String,
    pub method: AuthMethod,
    pub tenant: TenantId,
    pub roles: Vec<String>,
    pub logs: Option<Vec<String>>,
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Verifies bearer tokens that are not API keys (JWT, OIDC, introspection). `Ok(None)` means
/// "not a valid token" (401); `Err` means the verifier could not decide (503).
pub trait TokenVerifier: Send + Sync + fmt::Debug {
    fn verify<'a>(
        &'a self,
        token: &'a str,
    ) -> BoxFuture<'a, Result<Option<VerifiedToken>, ApiError>>;
}

/// Resolves credentials.
#[derive(Debug)]
pub struct Authenticator {
    /// The admin key of the implicit tenant.
    pub bootstrap: Option<BootstrapAuth>,
    /// The system key.
    pub system: Option<BootstrapAuth>,
    pub keys: KeyStore,
    pub tenants: Tenants,
    pub roles: RoleBook,
    pub tokens: Option<Arc<dyn TokenVerifier>>,
    /// Benchmark-only: every request is the implicit tenant's admin, and nothing is audited.
    pub disabled: bool,
}

impl Authenticator {
    /// The grant of `role` on `tenant`, with optional log patterns; a role holding
    /// `tenants:manage` is cross-tenant. None for an unknown role or a bad pattern.
    pub fn grant(&self, role: &str, tenant: &TenantId, logs: Option<&[String]>) -> Option<Grant> {
        let permissions = self.roles.permissions(role)?;
        grant_for(permissions, tenant, logs)
    }

    /// The identity a presented credential proves, if any.
    pub async fn identify(&self, presented: &str) -> Result<Option<Identity>, ApiError> {
        let implicit = self.tenants.implicit().clone();
        // Both fixed keys are always compared, so timing does not tell which one is set.
        let is_bootstrap = self.bootstrap.as_ref().is_some_and(|b| b.verify(presented));
        let is_system = self.system.as_ref().is_some_and(|s| s.verify(presented));
        if is_bootstrap {
            return Ok(self.fixed("bootstrap", AuthMethod::BootstrapKey, "admin", &implicit));
        }
        if is_system {
            return Ok(self.fixed("system", AuthMethod::SystemKey, "system", &implicit));
        }
        let looks_like_key = presented.starts_with("nl_") || self.tokens.is_none();
        if looks_like_key {
            let Some(rec) = self.keys.verify(presented).await.map_err(ApiError::from)? else {
                return Ok(None);
            };
            let Some(grant) = self.grant(&rec.role, &rec.tenant, rec.logs.as_deref()) else {
                // A custom role removed from the configuration grants nothing.
                tracing::warn!(key_id = %rec.id, role = %rec.role, "API key has an unknown role");
                return Ok(None);
            };
            return Ok(Some(Identity {
                id: format!("key:{}", rec.id),
                method: AuthMethod::ApiKey,
                role: rec.role.clone(),
                grant,
                home: rec.tenant.clone(),
            }));
        }
        let Some(tokens) = &self.tokens else {
            return Ok(None);
        };
        let Some(tok) = tokens.verify(presented).await? else {
            return Ok(None);
        };
        let mut permissions = std::collections::BTreeSet::new();
        for r in &tok.roles {
            if let Some(p) = self.roles.permissions(r) {
                permissions.extend(p);
            }
        }
        // Cross-tenant power (tenants:manage, lockdown:manage) comes only from the system key:
        // an identity provider speaks for one tenant's users, so a token claiming the system
        // role keeps only what it holds within its tenant.
        permissions.retain(|p| !p.is_cross_tenant());
        let Some(grant) = grant_for(permissions, &tok.tenant, tok.logs.as_deref()) else {
            return Ok(None);
        };
        Ok(Some(Identity {
            id: tok.subject,
            method: tok.method,
            role: tok.roles.join(","),
            grant,
            home: tok.tenant,
        }))
    }

    fn fixed(&self, id: &str, method: AuthMethod, role: &str, home: &TenantId) -> Option<Identity> {
        Some(Identity {
            id: id.to_owned(),
            method,
            role: role.to_owned(),
            grant: self.grant(role, home, None)?,
            home: home.clone(),
        })
    }
}

/// Builds a grant. Holding `tenants:manage` makes it cross-tenant (the system role).
pub fn grant_for(
    permissions: std::collections::BTreeSet<Permission>,
    tenant: &TenantId,
    logs: Option<&[String]>,
) -> Option<Grant> {
    let logs = match logs {
        None => None,
        Some(ps) => Some(
            ps.iter()
                .map(|p| LogPattern::new(p).ok())
                .collect::<Option<Vec<_>>>()?,
        ),
    };
    let tenants = if permissions.contains(&Permission::TenantsManage) {
        TenantAccess::Any
    } else {
        TenantAccess::one(tenant.clone())
    };
    Some(Grant {
        tenants,
        permissions,
        logs,
    })
}

/// The verified caller of a request.
#[derive(Clone, Debug)]
pub struct Principal {
    /// The tenant whose data the request may touch.
    pub tenant: TenantId,
    /// `key:<id>`, `bootstrap`, `system`, or a token's subject.
    pub id: String,
    pub method: AuthMethod,
    pub role: String,
    pub grant: Grant,
}

impl Principal {
    /// Ok when the grant allows `permission` on this request's tenant (and on `log`); else
    /// 403 `forbidden`.
    pub fn require(&self, permission: Permission, log: Option<&LogName>) -> Result<(), ApiError> {
        match authorize(&self.grant, &self.tenant, permission, log) {
            Decision::Allow => Ok(()),
            Decision::Deny(reason) => Err(ApiError::forbidden(match reason {
                DenyReason::Permission => format!("this credential lacks {permission}"),
                DenyReason::Tenant => "this credential does not reach this tenant".to_owned(),
                DenyReason::Log => "this credential does not reach this log".to_owned(),
            })),
        }
    }

    /// Whether `permission` is allowed on `log` (to filter listings and search results).
    pub fn allows(&self, permission: Permission, log: &LogName) -> bool {
        matches!(
            authorize(&self.grant, &self.tenant, permission, Some(log)),
            Decision::Allow
        )
    }

    /// Whether the grant is narrowed to some logs.
    pub fn narrowed(&self) -> bool {
        self.grant.logs.is_some()
    }

    /// A cross-tenant (system) principal.
    pub fn is_system(&self) -> bool {
        matches!(self.grant.tenants, TenantAccess::Any)
    }
}

/// The credential a request presents, if any.
fn presented_key(parts: &Parts) -> Option<&str> {
    if let Some(v) = parts.headers.get("x-api-key") {
        return v.to_str().ok();
    }
    let auth = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = auth.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let auth = &state.auth;
        if auth.disabled {
            let tenant = auth.tenants.implicit().clone();
            return Ok(Principal {
                grant: auth
                    .grant("admin", &tenant, None)
                    .ok_or_else(ApiError::internal)?,
                tenant,
                id: "anonymous".into(),
                method: AuthMethod::Disabled,
                role: "admin".into(),
            });
        }
        let Some(key) = presented_key(parts) else {
            return Err(ApiError::unauthorized());
        };
        let Some(identity) = auth.identify(key).await? else {
            return Err(ApiError::unauthorized());
        };
        let slot = parts.extensions.get::<AuditSlot>().cloned();
        let tell_audit = |tenant: &TenantId| {
            if let Some(slot) = &slot {
                slot.set(Caller {
                    tenant: tenant.clone(),
                    principal: identity.id.clone(),
                    auth_method: identity.method.as_str(),
                    global: matches!(identity.grant.tenants, TenantAccess::Any),
                });
            }
        };
        let tenant = match parts.headers.get("x-tenant-id") {
            None => identity.home.clone(),
            Some(v) => {
                let chosen = v.to_str().ok().and_then(|s| TenantId::new(s.trim()).ok());
                let allowed = chosen
                    .as_ref()
                    .is_some_and(|t| identity.grant.tenants.allows(t));
                match chosen {
                    Some(t) if allowed => t,
                    _ => {
                        tell_audit(&identity.home);
                        return Err(ApiError::forbidden(
                            "this credential does not reach this tenant",
                        ));
                    }
                }
            }
        };
        tell_audit(&tenant);
        if !auth.tenants.exists(&tenant).await.map_err(storage)? {
            // The same answer as a tenant the credential does not reach.
            return Err(ApiError::forbidden(
                "this credential does not reach this tenant",
            ));
        }
        Ok(Principal {
            tenant,
            id: identity.id,
            method: identity.method,
            role: identity.role,
            grant: identity.grant,
        })
    }
}

fn storage(e: StorageError) -> ApiError {
    ApiError::from(e)
}
