//! Stand-ins on loopback for what the tests must not reach on the internet: an OAuth identity
//! provider (authorize, token, user-info and e-mails endpoints, PKCE checked for real) and an
//! SMTP server that records what it is sent.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use axum::{
    Form, Json, Router,
    extract::{Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::TcpListener,
};

/// The person the fake provider signs in.
#[derive(Debug, Clone)]
pub struct FakeIdentity {
    pub subject: String,
    pub email: String,
    pub email_verified: bool,
    pub name: String,
}

#[derive(Default)]
struct IdpState {
    identity: Option<FakeIdentity>,
    /// code → (PKCE challenge, redirect_uri)
    codes: HashMap<String, (String, String)>,
    /// access token → identity
    tokens: HashMap<String, FakeIdentity>,
    exchanges: usize,
}

/// A fake OAuth 2 provider speaking both Google's and GitHub's user-info shapes.
#[derive(Clone)]
pub struct FakeIdp {
    pub base_url: String,
    state: Arc<Mutex<IdpState>>,
}

impl FakeIdp {
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(IdpState::default()));
        let app = Router::new()
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .route("/userinfo", get(google_userinfo))
            .route("/user", get(github_user))
            .route("/user/emails", get(github_emails))
            .with_state(state.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            base_url: format!("http://{addr}"),
            state,
        }
    }

    /// Who signs in next.
    pub fn sign_in_as(&self, identity: FakeIdentity) {
        self.state.lock().unwrap().identity = Some(identity);
    }

    /// How many code exchanges succeeded.
    pub fn exchanges(&self) -> usize {
        self.state.lock().unwrap().exchanges
    }

    /// Provider settings pointing at this fake.
    pub fn provider_settings(&self, emails: bool) -> claudenest::config::OAuthProvider {
        claudenest::config::OAuthProvider {
            client_id: "fake-client".into(),
            client_secret: claudenest::config::Secret::new("fake-secret"),
            redirect_url: None,
            auth_url: Some(format!("{}/authorize", self.base_url)),
            token_url: Some(format!("{}/token", self.base_url)),
            userinfo_url: Some(format!(
                "{}/{}",
                self.base_url,
                if emails { "user" } else { "userinfo" }
            )),
            emails_url: emails.then(|| format!("{}/user/emails", self.base_url)),
        }
    }
}

#[derive(Deserialize)]
struct AuthorizeQuery {
    response_type: String,
    client_id: String,
    redirect_uri: String,
    state: String,
    code_challenge: String,
    code_challenge_method: String,
}

/// Plays the user approving the request: redirects back with a code.
async fn authorize(
    State(state): State<Arc<Mutex<IdpState>>>,
    Query(q): Query<AuthorizeQuery>,
) -> Response {
    if q.response_type != "code"
        || q.client_id != "fake-client"
        || q.code_challenge_method != "S256"
    {
        return (StatusCode::BAD_REQUEST, "bad authorize request").into_response();
    }
    let code = format!("code-{}", uuid::Uuid::now_v7().simple());
    state
        .lock()
        .unwrap()
        .codes
        .insert(code.clone(), (q.code_challenge, q.redirect_uri.clone()));
    let sep = if q.redirect_uri.contains('?') {
        '&'
    } else {
        '?'
    };
    Redirect::to(&format!(
        "{}{sep}code={code}&state={}",
        q.redirect_uri, q.state
    ))
    .into_response()
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: String,
    code: String,
    code_verifier: String,
    redirect_uri: String,
}

async fn token(
    State(state): State<Arc<Mutex<IdpState>>>,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Response {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("fake-client:fake-secret")
    );
    if headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        != Some(&expected)
    {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    let mut state = state.lock().unwrap();
    let Some((challenge, redirect_uri)) = state.codes.remove(&form.code) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_grant"})),
        )
            .into_response();
    };
    let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(form.code_verifier.as_bytes()));
    if form.grant_type != "authorization_code"
        || computed != challenge
        || redirect_uri != form.redirect_uri
    {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_grant"})),
        )
            .into_response();
    }
    let identity = state.identity.clone().expect("sign_in_as was called");
    let access = format!("at-{}", uuid::Uuid::now_v7().simple());
    state.tokens.insert(access.clone(), identity);
    state.exchanges += 1;
    Json(json!({"access_token": access, "token_type": "bearer", "expires_in": 3600}))
        .into_response()
}

fn identity_for(state: &Mutex<IdpState>, headers: &HeaderMap) -> Option<FakeIdentity> {
    let bearer = headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")?;
    state.lock().unwrap().tokens.get(bearer).cloned()
}

async fn google_userinfo(
    State(state): State<Arc<Mutex<IdpState>>>,
    headers: HeaderMap,
) -> Response {
    match identity_for(&state, &headers) {
        Some(i) => Json(json!({
            "sub": i.subject, "email": i.email, "email_verified": i.email_verified,
            "name": i.name, "picture": "https://example.com/avatar.png"
        }))
        .into_response(),
        None => StatusCode::UNAUTHORIZED.into_response(),
    }
}

async fn github_user(State(state): State<Arc<Mutex<IdpState>>>, headers: HeaderMap) -> Response {
    if headers.get(header::USER_AGENT).is_none() {
        return (StatusCode::FORBIDDEN, "GitHub requires a User-Agent").into_response();
    }
    match identity_for(&state, &headers) {
        Some(i) => Json(json!({
            "id": i.subject.parse::<u64>().unwrap_or(1), "login": "octo", "name": i.name,
            "email": Value::Null, "avatar_url": "https://example.com/octo.png"
        }))
        .into_response(),
        None => StatusCode::UNAUTHORIZED.into_response(),
    }
}

async fn github_emails(State(state): State<Arc<Mutex<IdpState>>>, headers: HeaderMap) -> Response {
    match identity_for(&state, &headers) {
        Some(i) => Json(json!([
            {"email": "noreply@users.example.com", "primary": false, "verified": true},
            {"email": i.email, "primary": true, "verified": i.email_verified},
        ]))
        .into_response(),
        None => StatusCode::UNAUTHORIZED.into_response(),
    }
}

/// One message as the SMTP sink received it.
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
}

/// An SMTP server on loopback that accepts (or, when told, refuses) every message.
#[derive(Clone)]
pub struct SmtpSink {
    pub port: u16,
    received: Arc<Mutex<Vec<ReceivedMail>>>,
}

impl SmtpSink {
    /// `refuse`: answer 554 to every recipient, as a broken or hostile server would.
    pub async fn start(refuse: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = received.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let sink = sink.clone();
                tokio::spawn(async move {
                    let _ = serve_smtp(stream, sink, refuse).await;
                });
            }
        });
        Self { port, received }
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    pub fn messages(&self) -> Vec<ReceivedMail> {
        self.received.lock().unwrap().clone()
    }
}

async fn serve_smtp(
    stream: tokio::net::TcpStream,
    sink: Arc<Mutex<Vec<ReceivedMail>>>,
    refuse: bool,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    write.write_all(b"220 sink.test ESMTP\r\n").await?;
    let (mut from, mut to) = (String::new(), Vec::new());
    while let Some(line) = lines.next_line().await? {
        let upper = line.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            b"250 sink.test\r\n"
        } else if upper.starts_with("MAIL FROM:") {
            from = line[10..].trim().to_owned();
            b"250 OK\r\n"
        } else if upper.starts_with("RCPT TO:") {
            if refuse {
                b"554 5.7.1 Relay access denied\r\n"
            } else {
                to.push(line[8..].trim().to_owned());
                b"250 OK\r\n"
            }
        } else if upper == "DATA" {
            write
                .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                .await?;
            let mut data = String::new();
            while let Some(l) = lines.next_line().await? {
                if l == "." {
                    break;
                }
                data.push_str(&l);
                data.push('\n');
            }
            sink.lock().unwrap().push(ReceivedMail {
                from: std::mem::take(&mut from),
                to: std::mem::take(&mut to),
                data,
            });
            b"250 OK queued\r\n"
        } else if upper == "QUIT" {
            write.write_all(b"221 Bye\r\n").await?;
            return Ok(());
        } else if upper == "RSET" || upper == "NOOP" {
            b"250 OK\r\n"
        } else {
            b"502 Command not implemented\r\n"
        };
        write.write_all(reply).await?;
    }
    Ok(())
}
