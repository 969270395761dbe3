//! Service accounts and RBAC of the tenant (guide: "Service Accounts", "Role-Based Access
//! Control", "Principle of Least Privilege").
//!
//! Each component has its own ServiceAccount, and neither mounts an API token: the server and
//! Redis do not call the Kubernetes API, so a stolen pod gets no credential. The Role is the
//! guide's `neurallog-server` role, read-only on ConfigMaps of its own namespace and nothing
//! else; it bounds what the server account could ever do if a later server version reads its
//! configuration from the API (and then opts into a token).

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};

use super::{Object, component, meta};
use crate::crd::Tenant;

/// The server's ServiceAccount and Role name.
pub const SERVER_ACCOUNT: &str = "neurallog-server";
/// Redis's ServiceAccount name.
pub const REDIS_ACCOUNT: &str = "redis";
/// The backup job's ServiceAccount name.
pub const BACKUP_ACCOUNT: &str = "neurallog-backup";

fn account(tenant: &Tenant, name: &str, component: &str) -> ServiceAccount {
    ServiceAccount {
        metadata: meta(tenant, name, component),
        automount_service_account_token: Some(false),
        ..ServiceAccount::default()
    }
}

/// ServiceAccounts, the Role and its RoleBinding.
pub fn objects(tenant: &Tenant) -> Vec<Object> {
    let mut out: Vec<Object> = vec![
        account(tenant, SERVER_ACCOUNT, component::SERVER).into(),
        account(tenant, REDIS_ACCOUNT, component::REDIS).into(),
    ];
    if tenant.spec.backup.is_some() {
        out.push(account(tenant, BACKUP_ACCOUNT, component::BACKUP).into());
    }
    out.push(
        Role {
            metadata: meta(tenant, SERVER_ACCOUNT, component::RBAC),
            rules: Some(vec![PolicyRule {
                api_groups: Some(vec![String::new()]),
                resources: Some(vec!["configmaps".into()]),
                verbs: vec!["get".into(), "list".into()],
                ..PolicyRule::default()
            }]),
        }
        .into(),
    );
    out.push(
        RoleBinding {
            metadata: meta(tenant, SERVER_ACCOUNT, component::RBAC),
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io".into(),
                kind: "Role".into(),
                name: SERVER_ACCOUNT.into(),
            },
            subjects: Some(vec![Subject {
                kind: "ServiceAccount".into(),
                name: SERVER_ACCOUNT.into(),
                namespace: Some(tenant.namespace_name()),
                api_group: None,
            }]),
        }
        .into(),
    );
    out
}
