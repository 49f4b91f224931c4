// What the pusher-js test scripts share: their settings from the environment, and a client
// configured as the dashboard configures its own (loopback, plain WebSocket, the API's
// channel authorization with a bearer token).
import Pusher from 'pusher-js';

export const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`missing ${name}`);
  return value;
};

/// A pusher-js client of the host at `base` (its WebSocket on `port`), authorizing private and
/// presence channels as `token`.
export function connect({ key, base, port, token }) {
  return new Pusher(key, {
    wsHost: '127.0.0.1',
    wsPort: Number(port),
    forceTLS: false,
    enabledTransports: ['ws'],
    cluster: '',
    disableStats: true,
    channelAuthorization: {
      endpoint: `${base}/api/broadcasting/auth`,
      transport: 'ajax',
      headers: { Authorization: `Bearer ${token}` },
    },
  });
}
