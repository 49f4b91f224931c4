// pusher-js on host process B receives an event caused through host process A (both on one
// PostgreSQL database). Run by tests/tests/e2e/realtime.rs with: NODE_B_URL, NODE_B_PORT, APP_KEY,
// TOKEN, MACHINE, NODE_A_URL.
import { connect, env } from './common.mjs';

const client = connect({
  key: env('APP_KEY'),
  base: env('NODE_B_URL'),
  port: env('NODE_B_PORT'),
  token: env('TOKEN'),
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
