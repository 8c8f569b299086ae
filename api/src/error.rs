//! One error type for every route: [`ApiError`] renders as RFC 9457
//! `application/problem+json` with a stable machine `code`.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use pipeline::Reject;
use serde::Serialize;
use workers::client_ids::Space;

/// Everything a route can answer besides success. Each variant names its status.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the body is not JSON, or a query or path parameter is malformed.
    #[error("{detail}")]
    BadRequest {
        /// Machine code (`malformed_json`, `invalid_query`, ...).
        code: &'static str,
        /// Human detail.
        detail: String,
    },
    /// 401: missing, malformed, expired or untrusted bearer token.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: the token lacks a scope the route needs.
    #[error("this route needs the {0:?} scope")]
    Forbidden(&'static str),
    /// 404: no such resource, or it belongs to another account.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// 405: the path exists but not with this method (see `Allow`).
    #[error("this path does not accept that method; see the Allow header")]
    MethodNotAllowed,
    /// 408: the request body did not arrive in time.
    #[error("the request body did not arrive within {0} s")]
    RequestTimeout(u64),
    /// 409: `client_order_id` (or, for a transfer, `client_transfer_id`)
    /// reused with different parameters.
    #[error("{field} {id:?} was already used with different parameters", field = id_field(*.0), id = .1)]
    ClientIdConflict(Space, String),
    /// 413: the body exceeds the limit.
    #[error("request body too large")]
    PayloadTooLarge,
    /// 415: the body is not `application/json` in UTF-8, or is encoded (gzip, …).
    #[error(
        "expected a request with Content-Type: application/json (UTF-8, the only charset JSON has) and no Content-Encoding"
    )]
    UnsupportedMediaType,
    /// 422: the body is JSON but a field is missing, unknown or invalid.
    #[error("{detail}")]
    Invalid {
        /// Machine code (`invalid_body`, `invalid_price`, ...).
        code: &'static str,
        /// Human detail.
        detail: String,
    },
    /// 422: the engine refused the command; the code is [`Reject::code`].
    #[error("{0}")]
    Rejected(Reject),
    /// 429: a rate limit was hit; retry after that many seconds.
    #[error("rate limit exceeded")]
    RateLimited {
        /// Seconds until a token is available.
        retry_after_s: u64,
        /// The capacity of the bucket that ran out (the `RateLimit-Limit`).
        limit: u64,
    },
    /// 503: the engine is recovering or failed closed; the outcome of this
    /// request is unknown — resolve it with `GET /v1/orders?client_order_id=…`.
    #[error("the engine is unavailable; retry later")]
    Unavailable,
    /// 500: anything unexpected. Logged once with its cause chain, never shown.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// The RFC 9457 body.
#[derive(Debug, Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: String,
    code: &'a str,
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::ClientIdConflict(..) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Invalid { .. } | ApiError::Rejected(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { code, .. } | ApiError::Invalid { code, .. } => code,
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::RequestTimeout(_) => "request_timeout",
            ApiError::ClientIdConflict(Space::Order, _) => "client_order_id_conflict",
            ApiError::ClientIdConflict(Space::Transfer, _) => "client_transfer_id_conflict",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::Rejected(r) => r.code(),
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Unavailable => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    /// A 422 for an invalid field.
    pub fn invalid(code: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError::Invalid {
            code,
            detail: detail.into(),
        }
    }
}

/// The request field that holds a client id of `space`.
fn id_field(space: Space) -> &'static str {
    match space {
        Space::Order => "client_order_id",
        Space::Transfer => "client_transfer_id",
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let detail = match &self {
            ApiError::Internal(e) => {
                tracing::error!(error = ?e, "request failed");
                "an internal error occurred".to_string()
            }
            other => other.to_string(),
        };
        let code = self.code();
        let problem = Problem {
            kind: format!("https://clearway.dev/problems/{code}"),
            title: status.canonical_reason().unwrap_or("error"),
            status: status.as_u16(),
            detail,
            code,
        };
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut res = (status, body).into_response();
        let h = res.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        match &self {
            ApiError::Unauthorized(_) => {
                h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::RateLimited {
                retry_after_s,
                limit,
            } => crate::ratelimit::set_headers(h, *limit, 0, *retry_after_s, true),
            ApiError::Unavailable => {
                h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        res
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> ApiError {
        ApiError::BadRequest {
            code: "invalid_query",
            detail: r.body_text(),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> ApiError {
        ApiError::BadRequest {
            code: "invalid_path",
            detail: r.body_text(),
        }
    }
}
