//! The tenant's Secret objects (guide: "Kubernetes Secrets").
//!
//! Rendering never invents a value: the reconciler reads the existing Secrets, generates only
//! the missing ones (or the rotated ones) and passes the values in. That is what makes "created
//! once, never overwritten" hold: these objects are sent with a create, never applied over an
//! existing Secret except by a rotation.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;

use super::{Object, component, meta, stamp};
use crate::crd::Tenant;
use crate::secrets::{SecretKind, SecretString};

/// Annotation with the RFC 3339 time the value was generated.
pub const GENERATED_AT: &str = "neurallog.io/generated-at";

/// One Secret holding `value` under the kind's key, stamped like every other object.
pub fn secret(
    tenant: &Tenant,
    kind: SecretKind,
    value: &SecretString,
    generated_at: &str,
) -> Object {
    let (name, key) = kind.location();
    let mut metadata = meta(tenant, name, component::SECRETS);
    metadata.annotations = Some(BTreeMap::from([(
        GENERATED_AT.to_owned(),
        generated_at.to_owned(),
    )]));
    let s = Secret {
        metadata,
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(
            key.to_owned(),
            ByteString(value.expose().as_bytes().to_vec()),
        )])),
        ..Secret::default()
    };
    let mut one = [Object::Secret(s)];
    stamp(tenant, &mut one);
    let [o] = one;
    o
}
