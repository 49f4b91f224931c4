// What the browser stories and the bench share: their inputs, their checks, and Chromium.
import { chromium } from 'playwright-core';

/// A required environment variable (the Rust side passes what it set up).
export function env(name) {
  const value = process.env[name];
  if (!value) throw new Error(`missing ${name}`);
  return value;
}

export function check(condition, message) {
  if (!condition) throw new Error(message);
}

/// Debian's Chromium (or $CHROMIUM), headless. As root (CI) it needs --no-sandbox; the other
/// flags keep it off this closed network.
export function launchChromium() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/// Runs a browser story: Chromium for `body`, "FAILED: …" and exit status 1 at its first
/// failure, the browser closed either way.
export async function story(body) {
  const browser = await launchChromium();
  let failed = false;
  try {
    await body(browser);
  } catch (err) {
    failed = true;
    console.error(`FAILED: ${err.stack || err}`);
  } finally {
    await browser.close();
  }
  process.exit(failed ? 1 : 0);
}

/// Every line of the session page's terminal, scrollback included.
export async function terminalLines(page) {
  return page.evaluate(() => {
    const t = window.claudenestTerminal;
    if (!t) return [];
    const buffer = t.term.buffer.active;
    const lines = [];
    for (let i = 0; i < buffer.length; i++) lines.push(buffer.getLine(i).translateToString(true));
    return lines;
  });
}

/// Waits until the terminal's lines satisfy `predicate`; fails showing what it shows.
export async function waitForTerminal(page, predicate, what, ms = 20000) {
  const deadline = Date.now() + ms;
  let lines = [];
  while (Date.now() < deadline) {
    lines = await terminalLines(page);
    if (predicate(lines)) return lines;
    await page.waitForTimeout(50);
  }
  throw new Error(`terminal never showed ${what}; it shows:\n${lines.filter(Boolean).join('\n')}`);
}
