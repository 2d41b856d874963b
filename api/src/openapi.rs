//! The OpenAPI 3.1 document served at `/openapi.json` and committed as
//! `schemas/openapi.json`: operations from the route table below, schemas
//! derived from the very types the handlers decode and answer with.

use utoipa::ToSchema;
use utoipa::openapi::path::{
    HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ComponentsBuilder, ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, PathsBuilder, Ref, Required,
    ResponseBuilder,
};

use crate::answers::{
    Accepted, AccountAnswer, ApiKeysAnswer, BatchAnswer, EventsAnswer, HistoryAnswer,
    MerchantAnswer, MerchantsAnswer, Readiness, RiskAlertsAnswer, SettlementsAnswer, SupplyAnswer,
};
use crate::error::Problem;
use crate::routes::batch::BatchRequest;
use crate::routes::commands::{
    Capture, Deposit, ExpiryRun, Hold, Issuance, MerchantApplication, NewApiKey, Redemption,
    Reversal, Review, Transfer,
};

enum Parameter {
    Path(&'static str, &'static str),
    Query(&'static str, Type, &'static str),
}

const MIN_POSITION: Parameter = Parameter::Query(
    "min_position",
    Type::Integer,
    "Answer only once the read models have applied this position (503 `not_caught_up` after a bounded wait).",
);
const EXPIRING_WITHIN_DAYS: Parameter = Parameter::Query(
    "expiring_within_days",
    Type::Integer,
    "The horizon of the answer's `expiring` points, 0 to 36,525 days from now (default 30).",
);
const AFTER: Parameter = Parameter::Query("after", Type::Integer, "Events after this position.");
const LIMIT: Parameter = Parameter::Query(
    "limit",
    Type::Integer,
    "Page size, 1 to 10,000 (default 100).",
);

/// One operation: method, path, who may call it, what it takes and gives.
struct Operation {
    method: HttpMethod,
    path: &'static str,
    summary: &'static str,
    roles: &'static str,
    body: Option<&'static str>,
    status: &'static str,
    answer: Option<&'static str>,
    parameters: &'static [Parameter],
}

const fn command(
    method: HttpMethod,
    path: &'static str,
    summary: &'static str,
    roles: &'static str,
    body: Option<&'static str>,
    parameters: &'static [Parameter],
) -> Operation {
    Operation {
        method,
        path,
        summary,
        roles,
        body,
        status: "201",
        answer: Some("Accepted"),
        parameters,
    }
}

const fn query(
    path: &'static str,
    summary: &'static str,
    roles: &'static str,
    answer: &'static str,
    parameters: &'static [Parameter],
) -> Operation {
    Operation {
        method: HttpMethod::Get,
        path,
        summary,
        roles,
        body: None,
        status: "200",
        answer: Some(answer),
        parameters,
    }
}

const MERCHANT_ID: Parameter = Parameter::Path("id", "The merchant id.");
const HOLD_ID: Parameter = Parameter::Path("id", "The hold id.");
const ACCOUNT_ID: Parameter = Parameter::Path("id", "The account id.");

/// Every route of the v1 contract (`routes::routes` serves exactly these).
const OPERATIONS: &[Operation] = &[
    command(
        HttpMethod::Put,
        "/v1/program",
        "Configure the programme (a new rule version)",
        "admin",
        Some("ProgramRules"),
        &[],
    ),
    command(
        HttpMethod::Post,
        "/v1/merchants",
        "A merchant applies to the alliance",
        "admin",
        Some("MerchantApplication"),
        &[],
    ),
    command(
        HttpMethod::Post,
        "/v1/merchants/{id}/approve",
        "Approve a pending merchant",
        "admin",
        Some("Review"),
        &[MERCHANT_ID],
    ),
    command(
        HttpMethod::Post,
        "/v1/merchants/{id}/reject",
        "Reject a pending merchant",
        "admin",
        Some("Review"),
        &[MERCHANT_ID],
    ),
    command(
        HttpMethod::Post,
        "/v1/merchants/{id}/suspend",
        "Suspend an active merchant",
        "admin",
        Some("Review"),
        &[MERCHANT_ID],
    ),
    command(
        HttpMethod::Post,
        "/v1/merchants/{id}/reinstate",
        "Reinstate a suspended merchant",
        "admin",
        Some("Review"),
        &[MERCHANT_ID],
    ),
    command(
        HttpMethod::Post,
        "/v1/merchants/{id}/deposits",
        "Record a merchant's funding deposit",
        "admin",
        Some("Deposit"),
        &[MERCHANT_ID],
    ),
    command(
        HttpMethod::Post,
        "/v1/api-keys",
        "Create an API key; the answer shows its secret once",
        "admin",
        Some("NewApiKey"),
        &[],
    ),
    command(
        HttpMethod::Delete,
        "/v1/api-keys/{key_id}",
        "Revoke an API key",
        "admin",
        None,
        &[Parameter::Path("key_id", "The key's public id.")],
    ),
    command(
        HttpMethod::Post,
        "/v1/issuances",
        "Issue points: a fixed amount, or priced by the earning rules from a purchase",
        "admin, merchant (its own)",
        Some("Issuance"),
        &[],
    ),
    command(
        HttpMethod::Post,
        "/v1/redemptions",
        "Redeem points at a merchant, earliest-expiring lots first",
        "admin, merchant (its own)",
        Some("Redemption"),
        &[],
    ),
    command(
        HttpMethod::Post,
        "/v1/transfers",
        "Move points between accounts, keeping their lots' origin and expiry",
        "admin",
        Some("Transfer"),
        &[],
    ),
    command(
        HttpMethod::Post,
        "/v1/holds",
        "Hold points for a later capture or release",
        "admin, merchant (its own)",
        Some("Hold"),
        &[],
    ),
    command(
        HttpMethod::Post,
        "/v1/holds/{id}/capture",
        "Capture a hold (all, or part and release the rest)",
        "admin, merchant (its own)",
        Some("Capture"),
        &[HOLD_ID],
    ),
    command(
        HttpMethod::Post,
        "/v1/holds/{id}/release",
        "Release a hold",
        "admin, merchant (its own)",
        None,
        &[HOLD_ID],
    ),
    command(
        HttpMethod::Post,
        "/v1/reversals",
        "Reverse an issuance or a redemption, wholly or in part",
        "admin, merchant (its own)",
        Some("Reversal"),
        &[],
    ),
    command(
        HttpMethod::Post,
        "/v1/expiry-runs",
        "Expire every lot due by `as_of` and end timed-out holds",
        "admin",
        Some("ExpiryRun"),
        &[],
    ),
    Operation {
        method: HttpMethod::Post,
        path: "/v1/batch",
        summary: "Up to 10,000 commands decided in order, each with its own result",
        roles: "as per each command",
        body: Some("BatchRequest"),
        status: "200",
        answer: Some("BatchAnswer"),
        parameters: &[],
    },
    query(
        "/v1/accounts/{id}",
        "An account's balance, holds and lots",
        "admin, analyst, merchant",
        "AccountAnswer",
        &[ACCOUNT_ID, EXPIRING_WITHIN_DAYS, MIN_POSITION],
    ),
    query(
        "/v1/accounts/{id}/history",
        "An account's events, oldest first, paged",
        "admin, analyst",
        "HistoryAnswer",
        &[ACCOUNT_ID, AFTER, LIMIT, MIN_POSITION],
    ),
    query(
        "/v1/supply",
        "Cap, totals, headroom and the current release period",
        "admin, analyst, auditor",
        "SupplyAnswer",
        &[MIN_POSITION],
    ),
    query(
        "/v1/merchants/{id}",
        "A merchant's status, funding and totals",
        "admin, analyst, that merchant",
        "MerchantAnswer",
        &[MERCHANT_ID, MIN_POSITION],
    ),
    query(
        "/v1/settlements",
        "Per merchant settlement totals and the issuer-to-redeemer clearing matrix",
        "admin, analyst",
        "SettlementsAnswer",
        &[
            Parameter::Query(
                "from",
                Type::String,
                "First UTC day included, YYYY-MM-DD (default: the beginning).",
            ),
            Parameter::Query(
                "to",
                Type::String,
                "First UTC day excluded, YYYY-MM-DD (default: no end).",
            ),
            MIN_POSITION,
        ],
    ),
    query(
        "/v1/merchants",
        "Every merchant: status, funding and totals, ordered by id",
        "admin, analyst",
        "MerchantsAnswer",
        &[MIN_POSITION],
    ),
    query(
        "/v1/api-keys",
        "Every API key created through the API (never a secret or its hash), ordered by id",
        "admin",
        "ApiKeysAnswer",
        &[MIN_POSITION],
    ),
    query(
        "/v1/risk-alerts",
        "Risk alerts raised by the soft velocity limits, oldest first, paged",
        "admin, analyst, auditor",
        "RiskAlertsAnswer",
        &[
            Parameter::Query("account", Type::String, "Only the alerts of this account."),
            Parameter::Query(
                "merchant_id",
                Type::String,
                "Only the alerts of movements at this merchant.",
            ),
            Parameter::Query("after", Type::Integer, "Alerts after this position."),
            LIMIT,
            MIN_POSITION,
        ],
    ),
    query(
        "/v1/events",
        "The log's event envelopes with their chain hashes, paged",
        "admin, auditor",
        "EventsAnswer",
        &[AFTER, LIMIT, MIN_POSITION],
    ),
    Operation {
        method: HttpMethod::Get,
        path: "/v1/events/stream",
        summary: "The same events live, as Server-Sent Events (id = position; resume with `Last-Event-ID`)",
        roles: "admin, auditor",
        body: None,
        status: "200",
        answer: None,
        parameters: &[AFTER],
    },
];

/// Problems any command may answer with.
const COMMAND_PROBLEMS: &[(&str, &str)] = &[
    (
        "400",
        "`validation_error`: the body, a field or a path parameter is malformed",
    ),
    ("401", "`unauthorized`: no key or an unknown or revoked key"),
    (
        "403",
        "`forbidden`: the key's role or merchant scope does not allow it",
    ),
    (
        "404",
        "`not_found`: the merchant, hold, issuance or redemption does not exist",
    ),
    (
        "409",
        "a business rule refused it: `insufficient_points`, `supply_cap_exceeded`, `release_budget_exceeded`, `merchant_not_active`, `merchant_funding_insufficient`, `duplicate_order`, ...",
    ),
    (
        "422",
        "`idempotency_key_reused`: the same key came with a different command",
    ),
    ("429", "`risk_limit_exceeded`: a hard velocity limit"),
    (
        "503",
        "`unavailable`: the writer is stopped or its queue is full; nothing happened",
    ),
];

const QUERY_PROBLEMS: &[(&str, &str)] = &[
    ("400", "`validation_error`: a malformed parameter"),
    ("401", "`unauthorized`"),
    ("403", "`forbidden`"),
    ("404", "`not_found`"),
    (
        "503",
        "`not_caught_up`: `min_position` was not reached in time",
    ),
];

fn json_content(schema: &str) -> utoipa::openapi::Content {
    ContentBuilder::new()
        .schema(Some(Ref::from_schema_name(schema)))
        .build()
}

fn operation(spec: &Operation) -> utoipa::openapi::path::Operation {
    let mut builder = OperationBuilder::new()
        .summary(Some(spec.summary))
        .description(Some(format!("Roles: {}.", spec.roles)))
        .security(SecurityRequirement::new("bearer", Vec::<String>::new()));
    for parameter in spec.parameters {
        let built = match parameter {
            Parameter::Path(name, description) => ParameterBuilder::new()
                .name(*name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .description(Some(*description))
                .schema(Some(ObjectBuilder::new().schema_type(Type::String))),
            Parameter::Query(name, kind, description) => ParameterBuilder::new()
                .name(*name)
                .parameter_in(ParameterIn::Query)
                .required(Required::False)
                .description(Some(*description))
                .schema(Some(ObjectBuilder::new().schema_type(kind.clone()))),
        };
        builder = builder.parameter(built.build());
    }
    if spec.body.is_some() || spec.status == "201" {
        builder = builder.parameter(
            ParameterBuilder::new()
                .name("Idempotency-Key")
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some("A retry with the same key and body returns the original answer without a second effect."))
                .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                .build(),
        );
    }
    if let Some(body) = spec.body {
        builder = builder.request_body(Some(
            RequestBodyBuilder::new()
                .content("application/json", json_content(body))
                .required(Some(Required::True))
                .build(),
        ));
    }
    let success = match spec.answer {
        Some(answer) => ResponseBuilder::new()
            .description("Success")
            .content("application/json", json_content(answer)),
        None => ResponseBuilder::new()
            .description("An event stream")
            .content("text/event-stream", ContentBuilder::new().build()),
    };
    builder = builder.response(spec.status, success.build());
    let problems = if spec.method == HttpMethod::Get {
        QUERY_PROBLEMS
    } else {
        COMMAND_PROBLEMS
    };
    for (status, description) in problems {
        builder = builder.response(
            *status,
            ResponseBuilder::new()
                .description(*description)
                .content("application/problem+json", json_content("Problem"))
                .build(),
        );
    }
    builder.build()
}

fn with_schema<T: ToSchema>(components: ComponentsBuilder) -> ComponentsBuilder {
    let mut nested = Vec::new();
    T::schemas(&mut nested);
    components.schema_from::<T>().schemas_from_iter(nested)
}

/// The whole document.
pub fn document() -> OpenApi {
    let mut paths = PathsBuilder::new();
    for spec in OPERATIONS {
        paths = paths.path(
            spec.path,
            PathItem::new(spec.method.clone(), operation(spec)),
        );
    }
    let health = |summary: &str, answer: Option<&str>| {
        let response = match answer {
            Some(answer) => ResponseBuilder::new()
                .description("Ready")
                .content("application/json", json_content(answer)),
            None => ResponseBuilder::new().description("Up"),
        };
        PathItem::new(
            HttpMethod::Get,
            OperationBuilder::new()
                .summary(Some(summary))
                .response("200", response.build())
                .build(),
        )
    };
    paths = paths
        .path("/healthz", health("The process is up", None))
        .path("/readyz", health("The log is open, the writer running and the read models at the head (503 otherwise)", Some("Readiness")))
        .path("/metrics", health("Prometheus metrics, text format", None))
        .path("/openapi.json", health("This document", None));
    let mut components = ComponentsBuilder::new().security_scheme(
        "bearer",
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
    );
    components = with_schema::<ledger_core::domain::program::ProgramRules>(components);
    components = with_schema::<MerchantApplication>(components);
    components = with_schema::<Review>(components);
    components = with_schema::<Deposit>(components);
    components = with_schema::<NewApiKey>(components);
    components = with_schema::<Issuance>(components);
    components = with_schema::<Redemption>(components);
    components = with_schema::<Transfer>(components);
    components = with_schema::<Hold>(components);
    components = with_schema::<Capture>(components);
    components = with_schema::<Reversal>(components);
    components = with_schema::<ExpiryRun>(components);
    components = with_schema::<BatchRequest>(components);
    components = with_schema::<Accepted>(components);
    components = with_schema::<BatchAnswer>(components);
    components = with_schema::<AccountAnswer>(components);
    components = with_schema::<HistoryAnswer>(components);
    components = with_schema::<SupplyAnswer>(components);
    components = with_schema::<MerchantAnswer>(components);
    components = with_schema::<SettlementsAnswer>(components);
    components = with_schema::<RiskAlertsAnswer>(components);
    components = with_schema::<MerchantsAnswer>(components);
    components = with_schema::<ApiKeysAnswer>(components);
    components = with_schema::<EventsAnswer>(components);
    components = with_schema::<Readiness>(components);
    components = with_schema::<Problem>(components);
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("points-ledger")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some("The event-sourced points ledger's HTTP contract, v1. Points are JSON integers, money decimal strings, times RFC 3339 UTC. Every query answers with `as_of_position`."))
                .build(),
        )
        .paths(paths.build())
        .components(Some(components.build()))
        .build()
}

/// The document as committed in `schemas/openapi.json`.
pub fn document_json() -> String {
    let mut text = document()
        .to_pretty_json()
        .unwrap_or_else(|error| format!("{{\"error\": \"{error}\"}}"));
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `UPDATE_SCHEMAS=1 cargo test -p api openapi` rewrites the file.
    #[test]
    fn the_committed_openapi_document_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/openapi.json");
        let current = document_json();
        if std::env::var_os("UPDATE_SCHEMAS").is_some() {
            std::fs::write(&path, &current).expect("schemas/openapi.json is writable");
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == current,
            "schemas/openapi.json is stale; run `UPDATE_SCHEMAS=1 cargo test -p api openapi` and commit it"
        );
    }

    #[test]
    fn every_referenced_schema_is_defined() {
        let text = document_json();
        let document: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        let schemas = document["components"]["schemas"]
            .as_object()
            .expect("schemas");
        for reference in text.split("\"$ref\": \"#/components/schemas/").skip(1) {
            let name = reference.split('"').next().unwrap_or_default();
            assert!(
                schemas.contains_key(name),
                "{name} is referenced but not defined"
            );
        }
        assert_eq!(document["openapi"], serde_json::json!("3.1.0"));
    }
}
