//! Roles, permissions and the one authorisation decision (spec §4.4).
//!
//! A verified credential becomes a [`Grant`]: which tenants it may act on, which
//! [`Permission`]s it holds there, and optionally which logs (by pattern) its `logs:*`
//! permissions are narrowed to. [`authorize`] is a pure function of the grant and the request,
//! so every route asks the same question the same way and the rules are tested without HTTP.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{LogName, TenantId};

/// One thing a principal may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Permission {
    LogsRead,
    LogsWrite,
    LogsDelete,
    KeysManage,
    AuditRead,
    RetentionManage,
    TenantsManage,
    LockdownManage,
}

impl Permission {
    /// Every permission, in a stable order.
    pub const ALL: [Permission; 8] = [
        Permission::LogsRead,
        Permission::LogsWrite,
        Permission::LogsDelete,
        Permission::KeysManage,
        Permission::AuditRead,
        Permission::RetentionManage,
        Permission::TenantsManage,
        Permission::LockdownManage,
    ];

    /// The wire name, e.g. `logs:read`.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::LogsRead => "logs:read",
            Permission::LogsWrite => "logs:write",
            Permission::LogsDelete => "logs:delete",
            Permission::KeysManage => "keys:manage",
            Permission::AuditRead => "audit:read",
            Permission::RetentionManage => "retention:manage",
            Permission::TenantsManage => "tenants:manage",
            Permission::LockdownManage => "lockdown:manage",
        }
    }

    /// Whether log patterns narrow this permission.
    pub fn is_log_permission(self) -> bool {
        matches!(
            self,
            Permission::LogsRead | Permission::LogsWrite | Permission::LogsDelete
        )
    }

    /// Whether the permission acts across tenants (held by `system` principals).
    pub fn is_cross_tenant(self) -> bool {
        matches!(self, Permission::TenantsManage | Permission::LockdownManage)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A permission name that does not exist.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "unknown permission '{0}': expected one of logs:read, logs:write, logs:delete, keys:manage, audit:read, retention:manage, tenants:manage, lockdown:manage"
)]
pub struct UnknownPermission(pub String);

impl FromStr for Permission {
    type Err = UnknownPermission;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Permission::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| UnknownPermission(s.to_owned()))
    }
}

impl Serialize for Permission {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Permission {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A named set of permissions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Role {
    pub name: String,
    pub permissions: BTreeSet<Permission>,
}

/// Names of the built-in roles.
pub const BUILT_IN_ROLES: [&str; 5] = ["reader", "writer", "admin", "auditor", "system"];

impl Role {
    /// A built-in role by name (spec §4.4).
    pub fn built_in(name: &str) -> Option<Role> {
        use Permission::*;
        let perms: &[Permission] = match name {
            "reader" => &[LogsRead],
            "writer" => &[LogsWrite],
            "admin" => &[
                LogsRead,
                LogsWrite,
                LogsDelete,
                KeysManage,
                AuditRead,
                RetentionManage,
            ],
            "auditor" => &[AuditRead, LogsRead],
            "system" => &[TenantsManage, LockdownManage],
            _ => return None,
        };
        Some(Role {
            name: name.to_owned(),
            permissions: perms.iter().copied().collect(),
        })
    }
}

/// A log-name pattern: a literal name, or a prefix ending in `*` (`app-*`), or `*`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LogPattern(String);

/// A pattern that is not a log name with an optional trailing `*`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid log pattern '{0}': expected a log name, optionally ending in '*' (e.g. app-*)")]
pub struct InvalidLogPattern(pub String);

impl LogPattern {
    /// Parses a pattern; the part before a trailing `*` follows the log-name characters.
    pub fn new(s: &str) -> Result<Self, InvalidLogPattern> {
        let stem = s.strip_suffix('*').unwrap_or(s);
        let ok = s == "*"
            || (stem.is_empty() && s.len() == 1)
            || LogName::new(stem).is_ok() && s.len() <= crate::log_name::MAX_LOG_NAME_LEN + 1;
        if !ok || stem.contains('*') {
            return Err(InvalidLogPattern(s.chars().take(140).collect()));
        }
        Ok(Self(s.to_owned()))
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `log` matches.
    pub fn matches(&self, log: &LogName) -> bool {
        match self.0.strip_suffix('*') {
            Some(prefix) => log.as_str().starts_with(prefix),
            None => log.as_str() == self.0,
        }
    }
}

impl fmt::Display for LogPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for LogPattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for LogPattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        LogPattern::new(&s).map_err(serde::de::Error::custom)
    }
}

/// Which tenants a grant may act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TenantAccess {
    /// Exactly these tenants (usually one: the credential's own).
    Only(BTreeSet<TenantId>),
    /// Every tenant (system principals, for cross-tenant permissions only).
    Any,
}

impl TenantAccess {
    /// Exactly one tenant.
    pub fn one(t: TenantId) -> Self {
        TenantAccess::Only(BTreeSet::from([t]))
    }

    /// Whether `t` is allowed.
    pub fn allows(&self, t: &TenantId) -> bool {
        match self {
            TenantAccess::Only(set) => set.contains(t),
            TenantAccess::Any => true,
        }
    }
}

/// What a verified credential may do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub tenants: TenantAccess,
    pub permissions: BTreeSet<Permission>,
    /// `None`: every log. `Some(patterns)`: only logs matching one of them (for `logs:*`).
    pub logs: Option<Vec<LogPattern>>,
}

impl Grant {
    /// A grant of a role's permissions on one tenant, optionally narrowed to log patterns.
    pub fn role(tenant: TenantId, role: &Role, logs: Option<Vec<LogPattern>>) -> Self {
        Grant {
            tenants: TenantAccess::one(tenant),
            permissions: role.permissions.clone(),
            logs,
        }
    }

    /// Whether the log patterns (if any) let `logs:*` permissions reach `log`.
    pub fn covers_log(&self, log: &LogName) -> bool {
        match &self.logs {
            None => true,
            Some(patterns) => patterns.iter().any(|p| p.matches(log)),
        }
    }

    /// Whether this grant holds at least everything `other` holds (a key may not be minted
    /// with more than its creator has).
    pub fn includes(&self, other: &Grant) -> bool {
        let tenants = match (&self.tenants, &other.tenants) {
            (TenantAccess::Any, _) => true,
            (TenantAccess::Only(_), TenantAccess::Any) => false,
            (TenantAccess::Only(a), TenantAccess::Only(b)) => b.is_subset(a),
        };
        let logs = match (&self.logs, &other.logs) {
            (None, _) => true,
            (Some(_), None) => false,
            // Each of the new patterns must be inside one of ours.
            (Some(mine), Some(theirs)) => theirs.iter().all(|t| {
                mine.iter().any(|m| match m.0.strip_suffix('*') {
                    Some(prefix) => t.0.starts_with(prefix),
                    None => m.0 == t.0,
                })
            }),
        };
        tenants && logs && other.permissions.is_subset(&self.permissions)
    }
}

/// Why a request is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DenyReason {
    /// The credential does not reach this tenant.
    Tenant,
    /// The permission is not held.
    Permission,
    /// The log is outside the credential's log patterns.
    Log,
}

impl DenyReason {
    /// A stable label for audit records and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            DenyReason::Tenant => "tenant",
            DenyReason::Permission => "permission",
            DenyReason::Log => "log",
        }
    }
}

/// The outcome of [`authorize`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny(DenyReason),
}

/// The authorisation decision every route makes: may `grant` use `permission` on `tenant`
/// (and on `log`, for `logs:*` permissions that name one)?
///
/// Cross-tenant permissions (`tenants:manage`, `lockdown:manage`) do not need the tenant to be
/// in the grant's list, only a grant for any tenant; every other permission needs the tenant.
pub fn authorize(
    grant: &Grant,
    tenant: &TenantId,
    permission: Permission,
    log: Option<&LogName>,
) -> Decision {
    if !grant.permissions.contains(&permission) {
        return Decision::Deny(DenyReason::Permission);
    }
    if permission.is_cross_tenant() {
        return if grant.tenants == TenantAccess::Any {
            Decision::Allow
        } else {
            Decision::Deny(DenyReason::Tenant)
        };
    }
    if !grant.tenants.allows(tenant) {
        return Decision::Deny(DenyReason::Tenant);
    }
    if permission.is_log_permission()
        && let Some(log) = log
        && !grant.covers_log(log)
    {
        return Decision::Deny(DenyReason::Log);
    }
    Decision::Allow
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> TenantId {
        TenantId::new(s).unwrap()
    }
    fn l(s: &str) -> LogName {
        LogName::new(s).unwrap()
    }
    fn role(name: &str) -> Role {
        Role::built_in(name).unwrap()
    }

    #[test]
    fn built_in_roles_match_the_spec() {
        use Permission::*;
        assert_eq!(role("reader").permissions, BTreeSet::from([LogsRead]));
        assert_eq!(role("writer").permissions, BTreeSet::from([LogsWrite]));
        assert_eq!(
            role("auditor").permissions,
            BTreeSet::from([AuditRead, LogsRead])
        );
        assert_eq!(role("admin").permissions.len(), 6);
        assert!(!role("admin").permissions.contains(&TenantsManage));
        assert_eq!(
            role("system").permissions,
            BTreeSet::from([TenantsManage, LockdownManage])
        );
        assert!(Role::built_in("root").is_none());
    }

    #[test]
    fn permission_names_round_trip() {
        for p in Permission::ALL {
            assert_eq!(p.as_str().parse::<Permission>(), Ok(p));
        }
        assert!("logs:*".parse::<Permission>().is_err());
    }

    #[test]
    fn reader_cannot_write_or_delete() {
        let g = Grant::role(t("a"), &role("reader"), None);
        assert_eq!(
            authorize(&g, &t("a"), Permission::LogsRead, Some(&l("x"))),
            Decision::Allow
        );
        for p in [
            Permission::LogsWrite,
            Permission::LogsDelete,
            Permission::KeysManage,
        ] {
            assert_eq!(
                authorize(&g, &t("a"), p, Some(&l("x"))),
                Decision::Deny(DenyReason::Permission)
            );
        }
    }

    #[test]
    fn another_tenant_is_refused() {
        let g = Grant::role(t("a"), &role("admin"), None);
        assert_eq!(
            authorize(&g, &t("b"), Permission::LogsRead, None),
            Decision::Deny(DenyReason::Tenant)
        );
    }

    #[test]
    fn log_patterns_narrow_log_permissions_only() {
        let g = Grant::role(
            t("a"),
            &role("admin"),
            Some(vec![LogPattern::new("app-*").unwrap()]),
        );
        assert_eq!(
            authorize(&g, &t("a"), Permission::LogsRead, Some(&l("app-web"))),
            Decision::Allow
        );
        assert_eq!(
            authorize(&g, &t("a"), Permission::LogsRead, Some(&l("billing"))),
            Decision::Deny(DenyReason::Log)
        );
        assert_eq!(
            authorize(&g, &t("a"), Permission::LogsDelete, Some(&l("app"))),
            Decision::Deny(DenyReason::Log),
            "'app-*' does not match 'app'"
        );
        assert_eq!(
            authorize(&g, &t("a"), Permission::AuditRead, None),
            Decision::Allow
        );
    }

    #[test]
    fn system_manages_tenants_but_reads_no_logs() {
        let g = Grant {
            tenants: TenantAccess::Any,
            permissions: role("system").permissions,
            logs: None,
        };
        assert_eq!(
            authorize(&g, &t("z"), Permission::TenantsManage, None),
            Decision::Allow
        );
        assert_eq!(
            authorize(&g, &t("z"), Permission::LogsRead, Some(&l("x"))),
            Decision::Deny(DenyReason::Permission)
        );
        // A tenant admin holding tenants:manage through a custom role still cannot act across
        // tenants.
        let mut local = Grant::role(t("a"), &role("admin"), None);
        local.permissions.insert(Permission::TenantsManage);
        assert_eq!(
            authorize(&local, &t("a"), Permission::TenantsManage, None),
            Decision::Deny(DenyReason::Tenant)
        );
    }

    #[test]
    fn patterns_parse_strictly() {
        for ok in ["app-*", "app", "*", "a.b_c-*"] {
            assert!(LogPattern::new(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a*b", "**", "../x", "a/b*", ".hidden", "a b", "x\0"] {
            assert!(LogPattern::new(bad).is_err(), "{bad:?}");
        }
        assert!(LogPattern::new("*").unwrap().matches(&l("anything")));
    }

    #[test]
    fn grants_include_only_what_they_hold() {
        let admin = Grant::role(t("a"), &role("admin"), None);
        let reader = Grant::role(t("a"), &role("reader"), None);
        let narrowed = Grant::role(
            t("a"),
            &role("reader"),
            Some(vec![LogPattern::new("app-*").unwrap()]),
        );
        assert!(admin.includes(&reader));
        assert!(admin.includes(&narrowed));
        assert!(!reader.includes(&admin));
        assert!(!narrowed.includes(&reader), "patterns cannot be widened");
        let narrower = Grant::role(
            t("a"),
            &role("reader"),
            Some(vec![LogPattern::new("app-web*").unwrap()]),
        );
        assert!(narrowed.includes(&narrower));
        let system = Grant {
            tenants: TenantAccess::Any,
            permissions: role("system").permissions,
            logs: None,
        };
        assert!(!admin.includes(&system));
        let other = Grant::role(t("b"), &role("reader"), None);
        assert!(!admin.includes(&other));
    }
}
