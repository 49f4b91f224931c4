// The dashboard's figures in a real headless Chromium, run by host/server/benches/dashboard.rs
// (which starts the host and agent and measures the raw WebSocket client beside it).
// Env: BASE_URL, TOKEN (a signed-in user's), ECHO_SESSION (a live session running `cat`),
// FLOOD_SESSION (a session that floods once it reads a line, then prints FLOOD-DONE), KEYS.
// Prints one JSON object on its last line.
import { launchChromium } from './common.mjs';

const BASE = process.env.BASE_URL;
const TOKEN = process.env.TOKEN;
const KEYS = Number(process.env.KEYS || 300);
const LOADS = 5;

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const browser = await launchChromium();

/// A cold load (new profile, empty cache) of `path`: bytes over the wire (headers and bodies
/// as Chromium counted them, compressed as sent), requests, and ms from navigation until
/// `ready` is on the page.
async function coldLoad(path, ready) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  await context.addInitScript((token) => localStorage.setItem('claudenest.token', token), TOKEN);
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  let bytes = 0;
  let requests = 0;
  cdp.on('Network.loadingFinished', (e) => {
    bytes += e.encodedDataLength;
    requests += 1;
  });
  await page.goto(`${BASE}${path}`);
  await page.locator(ready).first().waitFor();
  const ms = await page.evaluate(() => performance.now());
  await page.waitForTimeout(300); // let late requests (the socket's auth) finish counting
  await context.close();
  return { bytes, requests, ms };
}

const loads = [];
const docs = [];
for (let i = 0; i < LOADS; i++) {
  loads.push(await coldLoad('/#/', 'section[data-group=running]'));
  docs.push(await coldLoad('/api/docs/index.html', '.swagger-ui .information-container'));
}

const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
await context.addInitScript((token) => localStorage.setItem('claudenest.token', token), TOKEN);
const page = await context.newPage();

async function openSession(id) {
  await page.goto(`${BASE}/#/sessions/${id}`);
  await page.waitForFunction(() => window.claudenestTerminal && window.claudenestTerminal.subscription
    && window.claudenestTerminal.subscription.channel.subscribed);
}

// Keystroke echo: each key typed into the page's terminal until the page has drawn its echo.
await openSession(process.env.ECHO_SESSION);
const echo = await page.evaluate(async (keys) => {
  const t = window.claudenestTerminal;
  let waiting = null;
  const draw = t.draw.bind(t);
  t.draw = (seq, data) => {
    draw(seq, data);
    if (waiting && data.includes(waiting.key)) waiting.resolve();
  };
  const times = [];
  const warmup = 30;
  for (let i = 0; i < warmup + keys; i++) {
    const key = String.fromCharCode(97 + (i % 26));
    const start = performance.now();
    await new Promise((resolve) => {
      waiting = { key, resolve };
      t.type(key);
    });
    if (i >= warmup) times.push(performance.now() - start);
    const rest = 2 - (performance.now() - start); // paced like the raw client: 500 keys a second
    if (rest > 0) await new Promise((r) => setTimeout(r, rest));
  }
  return times.sort((a, b) => a - b);
}, KEYS);

// Output rendered: from the line that starts the flood until xterm.js has parsed FLOOD-DONE.
await openSession(process.env.FLOOD_SESSION);
const flood = await page.evaluate(async () => {
  const t = window.claudenestTerminal;
  let bytes = 0;
  let tail = '';
  let done;
  const finished = new Promise((resolve) => (done = resolve));
  const draw = t.draw.bind(t);
  t.draw = (seq, data) => {
    const before = t.lastSeq;
    draw(seq, data);
    if (t.lastSeq === before) return; // skipped: already drawn
    bytes += data.length;
    tail = (tail + data).slice(-64);
    if (tail.includes('FLOOD-DONE')) t.term.write('', () => done(performance.now()));
  };
  const start = performance.now();
  t.type('\r');
  const end = await finished;
  return { bytes, ms: end - start };
}, null);

await browser.close();
const pick = (xs, key) => median(xs.map((x) => x[key]));
console.log(JSON.stringify({
  first_load: { bytes: pick(loads, 'bytes'), requests: pick(loads, 'requests'), ms: pick(loads, 'ms') },
  docs_load: { bytes: pick(docs, 'bytes'), requests: pick(docs, 'requests'), ms: pick(docs, 'ms') },
  echo_ms: { p50: echo[Math.floor(echo.length * 0.5)], p99: echo[Math.min(echo.length - 1, Math.floor(echo.length * 0.99))] },
  flood,
}));
