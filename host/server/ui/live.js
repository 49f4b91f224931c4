// The live connection: one pusher-js client per signed-in page, speaking the Pusher protocol to
// this same host (same origin, same sub-path), authorizing private channels with the page's
// token at `api/broadcasting/auth`. Views subscribe to what they show and unbind when they go.

import { auth } from './api.js';

let client = null;
let appKey = null;
const stateListeners = new Set();

export function configure(key) {
  appKey = key;
}

/// `/nest/` → `/nest`: where the host is mounted, for the socket's path.
function mountPath() {
  const path = location.pathname.replace(/[^/]*$/, '');
  return path.replace(/\/$/, '');
}

export function connection() {
  if (client) return client;
  const secure = location.protocol === 'https:';
  const port = Number(location.port) || (secure ? 443 : 80);
  client = new window.Pusher(appKey, {
    wsHost: location.hostname,
    wsPort: port,
    wssPort: port,
    wsPath: mountPath(),
    forceTLS: secure,
    enabledTransports: ['ws', 'wss'],
    cluster: '',
    disableStats: true,
    channelAuthorization: {
      endpoint: 'api/broadcasting/auth',
      transport: 'ajax',
      headersProvider: () => ({ Authorization: `Bearer ${auth.token}` }),
    },
  });
  client.connection.bind('state_change', ({ previous, current }) => {
    for (const listener of stateListeners) listener(current, previous);
  });
  return client;
}

/// Called with (current, previous) at every connection state change; returns the unbinder.
export function onState(listener) {
  stateListeners.add(listener);
  return () => stateListeners.delete(listener);
}

/// Subscribes (or reuses the subscription) and binds `handlers` ({event: fn}); returns a
/// function that unbinds them and leaves the channel when nothing else listens.
export function watch(channelName, handlers) {
  const pusher = connection();
  const channel = pusher.channel(channelName) || pusher.subscribe(channelName);
  channel.viewers = (channel.viewers || 0) + 1;
  for (const [event, fn] of Object.entries(handlers)) channel.bind(event, fn);
  return {
    channel,
    stop() {
      for (const [event, fn] of Object.entries(handlers)) channel.unbind(event, fn);
      channel.viewers -= 1;
      if (channel.viewers === 0) pusher.unsubscribe(channelName);
    },
  };
}

export function disconnect() {
  if (client) client.disconnect();
  client = null;
}
