// "Needs you" on a session's page: why it waits (from Claude Code's own hooks), the permission
// it asks for with Allow and Deny, and why ClaudeNest stopped it. Redrawn from the API whenever
// the session's channel says something moved.

import * as api from './api.js';
import { h, fill } from './dom.js';
import { showError } from './forms.js';
import * as live from './live.js';

const REASONS = {
  permission: 'Claude asks for permission',
  permission_prompt: 'Claude asks for permission',
  idle_prompt: 'Claude is waiting for your input',
  turn_finished: 'Claude finished its turn',
};

/// The panel for session `id`: `{element, stop()}`.
export function attentionPanel(id) {
  const element = h('section', { class: 'attention', id: 'attention', 'aria-live': 'polite', hidden: true });
  let stopped = false;

  const answer = async (request, decision, reason) => {
    try {
      await api.post(`sessions/${id}/permissions/${request.id}`,
        reason ? { decision, message: reason } : { decision });
    } catch (err) {
      showError(err);
    }
    await refresh();
  };

  // Refreshes overlap when events come close together: only the latest one draws, so an
  // older answer arriving last cannot put back a state the session has left.
  let latest = 0;
  const refresh = async () => {
    const mine = ++latest;
    let session;
    let requests;
    try {
      [session, requests] = await Promise.all([
        api.get(`sessions/${id}`), api.get(`sessions/${id}/permissions`)]);
    } catch (err) {
      showError(err);
      return;
    }
    if (stopped || mine !== latest) return;
    const pending = requests.find((r) => r.status === 'pending' && session.status === 'waiting_input');
    const parts = [];
    if (pending) {
      const reason = h('input', { type: 'text', name: 'reason', placeholder: 'Why not (optional)', maxlength: 1000 });
      parts.push(
        h('strong', {}, `Claude asks to use ${pending.tool_name}`),
        h('pre', { class: 'ask' }, pending.message),
        h('div', { class: 'row' },
          h('button', { class: 'primary', 'data-answer': 'allow', onclick: () => answer(pending, 'allow') }, 'Allow'),
          h('button', { class: 'danger', 'data-answer': 'deny', onclick: () => answer(pending, 'deny', reason.value.trim()) }, 'Deny'),
          reason));
    } else if (session.status === 'waiting_input') {
      parts.push(h('strong', {}, REASONS[session.waiting_reason] || 'Waiting for you'),
        session.waiting_message ? h('p', {}, session.waiting_message) : null);
    }
    if (session.stop_reason === 'budget') {
      parts.push(h('strong', { class: 'stopped' }, 'Stopped by ClaudeNest: its budget is spent'),
        h('p', { class: 'muted small' },
          `${session.total_tokens.toLocaleString()} tokens · $${session.total_cost.toFixed(4)}`));
    }
    element.hidden = parts.length === 0;
    fill(element, parts);
  };

  const watch = live.watch(`private-session.${id}`, {
    'session:status': refresh,
    'session:permission': refresh,
    'session:budget': refresh,
    'pusher:subscription_succeeded': refresh,
  });
  refresh();
  return {
    element,
    stop() {
      stopped = true;
      watch.stop();
    },
  };
}
