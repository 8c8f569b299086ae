//! `GET /v1/openapi.json`: the OpenAPI 3.1 description of every route,
//! written by hand in `openapi.json` next to this file. A test checks that
//! its (method, path) pairs are exactly those of [`super::routes`].

use axum::http::{Method, header};
use axum::response::IntoResponse;

use super::Access::Public;
use super::{Route, route};

/// The document's text.
pub const DOCUMENT: &str = include_str!("openapi.json");

/// The routes.
pub(super) fn routes() -> Vec<Route> {
    vec![route(Public, Method::GET, "/v1/openapi.json", document)]
}

/// The document, as written.
async fn document(_: crate::extract::NoQuery) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT)
}
