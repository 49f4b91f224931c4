// Drives a ClaudeNest host with the real pusher-js client, as a browser app would.
// Run by tests/tests/e2e/realtime.rs, which starts the host and passes what it set up in env:
//   BASE_URL, WS_PORT, APP_KEY, TOKEN_A, TOKEN_A2 (same user), MACHINE_A (A's, wake-capable,
//   waking to loopback), MACHINE_B (another user's), PROJECT_A and TASK_A (a pending task in it).
// Prints one line per step; exits 1 at the first failure.
import { connect as connectTo, env } from './common.mjs';

const BASE = env('BASE_URL');
const PORT = Number(env('WS_PORT'));
const KEY = env('APP_KEY');
const MACHINE_A = env('MACHINE_A');
const MACHINE_B = env('MACHINE_B');
const PROJECT_A = env('PROJECT_A');
const TASK_A = env('TASK_A');

const connect = (token) => connectTo({ key: KEY, base: BASE, port: PORT, token });

function waitFor(target, event, ms = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${event}`)), ms);
    target.bind(event, (data) => {
      clearTimeout(timer);
      resolve(data);
    });
  });
}

function connected(client) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('did not connect')), 5000);
    client.connection.bind('connected', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

function check(condition, message) {
  if (!condition) throw new Error(message);
}

const step = (name) => console.log(`ok - ${name}`);

async function main() {
  const a = connect(env('TOKEN_A'));
  await connected(a);
  check(/^\d+\.\d+$/.test(a.connection.socket_id), `socket id ${a.connection.socket_id}`);
  step('connected');

  const news = a.subscribe('news');
  await waitFor(news, 'pusher:subscription_succeeded');
  step('public channel');

  const privateName = `private-machine.${MACHINE_A}`;
  const mine = a.subscribe(privateName);
  await waitFor(mine, 'pusher:subscription_succeeded');
  step('private channel of my machine');

  const theirs = a.subscribe(`private-machine.${MACHINE_B}`);
  const refusal = await waitFor(theirs, 'pusher:subscription_error');
  check(refusal.status === 403, `refusal status ${JSON.stringify(refusal)}`);
  step("another user's channel is refused (403)");

  const presenceName = `presence-machine.${MACHINE_A}`;
  const presence = a.subscribe(presenceName);
  const members = await waitFor(presence, 'pusher:subscription_succeeded');
  check(members.count === 1, `presence count ${members.count}`);
  check(members.me && members.me.info && members.me.info.name === 'Test User', 'presence me');
  step('presence channel');

  // A second connection of the same user: same member, and a peer for client events.
  const a2 = connect(env('TOKEN_A2'));
  await connected(a2);
  const peer = a2.subscribe(privateName);
  await waitFor(peer, 'pusher:subscription_succeeded');
  const peerPresence = a2.subscribe(presenceName);
  const peerMembers = await waitFor(peerPresence, 'pusher:subscription_succeeded');
  check(peerMembers.count === 1, `one user, two sockets: count ${peerMembers.count}`);
  step('presence counts users, not sockets');

  let echoed = false;
  mine.bind('client-hello', () => {
    echoed = true;
  });
  const received = waitFor(peer, 'client-hello');
  check(mine.trigger('client-hello', { text: 'hi' }), 'trigger accepted');
  const hello = await received;
  check(hello.text === 'hi', `client event data ${JSON.stringify(hello)}`);
  await new Promise((r) => setTimeout(r, 300));
  check(!echoed, 'client events are not echoed to the sender');
  step('client events reach the peer, not the sender');

  const status = waitFor(mine, 'machine:status');
  const woke = await fetch(`${BASE}/api/machines/${MACHINE_A}/wake`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${env('TOKEN_A')}` },
  });
  check(woke.status === 200, `wake answered ${woke.status}`);
  const event = await status;
  check(event.status === 'connecting' && event.machine_id === MACHINE_A, JSON.stringify(event));
  step('machine:status arrives after the REST call that caused it');

  const projectChannel = a.subscribe(`private-project.${PROJECT_A}`);
  await waitFor(projectChannel, 'pusher:subscription_succeeded');
  const api = (path, body) =>
    fetch(`${BASE}${path}`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${env('TOKEN_A')}`, 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
  const claimed = waitFor(projectChannel, 'task:claimed');
  const claim = await api(`/api/tasks/${TASK_A}/claim`, { instance_id: 'instance_1' });
  check(claim.status === 200, `claim answered ${claim.status}`);
  const claimEvent = await claimed;
  check(claimEvent.instanceId === 'instance_1' && claimEvent.task.id === TASK_A, JSON.stringify(claimEvent));
  step('task:claimed arrives after POST /api/tasks/{id}/claim');

  const locked = waitFor(projectChannel, 'file:locked');
  const lock = await api(`/api/projects/${PROJECT_A}/locks`, {
    path: 'src/auth.php',
    instance_id: 'instance_1',
    reason: 'Refactoring authentication',
  });
  check(lock.status === 201, `lock answered ${lock.status}`);
  const lockEvent = await locked;
  check(
    lockEvent.path === 'src/auth.php' && lockEvent.lockedBy === 'instance_1' &&
      lockEvent.reason === 'Refactoring authentication',
    JSON.stringify(lockEvent),
  );
  step('file:locked arrives after POST /api/projects/{id}/locks');

  a.disconnect();
  a2.disconnect();
}

main().then(
  () => {
    console.log('all steps passed');
    process.exit(0);
  },
  (err) => {
    console.error(`not ok - ${err.message}`);
    process.exit(1);
  },
);
