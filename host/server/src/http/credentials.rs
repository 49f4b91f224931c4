//! What a request presents to prove who it is: a bearer token in `Authorization`, or a principal
//! already authenticated in this process. A leaf module: authentication, rate limiting and
//! `/mcp` all read these, none of them owns them.

use axum::http::{HeaderMap, header};

use crate::domain::accounts::Principal;

/// A caller already authenticated in-process (the MCP server dispatching a tool to its REST
/// endpoint; `exists` handing on the principal it looked up). Only code in this process can put
/// it in a request's extensions.
#[derive(Clone)]
pub struct Preauthenticated(pub Principal);

/// The bearer token of an `Authorization` header, if any.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Whether a presented secret is the expected one, in time that does not depend on where they
/// differ.
pub fn same_secret(given: &str, expected: &str) -> bool {
    use subtle::ConstantTimeEq as _;
    given.len() == expected.len() && bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

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
