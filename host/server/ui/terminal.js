// A session's terminal: xterm.js drawing what the PTY on the machine draws.
//
// Attach answers the screen as it is now (`snapshot.ansi` as of `snapshot.seq`); after that,
// `session:output` events are applied in `seq` order. Every byte has one number, so after a
// dropped socket (or any gap in the numbers) the page asks the log for what came after the last
// number it drew (`logs?since_seq=`) and skips what it already has: nothing lost, nothing twice
// (follow.mjs).

import { Terminal } from './vendor/xterm.mjs';
import { FitAddon } from './vendor/addon-fit.mjs';
import * as api from './api.js';
import * as live from './live.js';
import { LOG_PAGE, OutputFollower } from './follow.mjs';

/// Socket frames are limited to 10 KiB: a paste goes in pieces well under it (JSON may escape
/// every byte as six).
const INPUT_PIECE = 1500;
const SCROLLBACK = 5000;

export class SessionTerminal {
  constructor(element, session, { onStatus } = {}) {
    this.session = session;
    this.output = new OutputFollower({
      readAfter: (seq) =>
        api.get(`sessions/${session.id}/logs?type=output&since_seq=${seq}&limit=${LOG_PAGE}`),
      draw: (_seq, data) => this.term.write(data),
    });
    this.ctrlNext = false;
    // Keys on their way through the API (see `type`), and the chain that sends them in order.
    this.viaApi = 0;
    this.apiInput = Promise.resolve();
    this.onStatus = onStatus || (() => {});
    this.term = new Terminal({
      scrollback: SCROLLBACK,
      cursorBlink: true,
      fontFamily: 'ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace',
      fontSize: 14,
      theme: { background: '#101418', foreground: '#d8dee9' },
    });
    this.fit = new FitAddon();
    this.term.loadAddon(this.fit);
    this.term.open(element);
    this.term.onData((data) => this.type(data));
    this.term.onResize(({ cols, rows }) => this.sendResize(cols, rows));
    this.resizeObserver = new ResizeObserver(() => this.refit());
    this.resizeObserver.observe(element);
  }

  /// Draws the attach snapshot (or, without one, the log), subscribes, then catches up.
  async start(snapshot) {
    this.subscription = live.watch(`private-session.${this.session.id}`, {
      'session:output': (event) => this.output.receive(event),
      'session:status': (event) => this.onStatus(event),
      'pusher:subscription_succeeded': () => this.output.settle(),
    });
    this.unwatchState = live.onState((current, previous) => {
      if (current === 'connected' && previous !== 'connected') this.output.catchUp();
    });
    this.output.hold();
    // Drawn at the size it was made for; then the terminal takes the window's size (and the
    // PTY follows, so the program redraws for it).
    if (snapshot) {
      this.term.resize(snapshot.cols, snapshot.rows);
      this.term.write(snapshot.ansi);
      this.output.apply(snapshot.seq);
    } else {
      // Without one, the log from its start.
      this.term.resize(this.session.pty_size.cols, this.session.pty_size.rows);
    }
    await this.output.catchUp();
    this.ready = true;
    this.refit();
  }

  /// Keystrokes and pastes, in the order typed: through the socket when subscribed, else
  /// through the API one request at a time (requests side by side could overtake each other),
  /// and through the API still while earlier keys are on their way there.
  type(data) {
    if (this.ended) return;
    if (this.ctrlNext && data.length === 1) {
      data = String.fromCharCode(data.toUpperCase().charCodeAt(0) & 0x1f);
      this.setCtrl(false);
    }
    for (let i = 0; i < data.length; i += INPUT_PIECE) {
      const piece = data.slice(i, i + INPUT_PIECE);
      const channel = this.subscription.channel;
      if (this.viaApi === 0 && channel.subscribed && live.connection().connection.state === 'connected') {
        channel.trigger('client-session:input', { data: piece });
      } else {
        this.viaApi += 1;
        this.apiInput = this.apiInput
          .then(() => api.post(`sessions/${this.session.id}/input`, { data: piece }))
          .catch((err) => window.dispatchEvent(new CustomEvent('claudenest:error', { detail: err })))
          .finally(() => { this.viaApi -= 1; });
      }
    }
  }

  sendResize(cols, rows) {
    if (this.ended) return;
    const channel = this.subscription && this.subscription.channel;
    if (channel && channel.subscribed) {
      channel.trigger('client-session:resize', { cols, rows });
    } else {
      api.post(`sessions/${this.session.id}/resize`, { cols, rows }).catch(() => {});
    }
  }

  refit() {
    if (!this.ready || !this.term.element || !this.term.element.isConnected) return;
    const size = this.fit.proposeDimensions();
    if (!size || !size.cols || !size.rows) return;
    const cols = Math.min(1000, Math.max(10, size.cols));
    const rows = Math.min(500, Math.max(2, size.rows));
    if (cols !== this.term.cols || rows !== this.term.rows) this.term.resize(cols, rows);
  }

  /// The touch key bar: Ctrl applies to the next key typed.
  setCtrl(on) {
    this.ctrlNext = on;
    document.dispatchEvent(new CustomEvent('claudenest:ctrl', { detail: on }));
  }

  key(sequence) {
    this.type(sequence);
    this.term.focus();
  }

  end() {
    this.ended = true;
    this.ready = false; // an ended session's PTY is gone: nothing to resize
    this.term.options.cursorBlink = false;
  }

  dispose() {
    this.resizeObserver.disconnect();
    if (this.subscription) this.subscription.stop();
    if (this.unwatchState) this.unwatchState();
    this.term.dispose();
  }
}

/// The key bar's keys: what each sends into the PTY.
export const KEYS = [
  ['Esc', '\x1b'],
  ['Tab', '\t'],
  ['↑', '\x1b[A'],
  ['↓', '\x1b[B'],
  ['←', '\x1b[D'],
  ['→', '\x1b[C'],
  ['^C', '\x03'],
];
