// Many pusher-js clients watch one busy session through a load balancer while a host process
// behind it is killed. Each follows the session's output with the dashboard terminal's own code
// (host/server/ui/follow.mjs): events in `seq` order, and after a gap, a (re)subscription or a
// reconnect, a catch-up from the log (`logs?since_seq=`) that skips what it already has. When every client has seen the session's
// last line, each client's text must equal the log's.
// Run by tests/tests/e2e/scale_out.rs with: LB_URL, LB_PORT, APP_KEY, TOKEN, SESSION, CLIENTS,
// END_MARK. Prints `ready` once every client is subscribed and caught up, then one JSON line of
// figures; exits 1 at the first failure.
import { connect, env } from './common.mjs';
import { LOG_PAGE, OutputFollower } from '../../host/server/ui/follow.mjs';

const LB = env('LB_URL');
const TOKEN = env('TOKEN');
const SESSION = env('SESSION');
const END_MARK = env('END_MARK');
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Log reads that answered something other than 200 (in flight on the killed node), retried.
let retriedReads = 0;

/// One page of output entries after `since`, retrying what failed in flight.
async function readPage(since) {
  const url = `${LB}/api/sessions/${SESSION}/logs?type=output&since_seq=${since}&limit=${LOG_PAGE}`;
  for (;;) {
    try {
      const reply = await fetch(url, { headers: { Authorization: `Bearer ${TOKEN}` } });
      if (reply.status !== 200) throw new Error(`logs answered ${reply.status}`);
      return (await reply.json()).data;
    } catch (err) {
      if (++retriedReads > 500) throw err;
      await sleep(100);
    }
  }
}

/// Every output entry after `since`.
async function logAfter(since) {
  const entries = [];
  for (;;) {
    const page = await readPage(since);
    entries.push(...page);
    if (page.length < LOG_PAGE) return entries;
    since = page[page.length - 1].seq;
  }
}

class Watcher {
  constructor(index) {
    this.index = index;
    this.drawn = 0;
    this.text = '';
    this.output = new OutputFollower({ readAfter: readPage, draw: (seq, data) => this.draw(seq, data) });
    this.output.hold();
    this.connections = 0;
    this.lostAt = null;
    this.longestOutageMs = 0;
    this.client = connect({ key: env('APP_KEY'), base: LB, port: env('LB_PORT'), token: TOKEN });
    this.client.connection.bind('state_change', ({ previous, current }) => {
      if (previous === 'connected' && current !== 'connected') this.lostAt = Date.now();
      if (current === 'connected') {
        this.connections += 1;
        if (this.lostAt !== null) {
          this.longestOutageMs = Math.max(this.longestOutageMs, Date.now() - this.lostAt);
          this.lostAt = null;
        }
      }
    });
    this.subscribed = new Promise((resolve, reject) => {
      const channel = this.client.subscribe(`private-session.${SESSION}`);
      channel.bind('session:output', (event) => this.output.receive(event));
      channel.bind('pusher:subscription_succeeded', () => {
        // Again after every reconnect: what was said while away comes from the log.
        this.output.settle().then(resolve, reject);
      });
      channel.bind('pusher:subscription_error', (status) =>
        reject(new Error(`client ${index}: subscription refused ${JSON.stringify(status)}`)),
      );
    });
  }

  /// Output in order, each number once: a gap the follower gave up on fails the client.
  draw(seq, data) {
    if (seq !== this.drawn + 1) this.gap ??= `client ${this.index}: seq ${seq} after ${this.drawn}`;
    this.drawn = seq;
    this.text += data;
  }
}

async function main() {
  const started = Date.now();
  const watchers = Array.from({ length: Number(env('CLIENTS')) }, (_, i) => new Watcher(i));
  await Promise.all(watchers.map((w) => w.subscribed));
  console.log('ready');

  const deadline = Date.now() + 120_000;
  while (!watchers.every((w) => w.text.includes(END_MARK))) {
    const gap = watchers.find((w) => w.gap);
    if (gap) throw new Error(gap.gap);
    if (Date.now() > deadline) {
      const behind = watchers.filter((w) => !w.text.includes(END_MARK));
      throw new Error(`${behind.length} clients never saw ${END_MARK}: client ${behind[0].index} ` +
        `is at seq ${behind[0].drawn}, state ${behind[0].client.connection.state}`);
    }
    await sleep(50);
  }
  const log = (await logAfter(0)).map((e) => e.data).join('');
  for (const w of watchers) {
    if (w.text !== log) {
      let at = 0;
      while (at < log.length && w.text[at] === log[at]) at += 1;
      throw new Error(`client ${w.index} differs from the log at byte ${at} of ${log.length}: ` +
        `${JSON.stringify(w.text.slice(at, at + 40))} vs ${JSON.stringify(log.slice(at, at + 40))}`);
    }
  }
  console.log(JSON.stringify({
    clients: watchers.length,
    reconnected: watchers.filter((w) => w.connections > 1).length,
    longest_outage_ms: Math.max(...watchers.map((w) => w.longestOutageMs)),
    bytes: log.length,
    retried_reads: retriedReads,
    seconds: (Date.now() - started) / 1000,
  }));
  for (const w of watchers) w.client.disconnect();
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(`not ok - ${err.message}`);
    process.exit(1);
  },
);
