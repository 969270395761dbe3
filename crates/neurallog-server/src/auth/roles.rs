//! Role names → permissions: the built-in roles of spec §4.4 and the custom roles of the
//! config file (`[roles.<name>] permissions = ["logs:read", …]`).

use std::collections::{BTreeMap, BTreeSet};

use neurallog_core::rbac::{Permission, Role};

/// Built-in and custom roles.
#[derive(Clone, Debug, Default)]
pub struct RoleBook {
    custom: BTreeMap<String, BTreeSet<Permission>>,
}

impl RoleBook {
    /// Adds the custom roles (validated by the configuration).
    pub fn new(custom: BTreeMap<String, BTreeSet<Permission>>) -> Self {
        Self { custom }
    }

    /// The permissions of a role; None for an unknown name.
    pub fn permissions(&self, name: &str) -> Option<BTreeSet<Permission>> {
        if let Some(r) = Role::built_in(name) {
            return Some(r.permissions.clone());
        }
        self.custom.get(name).cloned()
    }
}
