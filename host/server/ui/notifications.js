// Where you are told that a session needs you: your notification targets (webhook, Slack- or
// ntfy-shaped URLs) with the kinds of notice each wants, and what was sent to them.

import * as api from './api.js';
import { h, fill, when } from './dom.js';
import { showError, notice, submitter, field } from './forms.js';

const KINDS = [['webhook', 'Webhook (JSON)'], ['slack', 'Slack-compatible'], ['ntfy', 'ntfy topic']];
const EVENTS = [['permission', 'Permission asked'], ['waiting', 'Waiting for input'],
  ['turn_finished', 'Turn finished'], ['budget_warning', 'Budget at 80 %'], ['budget_stopped', 'Budget spent']];
const DEFAULT_EVENTS = ['permission', 'waiting', 'budget_warning', 'budget_stopped'];

export async function notifications() {
  const main = document.getElementById('main');
  document.title = 'Notifications · ClaudeNest';
  const list = h('div', {});
  const secret = h('div', {});
  const log = h('div', {});
  const refresh = async () => {
    const [targets, deliveries] = await Promise.all([
      api.get('notifications/targets'), api.get('notifications/deliveries?limit=50')]);
    const names = new Map(targets.map((t) => [t.id, t.name]));
    fill(list, targets.length === 0 ? h('p', { class: 'muted' }, 'No targets yet.') : h('table', {},
      h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', {}, 'Kind'), h('th', {}, 'URL'), h('th', {}, 'Notices'), h('th', {}))),
      h('tbody', {}, targets.map((t) => h('tr', { 'data-target': t.id },
        h('td', {}, t.name), h('td', {}, t.kind), h('td', { class: 'small path' }, t.url),
        h('td', { class: 'small' }, t.events.join(', '), t.include_terminal ? ' · quotes the terminal' : ''),
        h('td', {}, h('button', { class: 'danger', onclick: async () => {
          if (!confirm(`Remove ${t.name}?`)) return;
          try {
            await api.del(`notifications/targets/${t.id}`);
            refresh();
          } catch (err) {
            showError(err);
          }
        } }, 'Remove')))))));
    fill(log, h('h2', {}, 'Sent'), deliveries.length === 0 ? h('p', { class: 'muted' }, 'Nothing sent yet.') : h('table', {},
      h('thead', {}, h('tr', {}, h('th', {}, 'When'), h('th', {}, 'To'), h('th', {}, 'Notice'), h('th', {}, 'Status'), h('th', {}, 'Tries'), h('th', {}, 'Answer'))),
      h('tbody', {}, deliveries.map((d) => h('tr', { 'data-delivery': d.id },
        h('td', { class: 'small' }, when(d.created_at)), h('td', {}, names.get(d.target_id) || '—'), h('td', {}, d.event),
        h('td', {}, h('span', { class: `badge ${d.status}` }, d.status)), h('td', {}, String(d.attempts)),
        h('td', { class: 'small' }, d.error || (d.response_status ? String(d.response_status) : '')))))));
  };
  const create = submitter(h('form', { class: 'card', 'aria-label': 'New target' },
    h('h2', {}, 'New target'),
    h('div', { class: 'inline' },
      field('Name', h('input', { name: 'name', required: true, maxlength: 100 })),
      field('Kind', h('select', { name: 'kind' }, KINDS.map(([value, label]) => h('option', { value }, label)))),
      field('URL', h('input', { name: 'url', type: 'url', required: true, maxlength: 2048 }))),
    h('fieldset', { class: 'abilities' }, h('legend', {}, 'Tell me when'),
      EVENTS.map(([value, label]) => h('label', {},
        h('input', { type: 'checkbox', name: 'events', value, 'data-group': '1', checked: DEFAULT_EVENTS.includes(value) }), ` ${label}`))),
    h('fieldset', { class: 'abilities' }, h('legend', {}, 'Terminal'),
      h('label', {}, h('input', { type: 'checkbox', name: 'include_terminal' }), ' Quote the end of the terminal in notices')),
    h('button', { type: 'submit', class: 'primary' }, 'Add')),
  async ({ name, kind, url, events, include_terminal }) => {
    const made = await api.post('notifications/targets', { name, kind, url, events, include_terminal });
    fill(secret, h('div', { class: 'card' },
      h('p', {}, `${name} added. Its signing secret (requests carry X-ClaudeNest-Signature; copy it now, it is shown once):`),
      h('code', { class: 'secret', id: 'new-secret' }, made.secret)));
    notice(`${name} added.`);
    create.reset();
    refresh();
  });
  fill(main, h('h1', {}, 'Notifications'), create, secret, list, log);
  await refresh();
  const ticker = setInterval(() => refresh().catch(showError), 5000);
  return () => clearInterval(ticker);
}
