//! The event bus: domain code publishes [`Event`]s addressed to channels; the realtime layer
//! (the Pusher-protocol WebSocket) delivers them to subscribers.
//!
//! Publishing never blocks and never fails the request that caused it. In-process delivery is a
//! `tokio::sync::broadcast`; a subscriber that falls behind loses events (and the WebSocket
//! layer disconnects the clients it cannot keep up with) instead of growing memory. On
//! PostgreSQL, events also travel to the other host processes sharing the database through
//! the store's `LISTEN/NOTIFY` relay (see [`EventBus::start_relay`]).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::store::Store;

/// Events buffered per in-process subscriber before it starts losing them.
const LOCAL_CAPACITY: usize = 4096;
/// Events waiting to be relayed to other nodes before new ones are dropped (and logged).
const RELAY_CAPACITY: usize = 4096;

/// Something that happened, for everyone subscribed to `channel`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// e.g. `private-machine.{id}`.
    pub channel: String,
    /// e.g. `machine:status`.
    pub name: String,
    pub data: Value,
    /// A Pusher socket id that must not receive it (the sender of a client event).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub except_socket: Option<String>,
}

impl Event {
    pub fn new(channel: impl Into<String>, name: impl Into<String>, data: Value) -> Self {
        Self {
            channel: channel.into(),
            name: name.into(),
            data,
            except_socket: None,
        }
    }
}

/// What crosses between nodes.
#[derive(Debug, Serialize, Deserialize)]
struct Relayed {
    node: Uuid,
    event: Event,
}

/// Publish here, receive everywhere.
pub struct EventBus {
    local: broadcast::Sender<Arc<Event>>,
    /// Set when a relay to other nodes runs.
    relay: std::sync::OnceLock<mpsc::Sender<Arc<Event>>>,
    node: Uuid,
}

impl Default for EventBus {
    fn default() -> Self {
        let (local, _) = broadcast::channel(LOCAL_CAPACITY);
        Self {
            local,
            relay: std::sync::OnceLock::new(),
            node: Uuid::now_v7(),
        }
    }
}

impl EventBus {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Delivers to this process's subscribers and, when relaying, to the other nodes.
    pub fn publish(&self, event: Event) {
        let event = Arc::new(event);
        if let Some(relay) = self.relay.get()
            && relay.try_send(event.clone()).is_err()
        {
            tracing::warn!(channel = %event.channel, "event relay queue full; event not sent to other nodes");
        }
        // No subscribers is not an error: nobody is listening right now.
        let _ = self.local.send(event);
    }

    /// Whether events also travel to other host processes.
    pub fn is_relaying(&self) -> bool {
        self.relay.get().is_some()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.local.subscribe()
    }

    /// Starts relaying through the store, if it can (PostgreSQL): events published here are
    /// sent to the other nodes, and theirs are delivered here. Returns whether it relays.
    pub async fn start_relay(
        self: &Arc<Self>,
        store: Arc<dyn Store>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<bool> {
        let Some(mut incoming) = store.listen_events().await? else {
            return Ok(false);
        };
        let (tx, mut outgoing) = mpsc::channel::<Arc<Event>>(RELAY_CAPACITY);
        if self.relay.set(tx).is_err() {
            return Ok(true);
        }
        let node = self.node;
        let sender_store = store.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            loop {
                let event = tokio::select! {
                    Some(event) = outgoing.recv() => event,
                    () = stop.cancelled() => return,
                };
                let payload = serde_json::to_string(&Relayed {
                    node,
                    event: (*event).clone(),
                })
                .expect("events serialize");
                if let Err(err) = sender_store.send_event(&payload).await {
                    tracing::warn!(error = %err, "relaying an event to other nodes failed");
                }
            }
        });
        let bus = self.clone();
        tokio::spawn(async move {
            loop {
                let payload = tokio::select! {
                    payload = incoming.recv() => payload,
                    () = shutdown.cancelled() => return,
                };
                let Some(payload) = payload else {
                    tracing::error!(
                        "the event relay stopped; other nodes' events no longer arrive"
                    );
                    return;
                };
                match serde_json::from_str::<Relayed>(&payload) {
                    Ok(relayed) if relayed.node == node => {}
                    Ok(relayed) => {
                        let _ = bus.local.send(Arc::new(relayed.event));
                    }
                    Err(err) => tracing::warn!(error = %err, "undecodable relayed event"),
                }
            }
        });
        Ok(true)
    }
}
