//! The platform API's OpenAPI document, served at `/elements/api-v2/docs`. It is
//! put together from the handlers' own `#[utoipa::path]` attributes and the types
//! the answers are built from, so it moves with the code; a snapshot test says
//! when it changes.

use axum::Json;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::{elements, hub, instances};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Switchyard platform API",
        description = "The Cloud Elements platform API as Switchyard serves it: elements, instances, hub calls, events, object metadata, common resources and Connect sessions.",
        license(name = "Apache-2.0")
    ),
    servers((url = "/elements/api-v2")),
    paths(
        elements::list,
        elements::get,
        elements::metadata,
        elements::docs,
        elements::instance_docs,
        crate::oauth::url,
        instances::create,
        instances::create_for_element,
        instances::list,
        instances::put_current,
        instances::patch_current,
        instances::configuration_current,
        instances::get,
        instances::put,
        instances::patch,
        instances::delete,
        instances::configuration,
        instances::patch_configuration,
        instances::enable,
        instances::issue_token,
        instances::disable,
        crate::logs::list,
        crate::events::list_all,
        crate::events::list_instance,
        crate::events::get,
        crate::events::get_for_instance,
        crate::events::redeliver,
        crate::events::redeliver_instance,
        crate::webhooks::ingest,
        hub::call,
        crate::objects::list,
        crate::objects::list_in_hub,
        crate::objects::metadata,
        crate::objects::metadata_in_hub,
        crate::objects::element_list,
        crate::objects::element_metadata,
        crate::objects::org_list,
        crate::objects::org_create_many,
        crate::objects::org_delete_all,
        crate::objects::org_get,
        crate::objects::org_create,
        crate::objects::org_replace,
        crate::objects::org_delete,
        crate::objects::instance_list,
        crate::objects::instance_create_many,
        crate::objects::instance_delete_all,
        crate::objects::instance_get,
        crate::objects::instance_create,
        crate::objects::instance_replace,
        crate::objects::instance_delete,
        crate::objects::accounts,
        crate::transformations::org_list,
        crate::transformations::org_get,
        crate::transformations::org_create,
        crate::transformations::org_replace,
        crate::transformations::org_delete,
        crate::transformations::instance_list,
        crate::transformations::instance_delete_all,
        crate::transformations::instance_get,
        crate::transformations::instance_create,
        crate::transformations::instance_replace,
        crate::transformations::instance_delete,
        crate::connect::create,
        crate::connect::get,
        crate::proxy::call,
        crate::sandbox,
        crate::session::logout_post,
    ),
    modifiers(&CallerAuthorization),
    security(("Authorization" = []))
)]
pub struct ApiDoc;

/// Callers authenticate with one header: `User <secret>, Organization <secret>`,
/// plus `, Element <token>` for hub calls.
struct CallerAuthorization;

impl Modify for CallerAuthorization {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "Authorization",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "User <user secret>, Organization <organization secret>[, Element <instance token>]",
            ))),
        );
    }
}

pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The document changes only on purpose: review the snapshot diff
    /// (`cargo insta review`) when a route or an answer's shape changes.
    #[test]
    fn the_openapi_document_matches_its_snapshot() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        insta::assert_json_snapshot!("platform-api-openapi", doc, {".info.version" => "[version]"});
    }

    #[test]
    fn every_path_is_under_the_api_and_documents_its_errors() {
        let doc = ApiDoc::openapi();
        assert!(doc.paths.paths.len() >= 10);
        let json = serde_json::to_value(&doc).unwrap();
        assert!(json["components"]["schemas"]["ErrorBody"]["properties"]["requestId"].is_object());
        assert!(json["components"]["schemas"]["InstanceView"]["properties"]["configuration"].is_object());
        assert!(json["paths"]["/instances/{id}"]["patch"].is_object());
        assert!(json["paths"]["/hubs/{hub}/{path}"]["delete"].is_object());
    }
}
