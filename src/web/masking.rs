//! Every page, API answer and log the web serves passes through
//! [`mask_body`]: a known secret in it becomes `***` (SPEC §13), whatever
//! rendered it — a step label, an error text, a log written before masking.

use std::borrow::Cow;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::secrets;

/// Masks text and JSON bodies; others (none today) pass untouched. Nothing
/// is read when no secret is known.
pub async fn mask_body(res: Response) -> Response {
    if !secrets::any() || !is_text(res.headers()) {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    match secrets::mask_bytes(&bytes) {
        Cow::Borrowed(_) => Response::from_parts(parts, Body::from(bytes)),
        Cow::Owned(masked) => {
            parts.headers.remove(header::CONTENT_LENGTH);
            Response::from_parts(parts, Body::from(masked))
        }
    }
}

fn is_text(headers: &HeaderMap) -> bool {
    let Some(kind) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let kind = kind.to_ascii_lowercase();
    kind.starts_with("text/") || kind.starts_with("application/json") || kind.contains("+json")
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    #[tokio::test]
    async fn text_and_json_bodies_lose_known_secrets() {
        secrets::register("web-secret-q1w2e3");
        let app = Router::new()
            .route("/t", get(|| async { "log web-secret-q1w2e3 end" }))
            .route(
                "/j",
                get(|| async { axum::Json(serde_json::json!({"e": "web-secret-q1w2e3"})) }),
            )
            .route(
                "/h",
                get(|| async { axum::response::Html("<p>web-secret-q1w2e3</p>") }),
            )
            .layer(axum::middleware::map_response(mask_body));
        for (path, want) in [
            ("/t", "log *** end"),
            ("/j", r#"{"e":"***"}"#),
            ("/h", "<p>***</p>"),
        ] {
            let req = axum::http::Request::get(path).body(Body::empty()).unwrap();
            let res = app.clone().oneshot(req).await.unwrap();
            let body = axum::body::to_bytes(res.into_body(), usize::MAX)
                .await
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&body), want, "{path}");
        }
    }
}
