//! The OpenAPI 3 document, generated from the route annotations. `docs/openapi.json` holds a
//! committed copy; a test fails when it is stale.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes;

#[derive(OpenApi)]
#[openapi(
    info(title = "NeuralLog", description = "Secure multi-tenant log server"),
    paths(
        routes::meta::root, routes::meta::health, routes::meta::ready, routes::meta::openapi,
        routes::logs::list, routes::logs::append, routes::logs::read, routes::logs::get_entry,
        routes::logs::delete_log, routes::logs::delete_entry,
        routes::search::search,
        routes::stats::statistics, routes::stats::log_statistics,
        routes::retention::get, routes::retention::put, routes::erasure::erase,
        routes::keys::create, routes::keys::list, routes::keys::revoke, routes::keys::rotate,
        routes::tenants::create, routes::tenants::list, routes::tenants::delete,
        routes::audit::list, routes::audit::verify,
    ),
    modifiers(&Security)
)]
struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The document as pretty JSON.
pub fn json() -> String {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc.to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}
