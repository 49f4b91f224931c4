// A session's output in `seq` order, each number drawn once: the dashboard's terminal
// (terminal.js) and the scale-out test's watchers (tests/pusher/scale_out.mjs) both follow
// output with it, so the test proves what the page does.
//
// Events are drawn as they come. After a gap in the numbers, a (re)subscription or a reconnect,
// the log is asked for what came after the last number drawn (`logs?since_seq=`), skipping what
// was drawn already; events arriving meanwhile are held and applied after it. An event that
// still leaves a gap asks the log again, a little later (the event may have overtaken the log's
// write); after a few asks that find nothing the gap is accepted, since the log keeps a bounded
// history.
//
// After a (re)subscription the log may not have everything the subscription came too late to
// hear: the host publishes output before it logs it, so output published just before may be
// written only after the first catch-up read the log, and if the session then says nothing,
// no event shows the gap. `settle()` asks the log again a few times, until an event arrives.

/// Entries per log page (the API's largest `limit`).
export const LOG_PAGE = 1000;
/// Asks that may find nothing for one gap before it is accepted.
const FRUITLESS_ASKS = 3;
/// After a (re)subscription, the pauses before each further ask while no event arrives.
const SETTLE_ASKS_MS = [250, 500, 1000, 2000];
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export class OutputFollower {
  /// `readAfter(seq)`: one page (at most LOG_PAGE) of the log's output entries after `seq`.
  /// `draw(seq, data)`: called once per number, in increasing order.
  constructor({ readAfter, draw }) {
    this.readAfter = readAfter;
    this.draw = draw;
    this.lastSeq = 0;
    this.pending = null; // events held while catching up
    this.catching = null;
    this.fruitless = 0; // asks in a row that found nothing for the gap in front
    this.settling = 0; // which settle() is current (a newer one ends the older)
    this.heard = false; // an event arrived since the current settle() began
  }

  /// After a (re)subscription: catches up now (the promise answered), then again after each
  /// pause in SETTLE_ASKS_MS until an event arrives.
  settle() {
    const current = ++this.settling;
    this.heard = false;
    const first = this.catchUp();
    first.then(async () => {
      for (const ms of SETTLE_ASKS_MS) {
        await sleep(ms);
        if (this.heard || current !== this.settling) return;
        await this.catchUp();
      }
    }).catch(() => {});
    return first;
  }

  /// Holds events until the next catch-up ends (before the first one, say).
  hold() {
    this.pending = this.pending || [];
  }

  /// Asks the log for everything after the last number drawn, then applies what was held.
  catchUp() {
    if (this.catching) return this.catching;
    this.hold();
    const from = this.lastSeq;
    this.catching = (async () => {
      try {
        if (this.fruitless > 0) await sleep(100 * this.fruitless);
        for (;;) {
          const entries = await this.readAfter(this.lastSeq);
          for (const entry of entries) this.apply(entry.seq, entry.data);
          if (entries.length < LOG_PAGE) break;
        }
      } finally {
        const held = this.pending.sort((a, b) => a.seq - b.seq);
        this.pending = null;
        this.catching = null;
        const gap = held.length > 0 && held[0].seq > this.lastSeq + 1;
        this.fruitless = gap && this.lastSeq === from ? this.fruitless + 1 : 0;
        for (const event of held) this.receive(event);
      }
    })();
    return this.catching;
  }

  /// A `session:output` event.
  receive(event) {
    this.heard = true;
    if (this.pending) {
      this.pending.push(event);
    } else if (event.seq > this.lastSeq + 1 && this.fruitless < FRUITLESS_ASKS) {
      this.pending = [event];
      this.catchUp().catch(() => {});
    } else {
      this.fruitless = 0;
      this.apply(event.seq, event.data);
    }
  }

  /// Draws what is new; what was drawn already is skipped. A snapshot's number counts as drawn.
  apply(seq, data) {
    if (seq === null || seq === undefined || seq <= this.lastSeq) return;
    this.lastSeq = seq;
    if (data !== undefined) this.draw(seq, data);
  }
}
