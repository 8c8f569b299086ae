//! Requests answered before their body was read (a 401, a 429, a 413, an
//! unknown route): hyper cannot reuse such a connection — the unread body
//! stands before the next request — so it closes it after the answer. The
//! answer says so (`Connection: close`), and the client opens a new
//! connection instead of writing into a closed one. Where a refusal is
//! common (auth, throttling), [`refuse`] first reads a body that is already
//! on its way, and the connection stays open.

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use super::BODY_LIMIT;
use crate::error::ApiError;

/// How long [`refuse`] waits for the rest of a body before it gives up on
/// the connection.
const DRAIN_WAIT: Duration = Duration::from_millis(100);

/// A request body that notes when it has been read to its end.
struct Tracked {
    inner: Body,
    read: Arc<AtomicBool>,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.read.store(true, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Whether a request announces a body (`Content-Length` over 0, or a
/// `Transfer-Encoding`).
fn has_body(headers: &HeaderMap) -> bool {
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0")
}

/// Middleware: an answer given while the request's body is unread says
/// `Connection: close`.
pub async fn close_if_unread(req: Request, next: Next) -> Response {
    if !has_body(req.headers()) {
        return next.run(req).await;
    }
    let read = Arc::new(AtomicBool::new(false));
    let tracked = read.clone();
    let req = req.map(|inner| {
        Body::new(Tracked {
            inner,
            read: tracked,
        })
    });
    let mut res = next.run(req).await;
    if !read.load(Ordering::Relaxed) {
        res.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    res
}

/// The answer `err` to `req`, after reading its body if the body arrives
/// within [`DRAIN_WAIT`] (and is within the limit), so that the connection
/// can carry the client's next request.
pub async fn refuse(req: Request, err: ApiError) -> Response {
    if has_body(req.headers()) {
        let body = axum::body::to_bytes(req.into_body(), BODY_LIMIT);
        let _ = tokio::time::timeout(DRAIN_WAIT, body).await;
    }
    err.into_response()
}
