//! Channel membership and fan-out for the Pusher-protocol WebSocket.
//!
//! Each connected socket has a bounded outbox. Delivering an event serializes it once and
//! `try_send`s the same frame to every subscriber: a socket whose outbox is full is told to
//! close (4100, "over capacity") instead of making everyone wait or memory grow.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::events::Event;

/// Frames waiting for a slow socket before it is disconnected.
pub const OUTBOX_CAPACITY: usize = 512;

/// A frame as sent: serialized once, shared by every recipient (a reference-counted buffer the
/// WebSocket writes from, so no recipient copies it).
pub type Frame = axum::extract::ws::Utf8Bytes;

/// One socket's way in: its outbox and the flag that closes it.
#[derive(Clone)]
pub struct SocketHandle {
    pub outbox: mpsc::Sender<Frame>,
    /// Set when the hub finds the outbox full: the socket cannot keep up, and its writer
    /// closes it with 4100. A flag the writer reads after each batch, not something it waits
    /// on: a full outbox always has frames to wake the writer.
    pub overflowed: Arc<AtomicBool>,
}

/// A presence member: who, what they share, and how many of their sockets are in the channel.
struct Member {
    info: Value,
    sockets: usize,
}

#[derive(Default)]
struct Channel {
    /// socket id → (handle, presence user id)
    subscribers: HashMap<String, (SocketHandle, Option<String>)>,
    members: HashMap<String, Member>,
}

/// Who is subscribed to what, in this process.
#[derive(Default)]
pub struct Hub {
    channels: Mutex<HashMap<String, Channel>>,
    /// Open sockets per client address (IPv6 by /64).
    addresses: Mutex<HashMap<[u8; 16], usize>>,
}

/// One open socket counted against its address; uncounted when dropped.
pub struct AddressSlot {
    hub: Arc<Hub>,
    key: [u8; 16],
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut addresses = self.hub.addresses.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = addresses.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                addresses.remove(&self.key);
            }
        }
    }
}

/// A serialized server → client frame: `data` travels as a JSON string (Pusher protocol).
pub fn frame(event: &str, channel: Option<&str>, data: &Value) -> Frame {
    let data = match data {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut message = json!({ "event": event, "data": data });
    if let Some(channel) = channel {
        message["channel"] = Value::String(channel.to_owned());
    }
    Frame::from(message.to_string())
}

impl Hub {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// A place for one more socket from the address `key`, unless it already has `max` open.
    pub fn open_from(self: &Arc<Self>, key: [u8; 16], max: usize) -> Option<AddressSlot> {
        let mut addresses = self.addresses.lock().unwrap_or_else(|p| p.into_inner());
        let count = addresses.entry(key).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            hub: self.clone(),
            key,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Channel>> {
        self.channels.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a socket to a channel and queues its `pusher_internal:subscription_succeeded`
    /// (with the member list on presence channels). The answer is queued under the channel's
    /// lock, so no event of the channel can reach the socket ahead of it: a client that reads
    /// the channel's history once subscribed sees every later event live. For presence
    /// channels pass the member (`user_id`, info); the others are told when this is the
    /// user's first socket.
    pub fn subscribe(
        &self,
        channel_name: &str,
        socket_id: &str,
        handle: SocketHandle,
        member: Option<(String, Value)>,
    ) {
        let mut channels = self.lock();
        let channel = channels.entry(channel_name.to_owned()).or_default();
        let user_id = member.as_ref().map(|(id, _)| id.clone());
        let previous = channel
            .subscribers
            .insert(socket_id.to_owned(), (handle.clone(), user_id.clone()));
        if previous.is_none() {
            ::metrics::gauge!(crate::metrics::SUBSCRIPTIONS).increment(1.0);
        }
        let presence = member.map(|(user_id, info)| {
            if previous.is_none() {
                Self::join(channel, channel_name, socket_id, user_id, info);
            }
            let mut ids: Vec<String> = channel.members.keys().cloned().collect();
            ids.sort();
            let hash: serde_json::Map<String, Value> = channel
                .members
                .iter()
                .map(|(id, m)| (id.clone(), m.info.clone()))
                .collect();
            json!({ "presence": { "count": ids.len(), "ids": ids, "hash": hash } })
        });
        let succeeded = frame(
            "pusher_internal:subscription_succeeded",
            Some(channel_name),
            &presence.unwrap_or_else(|| json!({})),
        );
        send_to(&handle, succeeded);
    }

    /// A presence member's socket joins: counted, and the others told when it is the
    /// member's first.
    fn join(
        channel: &mut Channel,
        channel_name: &str,
        socket_id: &str,
        user_id: String,
        info: Value,
    ) {
        let entry = channel.members.entry(user_id.clone()).or_insert(Member {
            info: info.clone(),
            sockets: 0,
        });
        entry.sockets += 1;
        if entry.sockets == 1 {
            let added = frame(
                "pusher_internal:member_added",
                Some(channel_name),
                &json!({ "user_id": user_id, "user_info": info }),
            );
            deliver(channel, &added, Some(socket_id));
        }
    }

    /// Removes a socket from a channel; on a presence channel, the user's last socket leaving
    /// tells the others.
    pub fn unsubscribe(&self, channel_name: &str, socket_id: &str) {
        let mut channels = self.lock();
        let Some(channel) = channels.get_mut(channel_name) else {
            return;
        };
        let removed = channel.subscribers.remove(socket_id);
        if removed.is_some() {
            ::metrics::gauge!(crate::metrics::SUBSCRIPTIONS).decrement(1.0);
        }
        if let Some((_, Some(user_id))) = removed
            && let Some(member) = channel.members.get_mut(&user_id)
        {
            member.sockets -= 1;
            if member.sockets == 0 {
                channel.members.remove(&user_id);
                let removed = frame(
                    "pusher_internal:member_removed",
                    Some(channel_name),
                    &json!({ "user_id": user_id }),
                );
                deliver(channel, &removed, None);
            }
        }
        if channel.subscribers.is_empty() {
            channels.remove(channel_name);
        }
    }

    pub fn is_subscribed(&self, channel_name: &str, socket_id: &str) -> bool {
        self.lock()
            .get(channel_name)
            .is_some_and(|c| c.subscribers.contains_key(socket_id))
    }

    /// Delivers an event to a channel's subscribers (except `except_socket`).
    pub fn dispatch(&self, event: &Event) {
        let mut channels = self.lock();
        if let Some(channel) = channels.get_mut(&event.channel) {
            let frame = frame(&event.name, Some(&event.channel), &event.data);
            deliver(channel, &frame, event.except_socket.as_deref());
        }
    }

    /// Subscribers of a channel, for tests and stats.
    pub fn subscriber_count(&self, channel_name: &str) -> usize {
        self.lock()
            .get(channel_name)
            .map_or(0, |c| c.subscribers.len())
    }
}

fn deliver(channel: &Channel, frame: &Frame, except: Option<&str>) {
    let mut delivered = 0u64;
    for (socket_id, (handle, _)) in &channel.subscribers {
        if Some(socket_id.as_str()) == except {
            continue;
        }
        delivered += u64::from(send_to(handle, frame.clone()));
    }
    ::metrics::counter!(crate::metrics::FANNED_OUT).increment(delivered);
}

/// Queues a frame without waiting; whether it was queued.
fn send_to(handle: &SocketHandle, frame: Frame) -> bool {
    let queued = handle.outbox.try_send(frame).is_ok();
    if !queued {
        // Full (or gone): the socket cannot keep up; its task closes it with 4100.
        handle.overflowed.store(true, Ordering::Relaxed);
    }
    queued
}

#[cfg(test)]
mod tests {
    use super::*;

    fn socket() -> (SocketHandle, mpsc::Receiver<Frame>) {
        let (outbox, rx) = mpsc::channel(2);
        (
            SocketHandle {
                outbox,
                overflowed: Arc::default(),
            },
            rx,
        )
    }

    #[test]
    fn events_reach_subscribers_but_not_the_excluded_sender() {
        let hub = Hub::new();
        let (a, mut a_rx) = socket();
        let (b, mut b_rx) = socket();
        hub.subscribe("private-x", "1.1", a, None);
        hub.subscribe("private-x", "2.2", b, None);
        for rx in [&mut a_rx, &mut b_rx] {
            let answer: Value = serde_json::from_str(&rx.try_recv().unwrap()).unwrap();
            assert_eq!(answer["event"], "pusher_internal:subscription_succeeded");
            assert_eq!(answer["channel"], "private-x");
        }
        let mut event = Event::new("private-x", "client-typing", json!({"k": 1}));
        event.except_socket = Some("1.1".into());
        hub.dispatch(&event);
        assert!(a_rx.try_recv().is_err());
        let got: Value = serde_json::from_str(&b_rx.try_recv().unwrap()).unwrap();
        assert_eq!(got["event"], "client-typing");
        assert_eq!(got["data"], "{\"k\":1}", "data is a JSON string");
    }

    #[test]
    fn presence_counts_users_not_sockets() {
        let hub = Hub::new();
        let (a1, mut a1_rx) = socket();
        let (a2, _a2_rx) = socket();
        let (b, mut b_rx) = socket();
        hub.subscribe(
            "presence-x",
            "b",
            b,
            Some(("bob".into(), json!({"name": "Bob"}))),
        );
        assert!(b_rx.try_recv().unwrap().contains("subscription_succeeded"));
        hub.subscribe("presence-x", "a1", a1, Some(("ada".into(), json!({}))));
        let answer: Value = serde_json::from_str(&a1_rx.try_recv().unwrap()).unwrap();
        let answer: Value = serde_json::from_str(answer["data"].as_str().unwrap()).unwrap();
        assert_eq!(answer["presence"]["ids"], json!(["ada", "bob"]));
        assert_eq!(answer["presence"]["count"], 2);
        assert_eq!(answer["presence"]["hash"]["bob"]["name"], "Bob");
        assert!(b_rx.try_recv().unwrap().contains("member_added"));
        hub.subscribe("presence-x", "a2", a2, Some(("ada".into(), json!({}))));
        assert!(
            b_rx.try_recv().is_err(),
            "ada's second socket is not a new member"
        );
        hub.unsubscribe("presence-x", "a1");
        assert!(b_rx.try_recv().is_err(), "ada still has a socket");
        hub.unsubscribe("presence-x", "a2");
        assert!(b_rx.try_recv().unwrap().contains("member_removed"));
    }

    #[test]
    fn a_subscription_is_answered_before_any_event_of_its_channel() {
        // Published while the socket subscribes: the answer still comes first, so a client
        // that reads history once subscribed misses nothing published after.
        let hub = Hub::new();
        let (a, mut rx) = socket();
        hub.subscribe("private-x", "1.1", a, None);
        hub.dispatch(&Event::new(
            "private-x",
            "session:output",
            json!({"seq": 1}),
        ));
        assert!(rx.try_recv().unwrap().contains("subscription_succeeded"));
        assert!(rx.try_recv().unwrap().contains("session:output"));
    }

    #[test]
    fn a_full_outbox_marks_the_socket_for_closing() {
        let hub = Hub::new();
        let (slow, _rx) = socket();
        let flag = slow.overflowed.clone();
        hub.subscribe("c", "s", slow, None);
        for _ in 0..3 {
            hub.dispatch(&Event::new("c", "e", json!({})));
        }
        assert!(flag.load(Ordering::Relaxed));
    }
}
