//! Verification keys and the rule that keeps each key in its own algorithm family.
//!
//! A key is stored with its family (HMAC, RSA, EC, EdDSA) and, when known, the one algorithm it
//! is for. A token's header names an algorithm; only keys of that algorithm's family are ever
//! tried, so an RSA public key can never serve as an HMAC secret and a JWKS can never supply an
//! HMAC key at all.

use std::sync::Arc;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyOperations, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};

/// One key a token may be verified with.
#[derive(Clone)]
pub(crate) struct VerifyingKey {
    /// The `kid` the key was published under (JWKS) or `None` (secret, PEM).
    pub kid: Option<String>,
    /// The family the key belongs to; only algorithms of this family use it.
    pub family: AlgorithmFamily,
    /// The single algorithm the key is restricted to, when the JWK names one or the curve
    /// implies one.
    pub alg: Option<Algorithm>,
    pub key: Arc<DecodingKey>,
}

impl VerifyingKey {
    /// Whether this key may verify a token signed with `alg` carrying key id `kid`.
    /// Keys without a `kid` (PEM, secret) match any token kid: they are the only key of
    /// their family.
    pub fn accepts(&self, alg: Algorithm, kid: Option<&str>) -> bool {
        if self.family != alg.family() || self.alg.is_some_and(|a| a != alg) {
            return false;
        }
        match (&self.kid, kid) {
            (Some(mine), Some(theirs)) => mine == theirs,
            _ => true,
        }
    }
}

/// Name of a family, for error messages.
pub(crate) fn family_name(family: AlgorithmFamily) -> &'static str {
    match family {
        AlgorithmFamily::Hmac => "HMAC",
        AlgorithmFamily::Rsa => "RSA",
        AlgorithmFamily::Ec => "EC",
        AlgorithmFamily::Ed => "Ed25519",
    }
}

/// The HMAC key from the shared secret.
pub(crate) fn hmac_key(secret: &[u8]) -> Result<VerifyingKey, String> {
    let key = DecodingKey::from_secret(secret).map_err(|e| e.to_string())?;
    Ok(VerifyingKey {
        kid: None,
        family: AlgorithmFamily::Hmac,
        alg: None,
        key: Arc::new(key),
    })
}

/// A PEM public key (SPKI, or PKCS#1 for RSA), classified by its content. The key's family
/// must have at least one configured algorithm.
pub(crate) fn pem_key(pem: &str, algorithms: &[Algorithm]) -> Result<VerifyingKey, String> {
    let bytes = pem.as_bytes();
    let (family, key) = if let Ok(k) = DecodingKey::from_rsa_pem(bytes) {
        (AlgorithmFamily::Rsa, k)
    } else if let Ok(k) = DecodingKey::from_ec_pem(bytes) {
        (AlgorithmFamily::Ec, k)
    } else if let Ok(k) = DecodingKey::from_ed_pem(bytes) {
        (AlgorithmFamily::Ed, k)
    } else {
        return Err("not a PEM RSA, EC or Ed25519 public key".into());
    };
    if !algorithms.iter().any(|a| a.family() == family) {
        return Err(format!(
            "it holds an {} key but JWT_ALGORITHMS has no {} algorithm",
            family_name(family),
            family_name(family)
        ));
    }
    Ok(VerifyingKey {
        kid: None,
        family,
        alg: None,
        key: Arc::new(key),
    })
}

/// A key from a JWKS, or `None` when it must be ignored: not for signatures (`use`,
/// `key_ops`), a symmetric key, an algorithm or curve that no configured algorithm matches,
/// or parameters that do not parse.
pub(crate) fn jwk_key(jwk: &Jwk, algorithms: &[Algorithm]) -> Option<VerifyingKey> {
    let common = &jwk.common;
    if let Some(usage) = &common.public_key_use
        && *usage != PublicKeyUse::Signature
    {
        return None;
    }
    if let Some(ops) = &common.key_operations
        && !ops.contains(&KeyOperations::Verify)
    {
        return None;
    }
    let (family, implied_alg) = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => (AlgorithmFamily::Rsa, None),
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => (AlgorithmFamily::Ec, Some(Algorithm::ES256)),
            EllipticCurve::P384 => (AlgorithmFamily::Ec, Some(Algorithm::ES384)),
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(p) => match p.curve {
            EllipticCurve::Ed25519 => (AlgorithmFamily::Ed, Some(Algorithm::EdDSA)),
            _ => return None,
        },
        // NB: symmetric keys are never taken from a key set: HMAC keys come only from the
        // configured secret.
        _ => return None,
    };
    let declared_alg = match common.key_algorithm {
        None => None,
        Some(ka) => Some(Algorithm::try_from(ka).ok()?),
    };
    if let (Some(d), Some(i)) = (declared_alg, implied_alg)
        && d != i
    {
        return None;
    }
    if declared_alg.is_some_and(|d| d.family() != family) {
        return None;
    }
    let alg = declared_alg.or(implied_alg);
    let usable = match alg {
        Some(a) => algorithms.contains(&a),
        None => algorithms.iter().any(|a| a.family() == family),
    };
    if !usable {
        return None;
    }
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some(VerifyingKey {
        kid: common.key_id.clone(),
        family,
        alg,
        key: Arc::new(key),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn jwk(v: serde_json::Value) -> Jwk {
        serde_json::from_value(v).unwrap()
    }

    // A valid P-256 point (the generator), so only the filters decide.
    const X: &str = "axfR8uEsQkf4vOblY6RA8ncDfYEt6zOg9KE5RdiYwpY";
    const Y: &str = "T-NC4v4af5uO5-tKfA-eFivOM1drMV7Oy7ZAaDe_UfU";

    #[test]
    fn jwks_filters_use_alg_and_family() {
        let es = [Algorithm::ES256];
        let base = json!({"kty": "EC", "crv": "P-256", "x": X, "y": Y, "kid": "k"});
        assert!(jwk_key(&jwk(base.clone()), &es).is_some());

        let mut enc = base.clone();
        enc["use"] = json!("enc");
        assert!(
            jwk_key(&jwk(enc), &es).is_none(),
            "encryption keys are ignored"
        );

        let mut ops = base.clone();
        ops["key_ops"] = json!(["encrypt"]);
        assert!(jwk_key(&jwk(ops), &es).is_none());

        let mut wrong_alg = base.clone();
        wrong_alg["alg"] = json!("ES384");
        assert!(
            jwk_key(&jwk(wrong_alg), &es).is_none(),
            "alg must match the curve"
        );

        let mut rs_alg = base.clone();
        rs_alg["alg"] = json!("RS256");
        assert!(jwk_key(&jwk(rs_alg), &[Algorithm::RS256, Algorithm::ES256]).is_none());

        assert!(
            jwk_key(&jwk(base.clone()), &[Algorithm::RS256]).is_none(),
            "EC not configured"
        );

        let oct = json!({"kty": "oct", "k": "c2VjcmV0c2VjcmV0c2VjcmV0", "kid": "h"});
        assert!(
            jwk_key(&jwk(oct), &[Algorithm::HS256]).is_none(),
            "no HMAC keys from a JWKS"
        );
    }

    #[test]
    fn keys_stay_in_their_family() {
        let k = jwk_key(
            &jwk(json!({"kty": "EC", "crv": "P-256", "x": X, "y": Y, "kid": "k"})),
            &[Algorithm::ES256],
        )
        .unwrap();
        assert!(k.accepts(Algorithm::ES256, Some("k")));
        assert!(!k.accepts(Algorithm::ES256, Some("other")));
        assert!(!k.accepts(Algorithm::ES384, Some("k")));
        assert!(!k.accepts(Algorithm::HS256, Some("k")));
        let h = hmac_key(&[7u8; 32]).unwrap();
        assert!(h.accepts(Algorithm::HS512, None));
        assert!(!h.accepts(Algorithm::RS256, None));
    }

    #[test]
    fn pem_garbage_is_refused() {
        assert!(pem_key("not a key", &[Algorithm::RS256]).is_err());
    }
}
