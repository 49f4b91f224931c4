//! Telling people that a session needs them, wherever they are: their notification targets
//! (a webhook, a Slack-compatible or an ntfy-compatible URL, or a browser's Web Push
//! subscription), chosen per project and per kind of notice, and the deliveries — signed
//! (HMAC for URLs; VAPID and an encrypted payload for Web Push), retried with backoff, logged.
//!
//! Notices are queued (bounded) and delivered by one worker, each delivery in its own task, so
//! a slow receiver never holds up a session's state. Notices never quote the terminal unless
//! the target asked for it (`include_terminal`).

use std::{sync::Arc, time::Duration};

use hmac::{Hmac, Mac as _};
use serde_json::{Value, json};
use sqlx::types::Json;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{abilities, accounts::Principal, clock};
use crate::{
    config::NotificationSettings,
    error::{ApiError, ErrorCode, Result, Validator},
    links::AgentLinks,
    protocol::AgentRequest,
    secrets::SecretBox,
    store::{LogFilter, NotificationDelivery, NotificationTarget, Session, Store},
};
use claudenest_plugin_host::{
    grants::NetPolicy,
    hosts::HostEntry,
    net::{self, Request},
};

/// Kinds of notice a target can ask for.
pub const KINDS: &[&str] = &[
    "permission",
    "waiting",
    "turn_finished",
    "budget_warning",
    "budget_stopped",
];
/// What a target gets when it does not say: everything but finished turns (which are many).
const DEFAULT_KINDS: &[&str] = &["permission", "waiting", "budget_warning", "budget_stopped"];
/// Body shapes a target can take.
pub const TARGET_KINDS: &[&str] = &["webhook", "slack", "ntfy", "web_push"];
/// Seconds a push service keeps an undelivered Web Push notice.
const PUSH_TTL: Duration = Duration::from_secs(60 * 60);
const MAX_TARGETS_PER_USER: i64 = 20;
/// Notices waiting for the worker; beyond this they are dropped (and logged).
const QUEUE: usize = 1024;
/// Deliveries in flight at once.
const IN_FLIGHT: usize = 16;
/// Terminal text a notice quotes when the target opted in.
const TERMINAL_CHARS: usize = 1500;
const SECRET_PREFIX: &str = "whsec_";

fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotificationTargetNotFound)
}

/// `POST /api/notifications/targets`.
pub struct NewTarget {
    pub name: String,
    pub kind: String,
    pub url: String,
    pub project_id: Option<Uuid>,
    pub events: Option<Vec<String>>,
    pub include_terminal: bool,
    /// A Web Push subscription's keys (`web_push` only), as `PushSubscription.toJSON()` gives
    /// them: base64url.
    pub keys: Option<PushKeys>,
}

/// A browser's Web Push subscription keys (base64url, unpadded or padded).
#[derive(Debug, Clone)]
pub struct PushKeys {
    pub p256dh: String,
    pub auth: String,
}

fn b64url(text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .ok()
}

/// The subscriber's public key and auth secret, when both are what Web Push needs.
fn push_keys(
    p256dh: &str,
    auth: &str,
) -> Option<(web_push_native::p256::PublicKey, web_push_native::Auth)> {
    let public = web_push_native::p256::PublicKey::from_sec1_bytes(&b64url(p256dh)?).ok()?;
    let auth = b64url(auth).filter(|a| a.len() == 16)?;
    let mut secret = web_push_native::Auth::default();
    secret.copy_from_slice(&auth);
    Some((public, secret))
}

/// The host's VAPID identity: the key Web Push notices are signed with, and a contact.
pub struct Vapid {
    key: web_push_native::jwt_simple::algorithms::ES256KeyPair,
    contact: String,
}

impl Vapid {
    /// From `notifications.vapid_private_key`, else `<data_dir>/vapid-key` (made on first run).
    pub fn load(
        settings: &NotificationSettings,
        data_dir: &std::path::Path,
        public_url: &str,
    ) -> anyhow::Result<Self> {
        use web_push_native::jwt_simple::algorithms::ES256KeyPair;
        let encoded = match &settings.vapid_private_key {
            Some(key) => key.expose().to_owned(),
            None => {
                let path = data_dir.join("vapid-key");
                match std::fs::read_to_string(&path) {
                    Ok(text) => text.trim().to_owned(),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        use base64::Engine as _;
                        let fresh = base64::engine::general_purpose::URL_SAFE_NO_PAD
                            .encode(ES256KeyPair::generate().to_bytes());
                        crate::secrets::create_private(&path, fresh.as_bytes())?;
                        fresh
                    }
                    Err(e) => return Err(anyhow::anyhow!("reading {}: {e}", path.display())),
                }
            }
        };
        let bytes =
            b64url(&encoded).ok_or_else(|| anyhow::anyhow!("the VAPID key is not base64url"))?;
        let key = ES256KeyPair::from_bytes(&bytes)
            .map_err(|e| anyhow::anyhow!("the VAPID key is not a P-256 private key: {e}"))?;
        let contact = settings
            .vapid_contact
            .clone()
            .unwrap_or_else(|| public_url.to_owned());
        Ok(Self { key, contact })
    }

    /// `vapid t=<JWT>, k=<public key>` for a push endpoint (RFC 8292): the JWT's audience is
    /// the endpoint's origin, port included when it is not the scheme's default.
    fn authorization(&self, endpoint: &str) -> std::result::Result<String, String> {
        use web_push_native::jwt_simple::{algorithms::ECDSAP256KeyPairLike as _, claims::Claims};
        let origin = reqwest::Url::parse(endpoint)
            .map_err(|_| "the endpoint is not a URL")?
            .origin()
            .ascii_serialization();
        let claims = Claims::create(PUSH_TTL.into())
            .with_audience(origin)
            .with_subject(&self.contact);
        let token = self
            .key
            .sign(claims)
            .map_err(|e| format!("could not sign the VAPID token: {e}"))?;
        Ok(format!("vapid t={token}, k={}", self.public_key()))
    }

    /// The public key browsers subscribe with (`applicationServerKey`): base64url of the
    /// uncompressed point.
    pub fn public_key(&self) -> String {
        use base64::Engine as _;
        use web_push_native::jwt_simple::algorithms::ECDSAP256PublicKeyLike as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(self.key.public_key().public_key().to_bytes_uncompressed())
    }
}

/// The URL's host as an allow-list entry, or why the URL cannot be a target.
fn target_host(url: &str, allow: &[String]) -> std::result::Result<HostEntry, String> {
    let parsed = reqwest::Url::parse(url).map_err(|_| "The url must be an absolute URL.")?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("The url must be http or https.".into());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("The url may not carry a user name or password.".into());
    }
    let host = parsed.host_str().ok_or("The url has no host.")?;
    let port = parsed.port_or_known_default().unwrap_or(443);
    let entry = HostEntry::parse(&format!("{host}:{port}"))?;
    let allowed = NetPolicy::machine_owner(allow)
        .permits(std::slice::from_ref(&entry), &entry.host, port)
        .unwrap_or(false);
    if entry.is_internal_literal() && !allowed {
        return Err(format!(
            "{entry} is an internal address; only the operator can allow it \
             (notifications.allow_hosts)."
        ));
    }
    Ok(entry)
}

/// Creates a target; returns it and, for the kinds signed with HMAC, the secret (shown once).
pub async fn create_target(
    store: &dyn Store,
    secrets: &SecretBox,
    settings: &NotificationSettings,
    principal: &Principal,
    new: NewTarget,
) -> Result<(NotificationTarget, Option<String>)> {
    principal.require(abilities::NOTIFICATIONS_WRITE)?;
    let mut v = Validator::new();
    v.check(
        (1..=100).contains(&new.name.chars().count()),
        "name",
        "The name must be 1 to 100 characters.",
    );
    v.check(
        TARGET_KINDS.contains(&new.kind.as_str()),
        "kind",
        format!("The kind must be one of: {}.", TARGET_KINDS.join(", ")),
    );
    if new.url.len() > 2048 {
        v.add("url", "The url may not be longer than 2048 characters.");
    } else if let Err(why) = target_host(&new.url, &settings.allow_hosts) {
        v.add("url", why);
    }
    match (&new.keys, new.kind == "web_push") {
        (Some(keys), true) => {
            v.check(
                push_keys(&keys.p256dh, &keys.auth).is_some(),
                "keys",
                "The keys must be a subscription's p256dh (a P-256 public key) and auth \
                 (16 bytes), base64url.",
            );
        }
        (None, true) => {
            v.add("keys", "A web_push target needs its subscription's keys.");
        }
        (Some(_), false) => {
            v.add("keys", "Only web_push targets take keys.");
        }
        (None, false) => {}
    }
    let events = new
        .events
        .unwrap_or_else(|| DEFAULT_KINDS.iter().map(|k| (*k).to_owned()).collect());
    v.check(
        !events.is_empty() && events.iter().all(|e| KINDS.contains(&e.as_str())),
        "events",
        format!("The events must be some of: {}.", KINDS.join(", ")),
    );
    v.finish()?;
    if let Some(project) = new.project_id {
        store
            .project(principal.user.id, project)
            .await?
            .ok_or_else(|| ApiError::invalid_field("project_id", "No such project of yours."))?;
    }
    if store.count_notification_targets(principal.user.id).await? >= MAX_TARGETS_PER_USER {
        return Err(
            ApiError::new(ErrorCode::NotificationTargetLimit).with_message(format!(
                "You have the most notification targets allowed ({MAX_TARGETS_PER_USER})."
            )),
        );
    }
    // Web Push is signed with the host's VAPID key instead.
    let secret = (new.kind != "web_push")
        .then(|| claudenest_protocol::tokens::TokenSecret::generate(SECRET_PREFIX).plain);
    let mut events = events;
    events.sort();
    events.dedup();
    let target = NotificationTarget {
        id: Uuid::now_v7(),
        user_id: principal.user.id,
        name: new.name,
        kind: new.kind,
        url: new.url,
        secret: secret.as_deref().map(|s| secrets.seal(s)),
        push_p256dh: new.keys.as_ref().map(|k| k.p256dh.clone()),
        push_auth: new.keys.as_ref().map(|k| secrets.seal(&k.auth)),
        project_id: new.project_id,
        events: Json(events),
        include_terminal: new.include_terminal,
        created_at: clock::now(),
    };
    store.insert_notification_target(&target).await?;
    Ok((target, secret))
}

pub async fn list_targets(
    store: &dyn Store,
    principal: &Principal,
) -> Result<Vec<NotificationTarget>> {
    principal.require(abilities::NOTIFICATIONS_READ)?;
    Ok(store.notification_targets(principal.user.id).await?)
}

pub async fn delete_target(store: &dyn Store, principal: &Principal, id: Uuid) -> Result<()> {
    principal.require(abilities::NOTIFICATIONS_WRITE)?;
    if !store
        .delete_notification_target(principal.user.id, id)
        .await?
    {
        return Err(not_found());
    }
    Ok(())
}

/// The user's most recent deliveries, newest first.
pub async fn deliveries(
    store: &dyn Store,
    principal: &Principal,
    limit: i64,
) -> Result<Vec<NotificationDelivery>> {
    principal.require(abilities::NOTIFICATIONS_READ)?;
    Ok(store.deliveries(principal.user.id, limit).await?)
}

/// Something a person should hear about one of their sessions.
#[derive(Debug, Clone)]
pub struct Notice {
    /// One of [`KINDS`].
    pub kind: &'static str,
    pub session: Session,
    pub title: String,
    pub message: String,
    pub permission_id: Option<Uuid>,
}

/// Where notices are handed in; cheap to clone.
#[derive(Clone)]
pub struct Notifier {
    tx: mpsc::Sender<Notice>,
}

impl Notifier {
    /// Starts the delivery worker.
    pub fn start(
        store: Arc<dyn Store>,
        links: Arc<dyn AgentLinks>,
        secrets: Arc<SecretBox>,
        vapid: Arc<Vapid>,
        settings: NotificationSettings,
        public_url: String,
        shutdown: CancellationToken,
    ) -> Self {
        let (tx, mut rx) = mpsc::channel::<Notice>(QUEUE);
        let worker = Arc::new(Worker {
            store,
            links,
            secrets,
            vapid,
            settings,
            public_url,
            in_flight: Arc::new(Semaphore::new(IN_FLIGHT)),
        });
        tokio::spawn(async move {
            loop {
                let notice = tokio::select! {
                    notice = rx.recv() => match notice { Some(n) => n, None => return },
                    () = shutdown.cancelled() => return,
                };
                if let Err(err) = worker.clone().fan_out(notice).await {
                    tracing::warn!(error = %err, "could not hand a notice to its targets");
                }
            }
        });
        Self { tx }
    }

    /// Queues a notice; a full queue drops it (logged): the session's state is never held up.
    pub fn notify(&self, notice: Notice) {
        if let Err(err) = self.tx.try_send(notice) {
            tracing::warn!(error = %err, "the notification queue is full; a notice was dropped");
        }
    }
}

struct Worker {
    store: Arc<dyn Store>,
    links: Arc<dyn AgentLinks>,
    secrets: Arc<SecretBox>,
    vapid: Arc<Vapid>,
    settings: NotificationSettings,
    public_url: String,
    /// Deliveries in flight; the worker waits for a free one before starting the next, so a
    /// slow receiver fills the notice queue (and drops notices) instead of piling up tasks.
    in_flight: Arc<Semaphore>,
}

impl Worker {
    /// One delivery per target that wants this notice.
    async fn fan_out(self: Arc<Self>, notice: Notice) -> Result<()> {
        let notice = Arc::new(notice);
        let session = &notice.session;
        let targets = self.store.notification_targets(session.user_id).await?;
        let mut wanted: Vec<_> = targets
            .into_iter()
            .filter(|t| t.events.0.iter().any(|e| e == notice.kind))
            .collect();
        if wanted.iter().any(|t| t.project_id.is_some()) {
            let project =
                super::mcp_access::project_of_session(self.store.as_ref(), session).await?;
            let project_id = project.map(|p| p.id);
            wanted.retain(|t| t.project_id.is_none() || t.project_id == project_id);
        }
        // Read once for every target that quotes the terminal.
        let terminal: Option<Arc<str>> = match wanted.iter().any(|t| t.include_terminal) {
            true => self.terminal_tail(session).await.map(Arc::from),
            false => None,
        };
        for target in wanted {
            let terminal = terminal.clone().filter(|_| target.include_terminal);
            let now = clock::now();
            let delivery = NotificationDelivery {
                id: Uuid::now_v7(),
                target_id: target.id,
                user_id: target.user_id,
                event: notice.kind.to_owned(),
                session_id: Some(session.id),
                status: "pending".into(),
                attempts: 0,
                response_status: None,
                error: None,
                created_at: now,
                updated_at: now,
            };
            let Ok(permit) = self.in_flight.clone().acquire_owned().await else {
                return Ok(());
            };
            self.store.insert_delivery(&delivery).await?;
            let (worker, notice) = (self.clone(), notice.clone());
            tokio::spawn(async move {
                worker.deliver(target, notice, terminal, delivery).await;
                drop(permit);
            });
        }
        Ok(())
    }

    /// Sends until a 2xx, a refusal that another try cannot change, or the last attempt;
    /// every attempt is written to the delivery log.
    async fn deliver(
        &self,
        target: NotificationTarget,
        notice: Arc<Notice>,
        terminal: Option<Arc<str>>,
        mut delivery: NotificationDelivery,
    ) {
        let max_attempts = self.settings.max_attempts.max(1);
        loop {
            delivery.attempts += 1;
            let outcome = self
                .send_once(&target, &notice, delivery.id, terminal.as_deref())
                .await;
            let retry = match &outcome {
                Ok(status) => {
                    delivery.response_status = Some(i32::from(*status));
                    delivery.error = None;
                    // Timeouts, throttling and server errors may pass on another try.
                    !(200..300).contains(status) && (*status >= 500 || [408, 429].contains(status))
                }
                Err(err) => {
                    delivery.response_status = None;
                    delivery.error = Some(err.chars().take(500).collect());
                    true
                }
            };
            let delivered = matches!(outcome, Ok(s) if (200..300).contains(&s));
            let last = delivery.attempts >= max_attempts as i32;
            delivery.status = if delivered {
                "delivered"
            } else if retry && !last {
                "pending"
            } else {
                "failed"
            }
            .into();
            if let (Ok(status), false) = (&outcome, delivered) {
                delivery.error = Some(format!("the receiver answered {status}"));
            }
            delivery.updated_at = clock::now();
            if let Err(err) = self.store.update_delivery(&delivery).await {
                tracing::warn!(error = %err, "could not log a delivery");
            }
            if delivery.status != "pending" {
                let labels = [
                    ("kind", target.kind.clone()),
                    ("status", delivery.status.clone()),
                ];
                ::metrics::counter!(crate::metrics::NOTIFICATIONS, &labels).increment(1);
                return;
            }
            let backoff = self
                .settings
                .retry_base_ms
                .saturating_mul(1 << (delivery.attempts - 1).min(10));
            tokio::time::sleep(Duration::from_millis(backoff)).await;
        }
    }

    /// The end of what the session's terminal shows: its screen from the agent (what the
    /// person would see now), else the last output in the log (headless runs, or no agent).
    async fn terminal_tail(&self, session: &Session) -> Option<String> {
        let ask = AgentRequest::SessionSnapshot {
            session_id: session.id,
        };
        if let Ok(snapshot) = self
            .links
            .request(session.machine_id, ask, Duration::from_secs(3))
            .await
            && let Some(text) = snapshot["text"].as_str()
        {
            return Some(last_chars(text.trim_end(), TERMINAL_CHARS));
        }
        let session_id = session.id;
        let filter = LogFilter {
            kind: Some("output".into()),
            limit: 20,
            after_seq: None,
        };
        let logs = self.store.session_logs(session_id, &filter).await.ok()?;
        let text: String = logs.iter().map(|l| l.data.as_str()).collect();
        Some(last_chars(&strip_ansi(&text), TERMINAL_CHARS))
    }

    /// One attempt: the receiver's status, or why nothing was received.
    async fn send_once(
        &self,
        target: &NotificationTarget,
        notice: &Notice,
        delivery_id: Uuid,
        terminal: Option<&str>,
    ) -> std::result::Result<u16, String> {
        let entry = target_host(&target.url, &self.settings.allow_hosts)?;
        let session_url = format!("{}/sessions/{}", self.public_url, notice.session.id);
        let request = if target.kind == "web_push" {
            self.push_request(target, notice, &session_url, terminal)?
        } else {
            self.signed_request(target, notice, delivery_id, &session_url, terminal)?
        };
        let policy = NetPolicy::machine_owner(&self.settings.allow_hosts);
        let timeout = Duration::from_secs(self.settings.timeout_secs.max(1));
        match tokio::time::timeout(timeout, net::fetch(&[entry], &policy, 64 * 1024, request)).await
        {
            Ok(Ok(response)) => Ok(response.status),
            Ok(Err(err)) => Err(err),
            Err(_) => Err(format!("no answer within {timeout:?}")),
        }
    }

    /// A webhook, Slack or ntfy request, signed with the target's secret.
    fn signed_request(
        &self,
        target: &NotificationTarget,
        notice: &Notice,
        delivery_id: Uuid,
        session_url: &str,
        terminal: Option<&str>,
    ) -> std::result::Result<Request, String> {
        let secret = self.open(target.secret.as_deref())?;
        let (content_type, body, mut headers) = shape(target, notice, session_url, terminal);
        let timestamp = clock::now().timestamp().to_string();
        headers.extend([
            ("content-type".to_owned(), content_type.to_owned()),
            ("x-claudenest-event".to_owned(), notice.kind.to_owned()),
            ("x-claudenest-delivery".to_owned(), delivery_id.to_string()),
            ("x-claudenest-timestamp".to_owned(), timestamp.clone()),
            (
                "x-claudenest-signature".to_owned(),
                format!("sha256={}", sign(&secret, &timestamp, &body)),
            ),
        ]);
        Ok(Request {
            method: "POST".into(),
            url: target.url.clone(),
            headers,
            body: Some(body),
        })
    }

    /// A Web Push request: the notice encrypted for the subscription (aes128gcm), signed with
    /// the host's VAPID key. Push services cap payloads at 4 KiB: the notice is kept short.
    fn push_request(
        &self,
        target: &NotificationTarget,
        notice: &Notice,
        session_url: &str,
        terminal: Option<&str>,
    ) -> std::result::Result<Request, String> {
        let auth = self.open(target.push_auth.as_deref())?;
        let (public, auth) = push_keys(target.push_p256dh.as_deref().unwrap_or_default(), &auth)
            .ok_or("the subscription's keys are unusable")?;
        let endpoint: http::Uri = target
            .url
            .parse()
            .map_err(|_| "the endpoint is not a URI")?;
        let mut body = json!({
            "type": notice.kind,
            "title": notice.title,
            "message": notice.message.chars().take(500).collect::<String>(),
            "session_id": notice.session.id,
            "url": session_url,
        });
        if let Some(terminal) = terminal {
            body["terminal"] = Value::String(last_chars(terminal, 1000));
        }
        let built = web_push_native::WebPushBuilder::new(endpoint, public, auth)
            .with_valid_duration(PUSH_TTL)
            .build(body.to_string())
            .map_err(|e| format!("could not build the push request: {e}"))?;
        let mut headers: Vec<(String, String)> = built
            .headers()
            .iter()
            .filter(|(name, _)| *name != "content-length")
            .map(|(k, v)| {
                (
                    k.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        headers.push((
            "authorization".into(),
            self.vapid.authorization(&target.url)?,
        ));
        Ok(Request {
            method: "POST".into(),
            url: target.url.clone(),
            headers,
            body: Some(built.into_body()),
        })
    }

    /// A sealed value of a target's (its secret, its push auth).
    fn open(&self, sealed: Option<&str>) -> std::result::Result<String, String> {
        sealed
            .map(|s| self.secrets.open(s))
            .transpose()
            .map_err(|_| {
                "the target's secret cannot be opened (was the secret key changed?)".to_owned()
            })
            .map(Option::unwrap_or_default)
    }
}

/// `sha256=` + hex HMAC-SHA256 over `{timestamp}.{body}` with the target's secret: receivers
/// check it and refuse old timestamps, so a captured notice cannot be replayed later.
pub fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The body (and extra headers) a target's kind expects.
fn shape(
    target: &NotificationTarget,
    notice: &Notice,
    session_url: &str,
    terminal: Option<&str>,
) -> (&'static str, Vec<u8>, Vec<(String, String)>) {
    let session = &notice.session;
    match target.kind.as_str() {
        "slack" => {
            let mut text = format!(
                "*{}*\n{}\n<{session_url}|Open the session>",
                notice.title, notice.message
            );
            if let Some(terminal) = terminal {
                text.push_str(&format!("\n```{terminal}```"));
            }
            (
                "application/json",
                json!({ "text": text }).to_string().into_bytes(),
                vec![],
            )
        }
        "ntfy" => {
            let mut body = notice.message.clone();
            if let Some(terminal) = terminal {
                body.push_str("\n\n");
                body.push_str(terminal);
            }
            let priority = if notice.kind == "permission" {
                "high"
            } else {
                "default"
            };
            // Header values must be one line of visible text.
            let title: String = notice.title.chars().filter(|c| !c.is_control()).collect();
            let headers = vec![
                ("title".to_owned(), title),
                ("priority".to_owned(), priority.to_owned()),
                ("tags".to_owned(), "robot".to_owned()),
                ("click".to_owned(), session_url.to_owned()),
            ];
            ("text/plain; charset=utf-8", body.into_bytes(), headers)
        }
        _ => {
            let mut body = json!({
                "type": notice.kind,
                "title": notice.title,
                "message": notice.message,
                "created_at": clock::now(),
                "session": {
                    "id": session.id,
                    "machine_id": session.machine_id,
                    "project_path": session.project_path,
                    "status": session.status.as_str(),
                    "waiting_reason": session.waiting_reason,
                    "stop_reason": session.stop_reason,
                    "total_tokens": session.total_tokens,
                    "total_cost": session.total_cost,
                    "url": session_url,
                },
                "permission_id": notice.permission_id,
            });
            if let Some(terminal) = terminal {
                body["terminal"] = Value::String(terminal.to_owned());
            }
            ("application/json", body.to_string().into_bytes(), vec![])
        }
    }
}

/// The last `n` characters of `text`.
fn last_chars(text: &str, n: usize) -> String {
    let skip = text.chars().count().saturating_sub(n);
    text.chars().skip(skip).collect()
}

/// Terminal output without its escape sequences (CSI, OSC and single-character ones).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            if c == '\n' || c == '\t' || !c.is_control() {
                out.push(c);
            }
            continue;
        }
        match chars.next() {
            Some('[') => {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            Some(']') => {
                while let Some(c) = chars.next() {
                    if c == '\u{7}' || (c == '\u{1b}' && chars.next_if_eq(&'\\').is_some()) {
                        break;
                    }
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_cover_the_timestamp_and_the_body() {
        let a = sign("whsec_x", "1700000000", b"{}");
        assert_eq!(a.len(), 64);
        assert_ne!(a, sign("whsec_x", "1700000001", b"{}"));
        assert_ne!(a, sign("whsec_x", "1700000000", b"{ }"));
        assert_ne!(a, sign("whsec_y", "1700000000", b"{}"));
    }

    #[test]
    fn internal_targets_need_the_operator() {
        assert!(target_host("http://127.0.0.1:9/hook", &[]).is_err());
        assert!(target_host("http://127.0.0.1:9/hook", &["127.0.0.1:9".into()]).is_ok());
        assert!(target_host("http://[::1]/x", &[]).is_err());
        assert!(target_host("ftp://example.com/x", &[]).is_err());
        assert!(target_host("https://user:pw@example.com/x", &[]).is_err());
        assert!(target_host("https://hooks.example.com/x", &[]).is_ok());
    }

    #[test]
    fn escape_sequences_leave_the_quoted_terminal() {
        assert_eq!(
            strip_ansi("\u{1b}[1;32mok\u{1b}[0m\r\n\u{1b}]0;title\u{7}done"),
            "ok\ndone"
        );
    }
}
