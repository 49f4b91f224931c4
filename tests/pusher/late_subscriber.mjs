// A watcher that subscribes after output was published but before the log has it (the host
// publishes output before it logs it; the test holds the log's writes back). It follows the
// session with the dashboard terminal's own code (host/server/ui/follow.mjs) and must still
// draw that output once the log has it, although the session says nothing more.
// Run by tests/tests/e2e/sessions.rs with: BASE_URL, WS_PORT, APP_KEY, TOKEN, SESSION, NEEDLE.
// Prints `caught up: TEXT` (JSON) after the subscription's first catch-up, then `seen` when the
// text holds NEEDLE; exits 1 when it does not within 10 s.
import { connect, env } from './common.mjs';
import { LOG_PAGE, OutputFollower } from '../../host/server/ui/follow.mjs';

const BASE = env('BASE_URL');
const TOKEN = env('TOKEN');
const SESSION = env('SESSION');
const NEEDLE = env('NEEDLE');

let text = '';
const output = new OutputFollower({
  readAfter: async (since) => {
    const url = `${BASE}/api/sessions/${SESSION}/logs?type=output&since_seq=${since}&limit=${LOG_PAGE}`;
    const reply = await fetch(url, { headers: { Authorization: `Bearer ${TOKEN}` } });
    if (reply.status !== 200) throw new Error(`logs answered ${reply.status}`);
    return (await reply.json()).data;
  },
  draw: (_seq, data) => {
    text += data;
  },
});
output.hold();

const client = connect({ key: env('APP_KEY'), base: BASE, port: env('WS_PORT'), token: TOKEN });
const channel = client.subscribe(`private-session.${SESSION}`);
channel.bind('session:output', (event) => output.receive(event));
channel.bind('pusher:subscription_error', (status) => {
  console.log(`subscription refused ${JSON.stringify(status)}`);
  process.exit(1);
});
channel.bind('pusher:subscription_succeeded', () => {
  output.settle().then(() => console.log(`caught up: ${JSON.stringify(text)}`));
});

const deadline = Date.now() + 10_000;
while (!text.includes(NEEDLE)) {
  if (Date.now() > deadline) {
    console.log(`never drew ${JSON.stringify(NEEDLE)}: ${JSON.stringify(text)}`);
    process.exit(1);
  }
  await new Promise((resolve) => setTimeout(resolve, 50));
}
console.log('seen');
client.disconnect();
process.exit(0);
