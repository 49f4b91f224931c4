//! The rate-limit middleware: which key each request counts under (the client's address, or a
//! bearer token once it authenticated) and the `X-RateLimit-*` headers. The counters themselves
//! are `crate::limits`; keys an attacker chooses never get a counter of their own (see there).

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::{Instant, SystemTime, UNIX_EPOCH},
};

use axum::{
    extract::{ConnectInfo, Request, State},
    http::HeaderValue,
    middleware::Next,
    response::{IntoResponse, Response},
};

use super::credentials::{Preauthenticated, bearer_token};
use crate::{
    error::ApiError,
    limits::{Decision, RateLimiter, TrustedProxies, address_key, digest},
};

/// Middleware for the authentication group: counted per client IP.
pub async fn per_client_ip(
    State(limiter): State<Arc<RateLimiter>>,
    request: Request,
    next: Next,
) -> Response {
    let key = address_key(client_ip(&request, limiter.proxies()));
    enforce(&limiter, key, request, next).await
}

/// Middleware for the authenticated API: counted per bearer token (hashed, so no secret is
/// kept in memory longer than the request) once it authenticated; per client address when
/// there is none or it is refused.
pub async fn per_token(
    State(limiter): State<Arc<RateLimiter>>,
    request: Request,
    next: Next,
) -> Response {
    // An `/mcp` tool dispatched in-process: its `/mcp` request was already counted.
    if request.extensions().get::<Preauthenticated>().is_some() {
        return next.run(request).await;
    }
    let address = address_key(client_ip(&request, limiter.proxies()));
    let Some(token) = bearer_token(request.headers()).map(|t| digest(&[b"token:", t.as_bytes()]))
    else {
        return enforce(&limiter, address, request, next).await;
    };
    // A token not seen in this window may be invented: an address over its limit of refused
    // tokens gets no more tries.
    if let Some(refused) = limiter.refuses(token, address, Instant::now()) {
        return with_headers(
            ApiError::rate_limited(refused.reset_in.max(1)).into_response(),
            refused,
        );
    }
    let response = next.run(request).await;
    let key = if response.status() == axum::http::StatusCode::UNAUTHORIZED {
        address
    } else {
        token
    };
    let decision = limiter.hit(key, Instant::now());
    with_headers(response, decision)
}

async fn enforce(limiter: &RateLimiter, key: [u8; 16], request: Request, next: Next) -> Response {
    let decision = limiter.hit(key, Instant::now());
    let response = if decision.allowed {
        next.run(request).await
    } else {
        ApiError::rate_limited(decision.reset_in.max(1)).into_response()
    };
    with_headers(response, decision)
}

fn with_headers(mut response: Response, decision: Decision) -> Response {
    let reset_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
        + decision.reset_in;
    let headers = response.headers_mut();
    headers.insert("x-ratelimit-limit", HeaderValue::from(decision.limit));
    headers.insert(
        "x-ratelimit-remaining",
        HeaderValue::from(decision.remaining),
    );
    headers.insert("x-ratelimit-reset", HeaderValue::from(reset_at));
    response
}

/// The client's address: the peer's, or behind a trusted proxy the one it forwarded.
pub fn client_ip(request: &Request, proxies: &TrustedProxies) -> IpAddr {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
        .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    proxies.client(peer, request.headers())
}
