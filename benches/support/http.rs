//! A router asked as a browser would: one GET, the whole body read.

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;

/// GETs `uri` and reads the whole body; it must be 200 OK.
pub async fn get(app: &Router, uri: &str) -> usize {
    let req = Request::get(uri).body(Body::empty()).expect("request");
    let res = app.clone().oneshot(req).await.expect("infallible");
    let status = res.status();
    let body = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .expect("body");
    assert_eq!(status, StatusCode::OK, "{uri}");
    body.len()
}

/// `iters` GETs of `uri`, timed one by one.
pub async fn timed_get(app: &Router, uri: &str, iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let start = Instant::now();
        std::hint::black_box(get(app, uri).await);
        total += start.elapsed();
    }
    total
}
