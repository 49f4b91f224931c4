//! The host's side of agent links: which machines have a live link, and how to ask them
//! something. Domain code sees only [`AgentLinks`]; the WebSocket transport
//! (`http::agent_link`) registers links here.
//!
//! [`AgentLinks`] is the seam for a multi-node deployment: a router implementation could
//! forward `request` to the node that holds the machine's link, without touching callers.

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
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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
