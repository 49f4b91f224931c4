// A project's room: the task board, file locks, instances, shared context and activity, all
// live on `private-project.{id}`. Every event refreshes the part it touches (debounced, so a
// burst of moves costs one read per part).

import * as api from './api.js';
import { h, fill, duration, when } from './dom.js';
import * as live from './live.js';
import { showError, notice, submitter, field } from './forms.js';

const COLUMNS = [
  ['pending', 'Pending'],
  ['in_progress', 'In progress'],
  ['completed', 'Completed'],
];

/// Which parts an event touches.
const TOUCHES = {
  task: ['tasks', 'stats', 'activity', 'instances'],
  file: ['locks', 'stats', 'activity'],
  instance: ['instances', 'tasks', 'locks', 'activity', 'stats'],
  project: ['stats', 'context', 'activity'],
  context: ['context', 'stats', 'activity'],
};

/// The projects section of a machine's page: list and create.
export async function projectsSection(section, machineId) {
  const list = h('div', {});
  const refresh = async () => {
    try {
      const projects = await api.get(`machines/${machineId}/projects?per_page=100`);
      fill(list, projects.length === 0 ? h('p', { class: 'muted' }, 'No projects.') : projects.map((p) =>
        h('a', { class: 'item row', href: `#/projects/${p.id}`, 'data-project': p.id },
          h('span', {}, h('strong', {}, p.name), ' ', h('code', { class: 'small' }, p.project_path)),
          h('span', { class: 'muted small' }, `${p.active_instances_count} instances · context ${Math.round(p.token_usage_percent)} %`))));
    } catch (err) {
      fill(list, h('p', { class: 'muted' }, err.message));
    }
  };
  const create = submitter(h('form', { 'aria-label': 'New project' },
    h('div', { class: 'inline' },
      field('Project name', h('input', { name: 'name', required: true })),
      field('Project path', h('input', { name: 'project_path', required: true, placeholder: '/home/you/project' })),
      h('button', { type: 'submit' }, 'Create project'))),
  async ({ name, project_path }) => {
    const made = await api.post(`machines/${machineId}/projects`, { name, project_path });
    location.hash = `#/projects/${made.id}`;
  });
  section.append(create, list);
  await refresh();
}

export async function project(id) {
  const main = document.getElementById('main');
  const p = await api.get(`projects/${id}`);
  document.title = `${p.name} · ClaudeNest`;
  const state = { project: p, tasks: [], instances: [], next: null };
  const parts = {
    stats: h('div', { class: 'stats', id: 'stats' }),
    tasks: h('div', { class: 'board', id: 'board' }),
    locks: h('div', { id: 'locks' }),
    instances: h('div', { id: 'instances' }),
    context: h('div', { id: 'context' }),
    activity: h('ol', { class: 'activity', id: 'activity' }),
  };
  const loaders = {
    stats: () => loadStats(parts.stats, state),
    tasks: () => loadTasks(parts.tasks, state),
    locks: () => loadLocks(parts.locks, state),
    instances: () => loadInstances(parts.instances, state),
    context: () => loadContext(parts.context, state),
    activity: () => loadActivity(parts.activity, state),
  };
  const due = new Set();
  let timer = null;
  const touch = (names) => {
    names.forEach((n) => due.add(n));
    if (timer) return;
    timer = setTimeout(async () => {
      timer = null;
      const now = [...due];
      due.clear();
      await Promise.all(now.map((n) => loaders[n]().catch(showError)));
    }, 150);
  };

  fill(main,
    h('div', { class: 'session-head' },
      h('a', { href: `#/machines/${p.machine_id}` }, '← machine'),
      h('h1', {}, p.name), h('code', { class: 'small' }, p.project_path)),
    parts.stats,
    settingsForm(state, () => touch(['stats', 'context'])),
    h('section', { class: 'card' }, h('h2', {}, 'Tasks'), newTaskForm(state, () => touch(['tasks'])), parts.tasks),
    h('div', { class: 'columns' },
      h('section', { class: 'card' }, h('h2', {}, 'File locks'), lockCheck(state), parts.locks),
      h('section', { class: 'card' }, h('h2', {}, 'Instances'), broadcastForm(state), parts.instances)),
    h('section', { class: 'card' }, h('h2', {}, 'Context'), parts.context),
    h('section', { class: 'card' }, h('h2', {}, 'Activity'), parts.activity));

  await Promise.all(Object.values(loaders).map((load) => load().catch(showError)));
  const watch = live.watch(`private-project.${id}`, {
    ...Object.fromEntries(['created', 'updated', 'deleted', 'claimed', 'released', 'completed']
      .map((e) => [`task:${e}`, () => touch(TOUCHES.task)])),
    'file:locked': () => touch(TOUCHES.file),
    'file:unlocked': () => touch(TOUCHES.file),
    'instance:disconnected': () => touch(TOUCHES.instance),
    'instance:heartbeat': () => touch(['instances']),
    'project:updated': () => touch(TOUCHES.project),
    'project:broadcast': (e) => {
      touch(['activity']);
      notice(`Broadcast: ${e.content || JSON.stringify(e)}`);
    },
    'context:added': () => touch(TOUCHES.context),
    'context:deleted': () => touch(TOUCHES.context),
    'pusher:subscription_succeeded': () => touch(Object.keys(loaders)),
  });
  // Lock expiries and heartbeat ages count down between reads.
  const ticker = setInterval(() => {
    for (const el of document.querySelectorAll('[data-expires]')) {
      const left = (new Date(el.dataset.expires) - Date.now()) / 1000;
      el.textContent = left > 0 ? `expires in ${duration(left)}` : 'expired';
    }
    for (const el of document.querySelectorAll('[data-seen]')) {
      el.textContent = `heartbeat ${duration((Date.now() - new Date(el.dataset.seen)) / 1000)} ago`;
    }
  }, 1000);
  return () => {
    clearInterval(ticker);
    clearTimeout(timer);
    watch.stop();
  };
}

async function loadStats(el, state) {
  const s = await api.get(`projects/${state.project.id}/stats`);
  const percent = Math.min(100, s.token_usage_percent);
  fill(el,
    h('div', { class: 'row small' },
      h('span', {}, `${s.total_tasks} tasks: ${s.pending_tasks} pending, ${s.in_progress_tasks} in progress, ${s.completed_tasks} completed`),
      h('span', {}, `${s.active_instances} instances · ${s.active_locks} locks`)),
    h('div', { class: 'budget', title: `${s.total_tokens} of ${s.max_tokens} tokens` },
      h('div', { class: `budget-fill${percent >= 90 ? ' over' : ''}`, style: `width: ${percent}%` })),
    h('div', { class: 'muted small' }, `context ${s.total_tokens.toLocaleString()} / ${s.max_tokens.toLocaleString()} tokens (${s.token_usage_percent.toFixed(1)} %)`));
}

function settingsForm(state, changed) {
  const s = state.project.settings || {};
  return submitter(h('form', { class: 'card inline', 'aria-label': 'Project settings' },
    field('Max context tokens', h('input', { name: 'maxContextTokens', type: 'number', value: s.maxContextTokens })),
    field('Task timeout (minutes)', h('input', { name: 'taskTimeoutMinutes', type: 'number', value: s.taskTimeoutMinutes })),
    field('Lock timeout (minutes)', h('input', { name: 'lockTimeoutMinutes', type: 'number', value: s.lockTimeoutMinutes })),
    h('button', { type: 'submit' }, 'Save settings')),
  async (values) => {
    const settings = Object.fromEntries(Object.entries(values).map(([k, v]) => [k, Number(v)]));
    state.project = await api.patch(`projects/${state.project.id}`, { settings });
    notice('Settings saved.');
    changed();
  });
}

async function loadTasks(el, state) {
  const all = [];
  for (let page = 1; ; page++) {
    const reply = await api.get(`projects/${state.project.id}/tasks?per_page=100&page=${page}`, { full: true });
    all.push(...reply.data);
    if (page >= reply.meta.pagination.last_page) break;
  }
  state.tasks = all;
  const next = await api.get(`projects/${state.project.id}/tasks/next-available`);
  state.next = next ? next.id : null;
  const byId = new Map(all.map((t) => [t.id, t]));
  const waitingOn = (t) => t.dependencies.map((d) => byId.get(d)).filter(Boolean);
  fill(el, COLUMNS.map(([status, title]) => {
    const tasks = all.filter((t) => t.status === status);
    return h('div', { class: 'column', 'data-column': status },
      h('h3', {}, `${title} `, h('span', { class: 'count' }, String(tasks.length))),
      tasks.map((t) => taskCard(t, state, waitingOn(t))));
  }));
}

function taskCard(t, state, deps) {
  const unfinished = deps.filter((d) => d.status !== 'completed');
  const actions = h('div', { class: 'task-actions' });
  const act = (label, fn) => h('button', { onclick: async () => {
    try {
      await fn();
    } catch (err) {
      showError(err);
    }
  } }, label);
  if (t.status === 'pending') {
    actions.append(act('Claim…', async () => {
      const instance = prompt('Claim for which instance id?');
      if (instance) await api.post(`tasks/${t.id}/claim`, { instance_id: instance });
    }));
  }
  if (t.status === 'in_progress') {
    actions.append(act('Release', () => api.post(`tasks/${t.id}/release`, { reason: 'released from the dashboard' })),
      act('Complete…', async () => {
        const summary = prompt('Summary of what was done?');
        if (summary) await api.post(`tasks/${t.id}/complete`, { summary, instance_id: t.assigned_to });
      }));
  }
  actions.append(act('Edit…', async () => {
    const title = prompt('Title', t.title);
    if (title === null) return;
    const dependencies = prompt('Depends on (task ids, comma separated)', t.dependencies.join(', '));
    if (dependencies === null) return;
    await api.patch(`tasks/${t.id}`, {
      title,
      dependencies: dependencies.split(',').map((x) => x.trim()).filter(Boolean),
    });
  }));
  return h('div', {
    class: `card task priority-${t.priority}${state.next === t.id ? ' next' : ''}${unfinished.length ? ' blocked' : ''}`,
    'data-task': t.id,
  },
    h('div', { class: 'row' }, h('strong', {}, t.title), h('span', { class: `badge` }, t.priority)),
    state.next === t.id ? h('div', { class: 'next-label small' }, 'next available') : null,
    t.assigned_to ? h('div', { class: 'small' }, `claimed by ${t.assigned_to}`, t.claimed_at ? ` since ${when(t.claimed_at)}` : '') : null,
    deps.length ? h('div', { class: 'small deps' }, 'waits on: ',
      deps.map((d) => h('a', { href: `#task-${d.id}`, class: d.status === 'completed' ? 'done' : 'open', onclick: (e) => {
        e.preventDefault();
        const target = document.querySelector(`[data-task="${d.id}"]`);
        if (target) target.scrollIntoView({ block: 'center' });
      } }, d.title))) : null,
    t.files.length ? h('div', { class: 'small muted' }, t.files.join(', ')) : null,
    actions);
}

function newTaskForm(state, changed) {
  return submitter(h('form', { 'aria-label': 'New task', class: 'inline' },
    field('Task title', h('input', { name: 'title', required: true })),
    field('Priority', h('select', { name: 'priority' }, ['low', 'medium', 'high', 'critical'].map((p) =>
      h('option', { value: p, selected: p === 'medium' }, p)))),
    field('Depends on (task ids)', h('input', { name: 'dependencies' })),
    h('button', { type: 'submit' }, 'Add task')),
  async ({ title, priority, dependencies }) => {
    await api.post(`projects/${state.project.id}/tasks`, {
      title,
      priority,
      dependencies: dependencies.split(',').map((x) => x.trim()).filter(Boolean),
    });
    changed();
  });
}

async function loadLocks(el, state) {
  const locks = await api.get(`projects/${state.project.id}/locks`);
  fill(el, locks.length === 0 ? h('p', { class: 'muted' }, 'No locks.') : h('table', {},
    h('tbody', {}, locks.map((l) => h('tr', { 'data-lock': l.path },
      h('td', {}, h('code', {}, l.path)),
      h('td', { class: 'small' }, l.locked_by, l.reason ? ` — ${l.reason}` : ''),
      h('td', { class: 'small', 'data-expires': l.expires_at }, `expires in ${duration(l.remaining_seconds)}`),
      h('td', {}, h('button', { class: 'danger', onclick: async () => {
        if (!confirm(`Force-release ${l.path}, held by ${l.locked_by}?`)) return;
        try {
          await api.post(`projects/${state.project.id}/locks/force-release`, { path: l.path });
        } catch (err) {
          showError(err);
        }
      } }, 'Force release')))))));
}

function lockCheck(state) {
  const answer = h('span', { class: 'small', id: 'lock-answer' });
  return submitter(h('form', { class: 'inline', 'aria-label': 'Is this path locked?' },
    field('Path', h('input', { name: 'path', required: true, placeholder: 'src/auth/login.rs' })),
    h('button', { type: 'submit' }, 'Check'), answer),
  async ({ path }) => {
    const c = await api.post(`projects/${state.project.id}/locks/check`, { path });
    answer.textContent = c.locked
      ? `locked by ${c.locked_by}${c.lock_path !== path ? ` (through ${c.lock_path})` : ''}${c.reason ? `: ${c.reason}` : ''}`
      : 'free';
  });
}

async function loadInstances(el, state) {
  const instances = await api.get(`projects/${state.project.id}/instances`);
  state.instances = instances;
  const title = (id) => (state.tasks.find((t) => t.id === id) || {}).title || id;
  const staleAfter = 5 * 60;
  fill(el, instances.length === 0 ? h('p', { class: 'muted' }, 'No instances.') : instances.map((i) => {
    const age = (Date.now() - new Date(i.last_seen_at)) / 1000;
    return h('div', { class: `item${age > staleAfter ? ' stale' : ''}`, 'data-instance': i.id },
      h('div', { class: 'row' }, h('strong', {}, i.id), h('span', { class: `badge ${i.status}` }, age > staleAfter ? `${i.status}, stale` : i.status)),
      h('div', { class: 'small' }, i.current_task_id ? `working on ${title(i.current_task_id)}` : 'no task',
        ` · context ${Math.round(i.context_usage)} % · ${i.tasks_completed} done`),
      h('div', { class: 'small muted', 'data-seen': i.last_seen_at }, `heartbeat ${duration(age)} ago`));
  }));
}

function broadcastForm(state) {
  return submitter(h('form', { class: 'inline', 'aria-label': 'Broadcast' },
    field('Message', h('input', { name: 'content', required: true })),
    field('To', h('input', { name: 'target', placeholder: 'all, or instance ids' })),
    h('button', { type: 'submit' }, 'Broadcast')),
  async ({ content, target }) => {
    const ids = target.split(',').map((x) => x.trim()).filter(Boolean);
    await api.post(`projects/${state.project.id}/broadcast`, {
      type: 'announcement',
      content,
      target: ids.length === 0 || (ids.length === 1 && ids[0] === 'all') ? 'all' : ids,
    });
    notice('Broadcast sent.');
  });
}

async function loadContext(el, state) {
  const id = state.project.id;
  const [context, chunks] = await Promise.all([
    api.get(`projects/${id}/context`),
    api.get(`projects/${id}/context/chunks?per_page=100`),
  ]);
  const u = context.token_usage;
  const results = h('div', {});
  const filter = h('input', { placeholder: 'filter by type, instance or file', 'aria-label': 'Filter chunks' });
  const list = h('div', {});
  const showChunks = () => {
    const q = filter.value.trim().toLowerCase();
    const shown = chunks.filter((c) => !q || c.type.includes(q) || (c.instance_id || '').toLowerCase().includes(q)
      || c.files.some((f) => f.toLowerCase().includes(q)));
    fill(list, shown.map((c) => h('div', { class: 'item', 'data-chunk': c.id },
      h('div', { class: 'row small' },
        h('span', {}, h('span', { class: 'badge' }, c.type), ' ', c.instance_id || '', ' ', c.files.join(', ')),
        h('button', { class: 'danger', onclick: async () => {
          if (!confirm('Delete this chunk?')) return;
          try {
            await api.del(`projects/${id}/context/chunks/${c.id}`);
          } catch (err) {
            showError(err);
          }
        } }, 'Delete')),
      h('div', { class: 'chunk' }, c.content))));
  };
  filter.addEventListener('input', showChunks);
  fill(el,
    h('div', { class: 'budget', title: `${u.total} of ${u.max} tokens` },
      h('div', { class: `budget-fill${u.percent >= 90 ? ' over' : ''}`, style: `width: ${Math.min(100, u.percent)}%` })),
    h('details', {}, h('summary', {}, `Compiled context (${u.total.toLocaleString()} / ${u.max.toLocaleString()} tokens)`),
      h('pre', { class: 'small' }, context.compiled_context)),
    submitter(h('form', { class: 'inline', 'aria-label': 'Search context' },
      field('Search', h('input', { name: 'query', required: true })),
      h('button', { type: 'submit' }, 'Search'),
      h('button', { type: 'button', onclick: async () => {
        try {
          const s = await api.post(`projects/${id}/context/summarize`, {});
          fill(results, h('p', { class: 'small' }, `Summary by ${s.summarizer} (${s.chunks_processed} chunks):`), h('pre', { class: 'small' }, s.summary));
        } catch (err) {
          showError(err);
        }
      } }, 'Summarize')),
    async ({ query }) => {
      const r = await api.post(`projects/${id}/context/query`, { query });
      fill(results, h('p', { class: 'small muted' }, `${r.total_results} results (${r.search_method})`),
        r.results.map((hit) => h('div', { class: 'item' },
          h('div', { class: 'small' }, h('span', { class: 'badge' }, hit.type), ` similarity ${hit.similarity.toFixed(3)}`),
          h('div', { class: 'chunk' }, hit.content))));
    }),
    results, filter, list);
  showChunks();
}

async function loadActivity(el, state) {
  const entries = await api.get(`projects/${state.project.id}/activity?limit=50`);
  fill(el, entries.map((a) => h('li', { 'data-activity': a.type },
    h('span', { class: 'muted small' }, new Date(a.created_at).toLocaleTimeString()), ' ',
    h('strong', {}, a.type.replace(/_/g, ' ')), ' ', a.instance_id || '', ' ',
    h('span', { class: 'small' }, a.details.task_title || a.details.path || a.details.content || ''))));
}

