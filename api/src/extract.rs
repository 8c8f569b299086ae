//! Extractors whose rejections are [`ApiError`]s, so a malformed request
//! always gets problem+json (and never reaches the engine).

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body with problem+json rejections: 415 when it is not declared
/// JSON (or declared in a charset other than UTF-8), 413 over the size limit, 400 when it is not JSON at all, 422 when it
/// is JSON of the wrong shape (a missing, unknown, duplicate or mistyped
/// field — including a number where a string enum is expected, which
/// serde_json reports as a syntax error and `axum::Json` calls malformed).
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Json<T>, ApiError> {
        if !declares_json(req.headers()) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let limit = crate::http::BODY_READ_TIMEOUT;
        let body = tokio::time::timeout(limit, bytes::Bytes::from_request(req, state))
            .await
            .map_err(|_| ApiError::RequestTimeout(limit.as_secs()))?
            .map_err(|r| match r.status() {
                StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
                _ => ApiError::BadRequest {
                    code: "bad_body",
                    detail: r.body_text(),
                },
            })?;
        parse_body(&body).map(Json)
    }
}

/// `application/json` or `application/<anything>+json`, any parameters, and
/// not compressed (a gzip body would otherwise be parsed as if plain).
fn declares_json(headers: &HeaderMap) -> bool {
    let encoded = headers
        .get_all(header::CONTENT_ENCODING)
        .iter()
        .any(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
    let transfer_coded = headers
        .get_all(header::TRANSFER_ENCODING)
        .iter()
        .flat_map(|v| v.to_str().unwrap_or("?").split(','))
        .any(|t| !t.trim().eq_ignore_ascii_case("chunked"));
    if encoded || transfer_coded {
        return false;
    }
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    // JSON is UTF-8 (RFC 8259 §8.1): a body declared in another charset
    // would be read as something its sender did not write.
    let utf8 = parts.all(|p| {
        let (name, v) = p.split_once('=').unwrap_or((p, ""));
        !name.trim().eq_ignore_ascii_case("charset")
            || v.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
            || v.trim().trim_matches('"').eq_ignore_ascii_case("utf8")
    });
    utf8 && (essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|s| s.ends_with("+json")))
}

/// Parses a body into `T`; see [`Json`] for which error is which.
pub fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de)
        .map_err(|e| body_error(body, &e.path().to_string(), e.inner()))?;
    de.end().map_err(|e| body_error(body, ".", &e))?;
    Ok(value)
}

fn body_error(body: &[u8], at: &str, e: &serde_json::Error) -> ApiError {
    // A body that is not JSON at all is a 400 whichever way the typed parse
    // failed first (`[1, 2` fails as "a sequence, expected an object").
    // serde_json skips a string it ignores without checking its UTF-8 or
    // its escapes (a lone surrogate), so the check reads every value.
    if std::str::from_utf8(body).is_err()
        || serde_json::from_slice::<serde_json::Value>(body).is_err()
    {
        return ApiError::BadRequest {
            code: "malformed_json",
            detail: format!("the body is not valid JSON: {e}"),
        };
    }
    // serde_json says "expected value" when a string enum (`side`, `type`,
    // …) gets a number, `null`, an object or an array: say what it wanted.
    let wanted_string = e.to_string().starts_with("expected value");
    let detail = match at {
        "." | "" => format!("the body is not the expected object: {e}"),
        _ if wanted_string => {
            format!("{at}: expected one of its string values, got another JSON type")
        }
        _ => format!("{at}: {e}"),
    };
    ApiError::invalid("invalid_body", detail)
}

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// An order id in a path or query string: 0 to 2^63 − 1, what the database
/// holds. A larger number is the client's mistake (400), not an order that
/// does not exist (404) or an empty page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Id(pub u64);

impl<'de> serde::Deserialize<'de> for Id {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Id, D::Error> {
        let v = digits(d, "an id")?;
        if v > i64::MAX as u64 {
            return Err(serde::de::Error::custom(format!(
                "{v} is over the largest id, {}",
                i64::MAX
            )));
        }
        Ok(Id(v))
    }
}

/// A count in a query string (`limit`, `depth`): digits only, as [`Id`];
/// the route checks its range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count(pub u64);

impl<'de> serde::Deserialize<'de> for Count {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Count, D::Error> {
        digits(d, "a count").map(Count)
    }
}

impl Count {
    /// `count`, or `default` when absent, if it lies in `range`; otherwise
    /// a 400 that names the parameter and its range.
    pub fn in_range<T>(
        count: Option<Count>,
        default: T,
        range: std::ops::RangeInclusive<T>,
        name: &str,
    ) -> Result<T, ApiError>
    where
        T: TryFrom<u64> + PartialOrd + std::fmt::Display,
    {
        let Some(Count(c)) = count else {
            return Ok(default);
        };
        T::try_from(c)
            .ok()
            .filter(|v| range.contains(v))
            .ok_or_else(|| ApiError::BadRequest {
                code: "invalid_query",
                detail: format!("{name} must be {} to {}", range.start(), range.end()),
            })
    }
}

/// A number in a path or query string written canonically: decimal digits,
/// no sign, no leading zero (`+45` and `045` name no id a client was
/// given; Rust's parser would take them).
fn digits<'de, D: serde::Deserializer<'de>>(d: D, what: &'static str) -> Result<u64, D::Error> {
    let s = <String as serde::Deserialize>::deserialize(d)?;
    let canonical = !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_digit())
        && (s.len() == 1 || !s.starts_with('0'));
    if !canonical {
        // Form decoding reads `+` as a space, so `?before=+5` arrives as " 5".
        let plus = if s.contains(' ') {
            " (a + or a space in a query string reads as a space)"
        } else {
            ""
        };
        return Err(serde::de::Error::custom(format!(
            "{s:?} is not {what}: write it in decimal digits, with no sign or leading zero{plus}"
        )));
    }
    s.parse()
        .map_err(|_| serde::de::Error::custom(format!("{s} is too large for {what}")))
}

/// `axum::extract::Query` with a 400 problem+json rejection.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

/// `axum::extract::Path` with a 400 problem+json rejection.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

/// For routes that take no query parameters: any query string is a 400,
/// so a parameter a client believes it set (say `?account_id=…`) never
/// silently does nothing.
#[derive(Debug)]
pub struct NoQuery;

impl<S: Send + Sync> FromRequestParts<S> for NoQuery {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<NoQuery, ApiError> {
        // `?` and `?&` name no parameter, as the routes with a query read them.
        match parts.uri.query() {
            None => Ok(NoQuery),
            Some(q) if q.bytes().all(|b| b == b'&') => Ok(NoQuery),
            Some(_) => Err(ApiError::BadRequest {
                code: "invalid_query",
                detail: "this route takes no query parameters".into(),
            }),
        }
    }
}

/// The `Idempotency-Key` header (the IETF draft's), for routes whose body
/// has an id of its own that it stands for (`client_order_id`,
/// `client_transfer_id`; see [`IdempotencyKey::fill`]). Read from the
/// headers in place (axum's `HeaderMap` extractor copies them all).
#[derive(Debug)]
pub enum IdempotencyKey {
    /// No such header.
    Absent,
    /// One.
    One(axum::http::HeaderValue),
    /// Two or more: refused, never a pick of one, as a guessed key would
    /// merge or split the client's retries.
    Many,
}

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<IdempotencyKey, std::convert::Infallible> {
        let mut keys = parts.headers.get_all("idempotency-key").iter();
        Ok(match (keys.next(), keys.next()) {
            (None, _) => IdempotencyKey::Absent,
            (Some(key), None) => IdempotencyKey::One(key.clone()),
            (Some(_), Some(_)) => IdempotencyKey::Many,
        })
    }
}

impl IdempotencyKey {
    /// The key as the body's `field`, into `id`: either may be given, both
    /// only when equal (else a 422 `code`). The id's format is checked
    /// where the field's is, so a bad key reads as a bad id.
    pub fn fill(
        self,
        id: &mut Option<String>,
        code: &'static str,
        field: &str,
    ) -> Result<(), ApiError> {
        let key = match self {
            IdempotencyKey::Absent => return Ok(()),
            IdempotencyKey::Many => {
                return Err(ApiError::invalid(
                    code,
                    "more than one Idempotency-Key header",
                ));
            }
            IdempotencyKey::One(key) => key,
        };
        let key = key.to_str().map_err(|_| {
            ApiError::invalid(
                code,
                format!(
                    "{field} (or Idempotency-Key) must be 1 to 64 characters of A-Z a-z 0-9 _ - . :"
                ),
            )
        })?;
        match id {
            Some(id) if id != key => Err(ApiError::invalid(
                code,
                format!("the Idempotency-Key header and {field} differ"),
            )),
            _ => {
                *id = Some(key.to_string());
                Ok(())
            }
        }
    }
}

/// For routes that take no body (a cancel): a body, or a header that
/// announces one, is a 400, so what a client believes it sent (say a
/// reason, or another order's id) never silently does nothing.
#[derive(Debug)]
pub struct NoBody;

impl<S: Send + Sync> FromRequestParts<S> for NoBody {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<NoBody, ApiError> {
        let h = &parts.headers;
        let announced = h.contains_key(header::TRANSFER_ENCODING)
            || h.get_all(header::CONTENT_LENGTH)
                .iter()
                .any(|v| v.as_bytes() != b"0");
        if announced {
            return Err(ApiError::BadRequest {
                code: "unexpected_body",
                detail: "this route takes no body".into(),
            });
        }
        Ok(NoBody)
    }
}
