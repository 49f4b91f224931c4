// pusher-js on host process B receives an event caused through host process A (both on one
// PostgreSQL database). Run by tests/tests/e2e/realtime.rs with: NODE_B_URL, NODE_B_PORT, APP_KEY,
// TOKEN, MACHINE, NODE_A_URL.
import Pusher from 'pusher-js';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`missing ${name}`);
  return value;
};

const client = new Pusher(env('APP_KEY'), {
  wsHost: '127.0.0.1',
  wsPort: Number(env('NODE_B_PORT')),
  forceTLS: false,
  enabledTransports: ['ws'],
  cluster: '',
  disableStats: true,
  channelAuthorization: {
    endpoint: `${env('NODE_B_URL')}/api/broadcasting/auth`,
    transport: 'ajax',
    headers: { Authorization: `Bearer ${env('TOKEN')}` },
  },
});

const timeout = (ms, what) =>
  new Promise((_, reject) => setTimeout(() => reject(new Error(`timed out: ${what}`)), ms));

async function main() {
  const channel = client.subscribe(`private-machine.${env('MACHINE')}`);
  await Promise.race([
    new Promise((resolve) => channel.bind('pusher:subscription_succeeded', resolve)),
    timeout(5000, 'subscription on node B'),
  ]);
  const received = new Promise((resolve) => channel.bind('machine:status', resolve));
  const woke = await fetch(`${env('NODE_A_URL')}/api/machines/${env('MACHINE')}/wake`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${env('TOKEN')}` },
  });
  if (woke.status !== 200) throw new Error(`wake on node A answered ${woke.status}`);
  const event = await Promise.race([received, timeout(5000, 'machine:status on node B')]);
  if (event.status !== 'connecting') throw new Error(JSON.stringify(event));
  console.log('ok - an event caused on node A reached pusher-js on node B');
  client.disconnect();
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(`not ok - ${err.message}`);
    process.exit(1);
  },
);
