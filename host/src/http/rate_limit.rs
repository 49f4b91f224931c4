//! Fixed-window rate limits (API §13): one window per key per minute, as Laravel counts them.
//!
//! Every response of a limited group carries `X-RateLimit-Limit`, `X-RateLimit-Remaining` and
//! `X-RateLimit-Reset` (Unix seconds); a request over the limit answers `RTE_001` 429 with
//! `Retry-After`. Counters live in this process: hosts sharing one PostgreSQL database each
//! count their own traffic (documented in docs/api.md).

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use axum::{
    extract::{ConnectInfo, Request, State},
    http::{HeaderMap, HeaderValue, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use sha2::{Digest, Sha256};

use crate::error::ApiError;

const WINDOW: Duration = Duration::from_secs(60);
/// Above this many tracked keys, expired windows are swept on the next request.
const SWEEP_THRESHOLD: usize = 10_000;

/// One group's limit and its counters.
pub struct RateLimiter {
    limit: u32,
    windows: Mutex<HashMap<[u8; 16], Window>>,
}

#[derive(Clone, Copy)]
struct Window {
    started: Instant,
    count: u32,
}

/// The outcome of counting one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the window resets.
    pub reset_in: u64,
}

impl RateLimiter {
    pub fn new(limit_per_minute: u32) -> Arc<Self> {
        Arc::new(Self {
            limit: limit_per_minute,
            windows: Mutex::new(HashMap::new()),
        })
    }

    /// Counts one request for `key` at `now`.
    pub fn hit(&self, key: [u8; 16], now: Instant) -> Decision {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if windows.len() > SWEEP_THRESHOLD {
            windows.retain(|_, w| now.duration_since(w.started) < WINDOW);
        }
        let window = windows.entry(key).or_insert(Window {
            started: now,
            count: 0,
        });
        if now.duration_since(window.started) >= WINDOW {
            *window = Window {
                started: now,
                count: 0,
            };
        }
        let allowed = window.count < self.limit;
        if allowed {
            window.count += 1;
        }
        let elapsed = now.duration_since(window.started);
        Decision {
            allowed,
            limit: self.limit,
            remaining: self.limit - window.count,
            reset_in: (WINDOW.saturating_sub(elapsed)).as_secs_f64().ceil() as u64,
        }
    }
}

impl RateLimiter {
    /// Counts one request for a key made of `parts`; `RTE_001` once over the limit. For limits
    /// a handler applies itself (e.g. login attempts per account).
    pub fn check(&self, parts: &[&[u8]]) -> Result<(), ApiError> {
        let decision = self.hit(digest(parts), Instant::now());
        if decision.allowed {
            Ok(())
        } else {
            Err(ApiError::rate_limited(decision.reset_in.max(1)))
        }
    }
}

/// Middleware for the authentication group: counted per client IP.
pub async fn per_client_ip(
    State(limiter): State<Arc<RateLimiter>>,
    request: Request,
    next: Next,
) -> Response {
    let key = client_key(&request);
    enforce(&limiter, key, request, next).await
}

/// Middleware for the authenticated API: counted per bearer token (hashed, so no secret is
/// kept in memory longer than the request), or per IP when there is none.
pub async fn per_token(
    State(limiter): State<Arc<RateLimiter>>,
    request: Request,
    next: Next,
) -> Response {
    // An `/mcp` tool dispatched in-process: its `/mcp` request was already counted.
    if request
        .extensions()
        .get::<super::auth::Preauthenticated>()
        .is_some()
    {
        return next.run(request).await;
    }
    let key = match bearer_token(request.headers()) {
        Some(token) => digest(&[b"token:", token.as_bytes()]),
        None => client_key(&request),
    };
    enforce(&limiter, key, request, next).await
}

async fn enforce(limiter: &RateLimiter, key: [u8; 16], request: Request, next: Next) -> Response {
    let decision = limiter.hit(key, Instant::now());
    let mut response = if decision.allowed {
        next.run(request).await
    } else {
        ApiError::rate_limited(decision.reset_in.max(1)).into_response()
    };
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

/// The bearer token of an `Authorization` header, if any.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

fn client_key(request: &Request) -> [u8; 16] {
    let ip = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_string())
        .unwrap_or_default();
    digest(&[b"ip:", ip.as_bytes()])
}

fn digest(parts: &[&[u8]]) -> [u8; 16] {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    let full = hasher.finalize();
    let mut key = [0; 16];
    key.copy_from_slice(&full[..16]);
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_key_and_resets_after_the_window() {
        let limiter = RateLimiter::new(2);
        let t0 = Instant::now();
        let (a, b) = ([1; 16], [2; 16]);
        assert_eq!(limiter.hit(a, t0).remaining, 1);
        assert!(limiter.hit(a, t0).allowed);
        let third = limiter.hit(a, t0);
        assert!(!third.allowed);
        assert_eq!(third.remaining, 0);
        assert_eq!(third.reset_in, 60);
        assert!(limiter.hit(b, t0).allowed, "keys are independent");
        assert!(limiter.hit(a, t0 + WINDOW).allowed, "a new window starts");
    }

    #[test]
    fn bearer_parsing() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer_token(&headers), None);
        headers.insert(header::AUTHORIZATION, "Bearer cn_abc".parse().unwrap());
        assert_eq!(bearer_token(&headers), Some("cn_abc"));
        headers.insert(header::AUTHORIZATION, "Basic xyz".parse().unwrap());
        assert_eq!(bearer_token(&headers), None);
    }
}
