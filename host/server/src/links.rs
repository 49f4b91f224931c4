//! The host's side of agent links: which machines have a live link, and how to ask them
//! something. Domain code sees only [`AgentLinks`]; the WebSocket transport
//! (`http::agent_link`) registers links here.
//!
//! [`ClusterLinks`] is what the domain gets: the local registry first and, when several host
//! processes share a PostgreSQL database, the event relay to reach a link another process
//! holds (requests, replies and disconnects travel as internal bus events).

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::protocol::{AgentRequest, HostMessage};

/// Why a request to an agent did not produce a result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum LinkError {
    #[error("the machine has no live agent link")]
    NotConnected,
    #[error("the agent did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the link closed before the agent answered")]
    Closed,
    #[error("the agent answered with an error: {code}: {message}")]
    Agent { code: String, message: String },
}

/// Talking to machines' agents, wherever their links live.
#[async_trait]
pub trait AgentLinks: Send + Sync {
    fn is_connected(&self, machine_id: Uuid) -> bool;

    /// Sends `request` and waits for the agent's reply.
    async fn request(
        &self,
        machine_id: Uuid,
        request: AgentRequest,
        timeout: Duration,
    ) -> Result<Value, LinkError>;

    /// Closes the machine's link (if any) with a WebSocket close code and reason.
    fn disconnect(&self, machine_id: Uuid, close_code: u16, reason: &str);
}

/// Outgoing frames per link waiting to be written; a full queue makes senders wait.
const OUTBOX_CAPACITY: usize = 256;

/// One live link, as the registry and the socket task share it.
pub struct Link {
    pub machine_id: Uuid,
    generation: u64,
    outbox: mpsc::Sender<HostMessage>,
    closing: CancellationToken,
    close_reason: Mutex<Option<(u16, String)>>,
    pending: Mutex<HashMap<u64, oneshot::Sender<Result<Value, LinkError>>>>,
    next_request_id: AtomicU64,
}

impl Link {
    /// Resolved when the registry wants this link closed.
    pub fn closing(&self) -> &CancellationToken {
        &self.closing
    }

    /// The close code and reason asked for, once `closing` fired.
    pub fn close_reason(&self) -> Option<(u16, String)> {
        self.close_reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn close(&self, code: u16, reason: &str) {
        *self.close_reason.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((code, reason.to_owned()));
        self.closing.cancel();
    }

    /// Delivers the agent's answer to request `reply_to`. False when nobody waits for it.
    pub fn resolve(&self, reply_to: u64, result: Result<Value, LinkError>) -> bool {
        let waiter = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&reply_to);
        match waiter {
            Some(tx) => tx.send(result).is_ok(),
            None => false,
        }
    }

    async fn request(&self, request: AgentRequest, timeout: Duration) -> Result<Value, LinkError> {
        let id = self.next_request_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, tx);
        let sent = tokio::time::timeout(
            timeout,
            self.outbox.send(HostMessage::Request { id, request }),
        )
        .await;
        let outcome = match sent {
            Err(_) => Err(LinkError::Timeout(timeout)),
            Ok(Err(_)) => Err(LinkError::Closed),
            Ok(Ok(())) => match tokio::time::timeout(timeout, rx).await {
                Ok(Ok(result)) => result,
                Ok(Err(_)) => Err(LinkError::Closed),
                Err(_) => Err(LinkError::Timeout(timeout)),
            },
        };
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        outcome
    }

    /// Fails every request still waiting (the link is gone).
    fn fail_pending(&self) {
        let waiting: Vec<_> = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .collect();
        for (_, tx) in waiting {
            let _ = tx.send(Err(LinkError::Closed));
        }
    }
}

/// The links held by this host process.
#[derive(Default)]
pub struct LinkRegistry {
    links: Mutex<HashMap<Uuid, Arc<Link>>>,
    generations: AtomicU64,
}

impl LinkRegistry {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Registers a new link for `machine_id`. A link already there is told to close
    /// (`REPLACED`): one machine, one link. Returns the link and its outbox to drain.
    pub fn register(
        &self,
        machine_id: Uuid,
        replaced_code: u16,
    ) -> (Arc<Link>, mpsc::Receiver<HostMessage>) {
        let (outbox, rx) = mpsc::channel(OUTBOX_CAPACITY);
        let link = Arc::new(Link {
            machine_id,
            generation: self.generations.fetch_add(1, Ordering::Relaxed),
            outbox,
            closing: CancellationToken::new(),
            close_reason: Mutex::new(None),
            pending: Mutex::new(HashMap::new()),
            next_request_id: AtomicU64::new(1),
        });
        let previous = self
            .links
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(machine_id, link.clone());
        if let Some(old) = previous {
            old.close(replaced_code, "replaced by a newer link");
        }
        (link, rx)
    }

    /// Removes `link` if it is still the machine's current one; true when it was (so the
    /// machine has no link now), false when a newer link had already replaced it.
    pub fn unregister(&self, link: &Link) -> bool {
        link.fail_pending();
        let mut links = self.links.lock().unwrap_or_else(|p| p.into_inner());
        match links.get(&link.machine_id) {
            Some(current) if current.generation == link.generation => {
                links.remove(&link.machine_id);
                true
            }
            _ => false,
        }
    }

    /// How many links are live.
    pub fn len(&self) -> usize {
        self.links.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn get(&self, machine_id: Uuid) -> Option<Arc<Link>> {
        self.links
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&machine_id)
            .cloned()
    }
}

#[async_trait]
impl AgentLinks for LinkRegistry {
    fn is_connected(&self, machine_id: Uuid) -> bool {
        self.get(machine_id).is_some()
    }

    async fn request(
        &self,
        machine_id: Uuid,
        request: AgentRequest,
        timeout: Duration,
    ) -> Result<Value, LinkError> {
        let link = self.get(machine_id).ok_or(LinkError::NotConnected)?;
        link.request(request, timeout).await
    }

    fn disconnect(&self, machine_id: Uuid, close_code: u16, reason: &str) {
        if let Some(link) = self.get(machine_id) {
            link.close(close_code, reason);
        }
    }
}

/// Internal bus channels; `#` is not a valid Pusher channel character, so no client can join.
const REQUEST_CHANNEL: &str = "#agent-request";
const REPLY_CHANNEL: &str = "#agent-reply";
const DISCONNECT_CHANNEL: &str = "#agent-disconnect";

#[derive(serde::Serialize, serde::Deserialize)]
struct RemoteRequest {
    id: Uuid,
    machine_id: Uuid,
    request: AgentRequest,
    timeout: Duration,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct RemoteReply {
    id: Uuid,
    result: Result<Value, LinkError>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct RemoteDisconnect {
    machine_id: Uuid,
    close_code: u16,
    reason: String,
}

/// Agent links across host processes. A machine linked here is served by the local registry;
/// otherwise, when the bus relays between processes, the request goes out on the bus and the
/// process holding the link answers. Disconnects are sent everywhere.
pub struct ClusterLinks {
    local: Arc<LinkRegistry>,
    bus: Arc<crate::events::EventBus>,
    pending: Mutex<HashMap<Uuid, oneshot::Sender<Result<Value, LinkError>>>>,
}

impl ClusterLinks {
    /// Starts answering other processes' requests for links held here.
    pub fn start(
        local: Arc<LinkRegistry>,
        bus: Arc<crate::events::EventBus>,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        let links = Arc::new(Self {
            local,
            bus,
            pending: Mutex::new(HashMap::new()),
        });
        let mut events = links.bus.subscribe();
        let this = links.clone();
        tokio::spawn(async move {
            loop {
                let event = tokio::select! {
                    event = events.recv() => event,
                    () = shutdown.cancelled() => return,
                };
                match event {
                    Ok(event) => this.on_event(&event),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "cluster links fell behind the bus");
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        links
    }

    fn publish<T: serde::Serialize>(&self, channel: &str, body: &T) {
        let data = serde_json::to_value(body).expect("link messages serialize");
        self.bus
            .publish(crate::events::Event::new(channel, "link", data));
    }

    fn on_event(self: &Arc<Self>, event: &crate::events::Event) {
        match event.channel.as_str() {
            REQUEST_CHANNEL => {
                let Ok(req) = serde_json::from_value::<RemoteRequest>(event.data.clone()) else {
                    return;
                };
                if !self.local.is_connected(req.machine_id) {
                    return;
                }
                let this = self.clone();
                tokio::spawn(async move {
                    let result = this
                        .local
                        .request(req.machine_id, req.request, req.timeout)
                        .await;
                    this.publish(REPLY_CHANNEL, &RemoteReply { id: req.id, result });
                });
            }
            REPLY_CHANNEL => {
                if let Ok(reply) = serde_json::from_value::<RemoteReply>(event.data.clone()) {
                    let waiter = self
                        .pending
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&reply.id);
                    if let Some(tx) = waiter {
                        let _ = tx.send(reply.result);
                    }
                }
            }
            DISCONNECT_CHANNEL => {
                if let Ok(d) = serde_json::from_value::<RemoteDisconnect>(event.data.clone()) {
                    self.local.disconnect(d.machine_id, d.close_code, &d.reason);
                }
            }
            _ => {}
        }
    }
}

#[async_trait]
impl AgentLinks for ClusterLinks {
    /// Linked here, or possibly to another process (when there are others to ask).
    fn is_connected(&self, machine_id: Uuid) -> bool {
        self.local.is_connected(machine_id) || self.bus.is_relaying()
    }

    async fn request(
        &self,
        machine_id: Uuid,
        request: AgentRequest,
        timeout: Duration,
    ) -> Result<Value, LinkError> {
        if self.local.is_connected(machine_id) || !self.bus.is_relaying() {
            return self.local.request(machine_id, request, timeout).await;
        }
        let id = Uuid::now_v7();
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, tx);
        self.publish(
            REQUEST_CHANNEL,
            &RemoteRequest {
                id,
                machine_id,
                request,
                timeout,
            },
        );
        // The holder waits `timeout` for its agent; allow the relay's two hops on top.
        let outcome = match tokio::time::timeout(timeout + Duration::from_secs(2), rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(LinkError::Closed),
            Err(_) => Err(LinkError::NotConnected),
        };
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        outcome
    }

    fn disconnect(&self, machine_id: Uuid, close_code: u16, reason: &str) {
        self.local.disconnect(machine_id, close_code, reason);
        if self.bus.is_relaying() {
            self.publish(
                DISCONNECT_CHANNEL,
                &RemoteDisconnect {
                    machine_id,
                    close_code,
                    reason: reason.to_owned(),
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn requests_are_correlated_by_id_and_time_out() {
        let registry = LinkRegistry::new();
        let machine = Uuid::now_v7();
        let (link, mut outbox) = registry.register(machine, 4000);
        let asking = {
            let registry = registry.clone();
            tokio::spawn(async move {
                registry
                    .request(machine, AgentRequest::Environment, Duration::from_secs(5))
                    .await
            })
        };
        let Some(HostMessage::Request { id, .. }) = outbox.recv().await else {
            panic!("expected a request")
        };
        assert!(
            !link.resolve(id + 100, Ok(Value::Null)),
            "unknown ids are not delivered"
        );
        assert!(link.resolve(id, Ok(serde_json::json!({"ok": true}))));
        assert_eq!(asking.await.unwrap().unwrap()["ok"], true);

        let slow = registry
            .request(
                machine,
                AgentRequest::Environment,
                Duration::from_millis(20),
            )
            .await;
        assert_eq!(slow, Err(LinkError::Timeout(Duration::from_millis(20))));
        let absent = registry
            .request(
                Uuid::now_v7(),
                AgentRequest::Environment,
                Duration::from_secs(1),
            )
            .await;
        assert_eq!(absent, Err(LinkError::NotConnected));
    }

    #[tokio::test]
    async fn a_newer_link_replaces_the_older_one() {
        let registry = LinkRegistry::new();
        let machine = Uuid::now_v7();
        let (first, _rx1) = registry.register(machine, 4000);
        let (second, _rx2) = registry.register(machine, 4000);
        assert!(first.closing().is_cancelled());
        assert_eq!(first.close_reason().unwrap().0, 4000);
        assert!(
            !registry.unregister(&first),
            "the old link must not unregister the new one"
        );
        assert!(registry.is_connected(machine));
        assert!(registry.unregister(&second));
        assert!(!registry.is_connected(machine));
    }
}
