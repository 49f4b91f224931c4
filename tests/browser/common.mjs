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
