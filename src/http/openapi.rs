//! The OpenAPI 3.1 document of the REST API, served at `GET /openapi.json` without a key.
//!
//! It is generated from the handlers' `#[utoipa::path]` annotations and the request and response
//! types' `ToSchema` derives, so it moves with the code; a schema-driven fuzzer (schemathesis,
//! `tests/api/openapi.rs`) runs against it and the real server, which keeps the two honest.
//! Types owned by other layers that cannot carry a derive here (the reply, the filter, the
//! WeChat settings) are described by mirror types below; tests pin them to the real ones.

use std::borrow::Cow;

use axum::response::IntoResponse;
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{IntoParams, Modify, OpenApi, PartialSchema, ToSchema};

use super::answer::{DeltaEvent, StartEvent};
use super::{answer, dify, documents, kbs, observe, openai, query, wechat};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "lore",
        description = "A self-hosted knowledge base for customer-service bots: upload documents, \
                       search them, answer from them. Errors are `{\"error\":{\"code\",\"message\"}}` \
                       with the closed list of codes in `ErrorCode` (Dify's door has its own shape)."
    ),
    paths(
        observe::healthz,
        observe::readyz,
        observe::metrics,
        openapi_json,
        kbs::create,
        kbs::list,
        kbs::show,
        kbs::remove,
        documents::upload,
        documents::list,
        documents::show,
        documents::chunks,
        documents::remove,
        query::search,
        answer::answer,
        openai::models,
        openai::chat_completions,
        dify::retrieval,
        wechat::show,
        wechat::configure,
        wechat::disconnect,
        wechat::handshake,
        wechat::push,
    ),
    components(schemas(super::error::ErrorBody, crate::error::ErrorCode)),
    modifiers(&Guarded),
    tags(
        (name = "operations", description = "Health, readiness, metrics and this document; no key needed"),
        (name = "knowledge bases"),
        (name = "documents", description = "Uploads are ingested in the background: watch `status`"),
        (name = "search", description = "Hybrid search; `score` is calibrated relevance in [0, 1]"),
        (name = "answer", description = "Refuse, ask, or answer with citations"),
        (name = "openai", description = "OpenAI-compatible: model = knowledge base id"),
        (name = "dify", description = "Dify's external knowledge API (register http://HOST/dify)"),
        (name = "wechat", description = "WeChat official-account server URL and its settings"),
    )
)]
pub struct ApiDoc;

/// The document, built once per request (it is small and cheap to build).
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    responses((status = 200, description = "This OpenAPI document", content_type = "application/json"))
)]
pub async fn openapi_json() -> impl IntoResponse {
    axum::Json(ApiDoc::openapi())
}

/// Routes behind the API-key guard (`guard.rs`): the prefixes it is merged under in `mod.rs`.
fn guarded(path: &str) -> bool {
    path.starts_with("/api/") || path.starts_with("/v1/")
}

/// Adds what the guard and the JSON extractor add to every guarded operation, so each handler's
/// annotation lists only its own outcomes: bearer auth, 400 (invalid_request, invalid_json),
/// 401, 403, 413 (bodies over the limit), 429 (rate limit) and 500.
struct Guarded;

impl Modify for Guarded {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        let common = [
            (
                "400",
                "The request is malformed: invalid_request, invalid_json",
            ),
            (
                "401",
                "An API key is configured and the request lacks a valid one: unauthorized",
            ),
            ("403", "The key may not do this: forbidden"),
            (
                "413",
                "The body is larger than the limit: payload_too_large",
            ),
            (
                "429",
                "Too many requests for this key (see Retry-After): rate_limited",
            ),
            (
                "500",
                "lore's fault; the server log has the details: internal",
            ),
        ];
        for (path, item) in openapi.paths.paths.iter_mut() {
            let needs_key = guarded(path) || path == "/dify/retrieval";
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
            ];
            for operation in operations.into_iter().flatten() {
                if needs_key {
                    operation.security = Some(vec![SecurityRequirement::new(
                        "bearer",
                        Vec::<String>::new(),
                    )]);
                }
                if guarded(path) {
                    for (status, description) in common {
                        add_error(operation, status, description);
                    }
                }
            }
        }
    }
}

/// A `{"error":{"code","message"}}` response, unless the operation already describes `status`.
fn add_error(operation: &mut Operation, status: &str, description: &str) {
    let response = ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build();
    operation
        .responses
        .responses
        .entry(status.to_owned())
        .or_insert(RefOr::T(response));
}

// ---- server-sent events ----

/// One event of a streamed answer. OpenAPI 3.1 has no schema for a stream's items, so (as
/// schemathesis reads it) the media type's schema describes each event: its name, and its
/// `data` as JSON of the matching type.
pub struct AnswerEventDoc;

impl PartialSchema for AnswerEventDoc {
    fn schema() -> RefOr<Schema> {
        let events = [
            ("start", "StartEvent"),
            ("delta", "DeltaEvent"),
            ("done", "Reply"),
        ];
        let mut one_of = OneOfBuilder::new();
        for (name, payload) in events {
            let data = ObjectBuilder::new()
                .schema_type(Type::String)
                .content_media_type("application/json")
                .extensions(Some(Extensions::from_iter([(
                    "contentSchema",
                    serde_json::json!({ "$ref": format!("#/components/schemas/{payload}") }),
                )])));
            let event = ObjectBuilder::new()
                .property(
                    "event",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .enum_values(Some([name])),
                )
                .property("data", data)
                .required("event")
                .required("data");
            one_of = one_of.item(event);
        }
        RefOr::T(one_of.into())
    }
}

impl ToSchema for AnswerEventDoc {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("AnswerEvent")
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((StartEvent::name().into(), StartEvent::schema()));
        schemas.push((DeltaEvent::name().into(), DeltaEvent::schema()));
        <StartEvent as ToSchema>::schemas(schemas);
    }
}

/// One event of a streamed chat completion: a `chat.completion.chunk` as JSON, or `[DONE]`.
#[derive(ToSchema)]
#[schema(as = ChatCompletionEvent)]
#[allow(dead_code)]
pub struct ChatEventDoc {
    /// A `chat.completion.chunk` object as JSON, then `[DONE]`.
    data: String,
}

// ---- mirrors of types that live in other layers ----

/// Dify's `metadata_condition`, lore's one filter language (`search::MetadataCondition`).
#[derive(ToSchema)]
#[schema(as = MetadataCondition)]
#[allow(dead_code)] // describes the wire format only
pub struct MetadataConditionDoc {
    /// "and" (default) or "or".
    #[schema(value_type = Option<String>, example = "and")]
    logical_operator: Option<String>,
    conditions: Option<Vec<ConditionDoc>>,
}

/// One condition over user metadata (flat keys) or `document_id` / `document_name`.
#[derive(ToSchema)]
#[schema(as = Condition)]
#[allow(dead_code)]
pub struct ConditionDoc {
    /// A name; older Dify versions send a list of names, which must all match.
    #[schema(schema_with = condition_name)]
    name: serde_json::Value,
    /// One of Dify's 18 operators.
    #[schema(schema_with = operators)]
    comparison_operator: String,
    /// A string, number, list or ISO 8601 date, as the operator needs; none for empty/not empty.
    value: Option<serde_json::Value>,
}

/// A string, or a list of strings.
fn condition_name() -> Schema {
    let one = ObjectBuilder::new().schema_type(Type::String);
    let many = ArrayBuilder::new().items(ObjectBuilder::new().schema_type(Type::String));
    OneOfBuilder::new().item(one).item(many).into()
}

/// The roles OpenAI clients send.
pub fn chat_roles() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(["system", "developer", "user", "assistant", "tool"]))
        .into()
}

/// Dify's operators, from the list the filter itself matches on.
fn operators() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(crate::search::filter::OPERATORS))
        .into()
}

/// The verdict of a reply: answered, nothing in the knowledge base covers it, or a question back.
#[derive(ToSchema)]
#[schema(as = Verdict, rename_all = "snake_case")]
#[allow(dead_code)]
pub enum VerdictDoc {
    Answer,
    NotFound,
    Clarify,
}

/// Why the reply is not the model's: it could not answer in time, so the best passage stands in.
#[derive(ToSchema)]
#[schema(as = Fallback, rename_all = "snake_case")]
#[allow(dead_code)]
pub enum FallbackDoc {
    Extractive,
}

/// A reply (`answer::respond::Reply`): the verdict, the text and the passages it rests on.
#[derive(ToSchema)]
#[schema(as = Reply)]
#[allow(dead_code)]
pub struct ReplyDoc {
    #[schema(value_type = VerdictDoc)]
    verdict: String,
    answer: String,
    citations: Vec<crate::document::Citation>,
    /// For `clarify`: the documents the question might mean.
    options: Vec<ClarifyOptionDoc>,
    /// The model that wrote the answer, if one did.
    model: Option<String>,
    fallback: Option<FallbackDoc>,
    latency_ms: u64,
}

/// A document a clarifying question offers (`answer::decide::ClarifyOption`).
#[derive(ToSchema)]
#[schema(as = ClarifyOption)]
#[allow(dead_code)]
pub struct ClarifyOptionDoc {
    label: String,
    document_id: String,
    document_name: String,
}

/// What `PUT /api/kbs/{kb}/wechat` accepts (`wechat::account::AccountSettings`).
#[derive(ToSchema)]
#[schema(as = WeChatAccountSettings)]
#[allow(dead_code)]
pub struct AccountSettingsDoc {
    /// The token entered on WeChat's server settings page (3–32 letters or digits).
    #[schema(pattern = "^[A-Za-z0-9]{3,32}$")]
    token: String,
    #[schema(min_length = 1, max_length = 64, example = "wx0123456789abcdef")]
    app_id: String,
    /// Safe mode's EncodingAESKey (43 letters or digits); without it messages are plain.
    #[schema(pattern = "^[A-Za-z0-9]{43}$")]
    encoding_aes_key: Option<String>,
    /// Only for accounts allowed to send customer-service messages.
    app_secret: Option<String>,
    /// Reply to a new follower.
    welcome: Option<String>,
}

/// A knowledge base's WeChat connection as shown to clients (secrets never shown).
#[derive(ToSchema)]
#[schema(as = WeChatSettings)]
#[allow(dead_code)]
pub struct WeChatSettingsDoc {
    configured: bool,
    /// The path to enter as the server URL on WeChat's settings page.
    server_path: String,
    app_id: Option<String>,
    safe_mode: Option<bool>,
    customer_service: Option<bool>,
    welcome: Option<String>,
}

/// The signature parameters WeChat sends in the query string (`wechat::Signed`).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct SignedDoc {
    signature: Option<String>,
    timestamp: Option<String>,
    nonce: Option<String>,
    /// Present on the server-URL handshake only.
    echostr: Option<String>,
    /// "aes" in safe mode.
    encrypt_type: Option<String>,
    msg_signature: Option<String>,
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::{Value, json};

    use super::*;
    use crate::answer::respond::Reply;
    use crate::document::Citation;

    fn document() -> Value {
        serde_json::to_value(ApiDoc::openapi()).expect("serialisable")
    }

    fn property_names(doc: &Value, schema: &str) -> BTreeSet<String> {
        doc["components"]["schemas"][schema]["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("schema {schema} has properties"))
            .keys()
            .cloned()
            .collect()
    }

    #[test]
    fn every_route_of_the_router_is_described() {
        let doc = document();
        let expected = [
            ("get", "/healthz"),
            ("get", "/readyz"),
            ("get", "/metrics"),
            ("get", "/openapi.json"),
            ("get", "/api/kbs"),
            ("post", "/api/kbs"),
            ("get", "/api/kbs/{kb}"),
            ("delete", "/api/kbs/{kb}"),
            ("get", "/api/kbs/{kb}/documents"),
            ("post", "/api/kbs/{kb}/documents"),
            ("get", "/api/kbs/{kb}/documents/{doc}"),
            ("delete", "/api/kbs/{kb}/documents/{doc}"),
            ("get", "/api/kbs/{kb}/documents/{doc}/chunks"),
            ("post", "/api/kbs/{kb}/search"),
            ("post", "/api/kbs/{kb}/answer"),
            ("get", "/v1/models"),
            ("post", "/v1/chat/completions"),
            ("post", "/dify/retrieval"),
            ("get", "/api/kbs/{kb}/wechat"),
            ("put", "/api/kbs/{kb}/wechat"),
            ("delete", "/api/kbs/{kb}/wechat"),
            ("get", "/wechat/{kb}"),
            ("post", "/wechat/{kb}"),
        ];
        for (method, path) in expected {
            assert!(
                doc["paths"][path][method].is_object(),
                "{method} {path} is missing"
            );
        }
        let described: usize = doc["paths"]
            .as_object()
            .expect("paths")
            .values()
            .map(|item| item.as_object().map_or(0, |ops| ops.len()))
            .sum();
        assert_eq!(described, expected.len(), "an undocumented extra operation");
    }

    #[test]
    fn guarded_operations_need_the_key_and_public_ones_do_not() {
        let doc = document();
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"],
            json!({ "type": "http", "scheme": "bearer" })
        );
        let bearer = json!([{ "bearer": [] }]);
        assert_eq!(doc["paths"]["/api/kbs"]["post"]["security"], bearer);
        assert_eq!(doc["paths"]["/dify/retrieval"]["post"]["security"], bearer);
        for public in [
            "/healthz",
            "/readyz",
            "/metrics",
            "/openapi.json",
            "/wechat/{kb}",
        ] {
            assert!(
                doc["paths"][public]["get"]["security"].is_null(),
                "{public} must not need a key"
            );
        }
        let unauthorized = &doc["paths"]["/api/kbs/{kb}/search"]["post"]["responses"]["401"];
        assert_eq!(
            unauthorized["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/ErrorBody"
        );
    }

    #[test]
    fn error_codes_are_the_closed_list() {
        let doc = document();
        let codes: Vec<String> = doc["components"]["schemas"]["ErrorCode"]["enum"]
            .as_array()
            .expect("enum")
            .iter()
            .filter_map(|c| c.as_str().map(str::to_owned))
            .collect();
        use crate::error::ErrorCode::*;
        let all = [
            InvalidRequest,
            InvalidJson,
            KbNotFound,
            KbExists,
            DocumentNotFound,
            UnsupportedFormat,
            EmptyFile,
            PayloadTooLarge,
            Unauthorized,
            Forbidden,
            RateLimited,
            ModelUnavailable,
            ModelTimeout,
            Internal,
        ];
        let wire: Vec<String> = all.iter().map(|c| c.as_str().to_owned()).collect();
        assert_eq!(codes, wire);
    }

    /// The mirrors name exactly the fields the real types send.
    #[test]
    fn mirrors_match_the_types_they_describe() {
        let doc = document();
        let citation = Citation {
            document_id: "d".into(),
            document_name: "d.md".into(),
            title: "t".into(),
            chunk_index: 0,
            score: 0.5,
            content: "c".into(),
        };
        let reply = Reply {
            verdict: "answer",
            answer: "a".into(),
            citations: vec![citation],
            options: Vec::new(),
            model: None,
            fallback: None,
            latency_ms: 1,
        };
        let sent = serde_json::to_value(&reply).expect("reply");
        let keys: BTreeSet<String> = sent.as_object().expect("object").keys().cloned().collect();
        assert_eq!(keys, property_names(&doc, "Reply"));
        let option = serde_json::to_value(crate::answer::decide::ClarifyOption {
            label: "l".into(),
            document_id: "d".into(),
            document_name: "n".into(),
        })
        .expect("option");
        let keys: BTreeSet<String> = option
            .as_object()
            .expect("object")
            .keys()
            .cloned()
            .collect();
        assert_eq!(keys, property_names(&doc, "ClarifyOption"));
        // Every documented setting is accepted by the real type (it denies unknown fields).
        let settings: serde_json::Map<String, Value> =
            property_names(&doc, "WeChatAccountSettings")
                .into_iter()
                .map(|k| (k, json!("x")))
                .collect();
        serde_json::from_value::<crate::wechat::account::AccountSettings>(Value::Object(settings))
            .expect("the documented settings deserialise");
        // And so is every documented filter field.
        let filter = json!({ "logical_operator": "or", "conditions": [
            { "name": "region", "comparison_operator": "is", "value": "华东" }] });
        assert_eq!(
            property_names(&doc, "MetadataCondition"),
            ["conditions", "logical_operator"].map(str::to_owned).into()
        );
        serde_json::from_value::<crate::search::MetadataCondition>(filter).expect("filter");
    }
}
