// The dashboard: a hash router over the views (sign-in, fleet, machines, a machine, a session,
// tokens). Each view renders into #main and returns a cleanup function that stops its live
// subscriptions and timers when the person moves on.

import * as api from './api.js';
import { auth, ApiError, seg } from './api.js';
import { h, fill, duration, when } from './dom.js';
import { showError, notice, submitter, field } from './forms.js';
import * as live from './live.js';
import { attentionPanel } from './attention.js';
import { notifications } from './notifications.js';
import { project, projectsSection } from './projects.js';
import { SessionTerminal, KEYS } from './terminal.js';

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const alerts = document.getElementById('alerts');
let config = { pusher_app_key: 'claudenest', oauth_providers: [] };
let me = null;
let cleanup = () => {};

window.addEventListener('claudenest:error', (e) => showError(e.detail));
window.addEventListener('unhandledrejection', (e) => showError(e.reason));

// ---------------------------------------------------------------------------------------------
// Routing.

const routes = [
  [/^#\/sign-in$/, signIn, { public: true }],
  [/^#\/?$/, fleet],
  [/^#\/machines$/, machines],
  [/^#\/machines\/([0-9a-f-]{36})$/, machine],
  [/^#\/sessions\/([^/]+)$/, session],
  [/^#\/projects\/([0-9a-f-]{36})$/, project],
  [/^#\/tokens$/, tokens],
  [/^#\/notifications$/, notifications],
];

async function route() {
  cleanup();
  cleanup = () => {};
  fill(alerts);
  const hash = location.hash || '#/';
  const found = routes.find(([pattern]) => pattern.test(hash));
  if (!found) return notFound('No such page.');
  const [pattern, view, opts = {}] = found;
  if (!opts.public && !auth.token) {
    location.hash = '#/sign-in';
    return;
  }
  if (!opts.public && !me) {
    try {
      me = (await api.get('auth/me')).user;
    } catch (err) {
      if (err.status === 401) return void (location.hash = '#/sign-in');
      showError(err);
    }
  }
  renderNav();
  fill(main, h('p', { class: 'muted' }, 'Loading…'));
  try {
    const stop = await view(...hash.match(pattern).slice(1));
    if (typeof stop === 'function') cleanup = stop;
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) notFound(err.message);
    else {
      fill(main);
      showError(err);
    }
  }
}

function renderNav() {
  if (!auth.token) return fill(nav);
  const link = (href, text) =>
    h('a', { href, 'aria-current': location.hash === href ? 'page' : null }, text);
  fill(nav,
    link('#/', 'Fleet'), link('#/machines', 'Machines'), link('#/tokens', 'Tokens'),
    link('#/notifications', 'Notifications'),
    h('span', { class: 'spacer' }),
    h('span', { class: 'muted', id: 'me' }, me ? me.email : ''),
    h('button', { class: 'link', onclick: signOut }, 'Sign out'));
}

function notFound(message) {
  document.title = 'Not found · ClaudeNest';
  fill(main, h('section', { class: 'not-found' },
    h('h1', {}, 'Not found'),
    h('p', {}, message),
    h('p', {}, 'It may have been deleted, or it belongs to another account.'),
    h('a', { href: '#/' }, 'Back to the fleet')));
}

// ---------------------------------------------------------------------------------------------
// Sign-in and sign-out.

async function signIn() {
  document.title = 'Sign in · ClaudeNest';
  fill(nav);
  const form = submitter(h('form', { class: 'card narrow', 'aria-label': 'Sign in' },
    h('h1', {}, 'Sign in'),
    field('E-mail', h('input', { name: 'email', type: 'email', autocomplete: 'username', required: true })),
    field('Password', h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true })),
    h('button', { type: 'submit', class: 'primary' }, 'Sign in'),
    config.oauth_providers.length ? h('div', { class: 'oauth' },
      config.oauth_providers.map((p) => h('button', { type: 'button', onclick: () => oauthStart(p) },
        `Sign in with ${p[0].toUpperCase()}${p.slice(1)}`))) : null,
  ), async ({ email, password }) => {
    const signedIn = await api.post('auth/login', { email, password });
    auth.set(signedIn.token);
    me = signedIn.user;
    location.hash = '#/';
  });
  fill(main, form);
  form.querySelector('input').focus();
}

async function oauthStart(provider) {
  try {
    const { redirect_url } = await api.get(`auth/${seg(provider)}/redirect`);
    location.assign(redirect_url);
  } catch (err) {
    showError(err);
  }
}

/// Back from the provider at `?provider=…&code=…&state=…` (see `/oauth/{provider}`).
async function oauthFinish() {
  const params = new URLSearchParams(location.search);
  if (!params.get('provider') || !params.get('code')) return;
  history.replaceState(null, '', location.pathname + '#/');
  const query = new URLSearchParams({ code: params.get('code'), state: params.get('state') || '' });
  const signedIn = await api.get(`auth/${seg(params.get('provider'))}/callback?${query}`);
  auth.set(signedIn.token);
  me = signedIn.user;
}

async function signOut() {
  try {
    await api.post('auth/logout');
  } catch (err) {
    if (err.status !== 401) showError(err);
  }
  signedOut();
}

function signedOut() {
  auth.clear();
  me = null;
  live.disconnect();
  location.hash = '#/sign-in';
}
window.addEventListener('claudenest:signed-out', () => {
  me = null;
  live.disconnect();
  if (location.hash !== '#/sign-in') location.hash = '#/sign-in';
});

// ---------------------------------------------------------------------------------------------
// The fleet: every session on every machine, "needs you" first.

const GROUPS = [
  ['needs-you', 'Needs you', ['waiting_input']],
  ['running', 'Running', ['created', 'starting', 'running']],
  ['ended', 'Ended', ['completed', 'error', 'terminated']],
];

function sessionSeconds(s) {
  if (!s.started_at) return 0;
  const end = s.ended_at ? new Date(s.ended_at) : new Date();
  return (end - new Date(s.started_at)) / 1000;
}

async function fleet() {
  document.title = 'Fleet · ClaudeNest';
  const machineList = await api.get('machines?per_page=100');
  const sessions = new Map(); // machine id → sessions
  const byId = new Map(machineList.map((m) => [m.id, m]));
  const board = h('div', { class: 'fleet' });
  fill(main, h('h1', {}, 'Fleet'), board);

  const load = async (machineId) => {
    try {
      sessions.set(machineId, await api.get(`machines/${machineId}/sessions?per_page=100`));
    } catch (err) {
      showError(err);
    }
    render();
  };
  const render = () => {
    const all = [...sessions.values()].flat()
      .sort((a, b) => (b.started_at || b.created_at).localeCompare(a.started_at || a.created_at));
    fill(board, GROUPS.map(([key, title, statuses]) => {
      const group = all.filter((s) => statuses.includes(s.status));
      return h('section', { class: `group ${key}`, 'data-group': key },
        h('h2', {}, `${title} `, h('span', { class: 'count' }, String(group.length))),
        group.length === 0 ? h('p', { class: 'muted' }, key === 'needs-you' ? 'Nothing waits for you.' : 'None.') : null,
        group.map((s) => sessionCard(s, byId.get(s.machine_id))));
    }), machineList.length === 0
      ? h('p', {}, 'No machines yet. ', h('a', { href: '#/machines' }, 'Pair one'), ' to start.')
      : null);
  };
  await Promise.all(machineList.map((m) => load(m.id)));
  render();

  // After subscribing, read once more: what moved while the subscription was being made.
  const watches = machineList.map((m) => live.watch(`private-machine.${m.id}`, {
    'machine:status': (e) => {
      m.status = e.status;
      render();
    },
    'session:status': () => load(m.id),
    'pusher:subscription_succeeded': () => load(m.id),
  }));
  const ticker = setInterval(render, 10000);
  return () => {
    clearInterval(ticker);
    for (const w of watches) w.stop();
  };
}

function sessionCard(s, machine) {
  return h('a', { class: `card session-card status-${s.status}`, href: `#/sessions/${s.id}`, 'data-session': s.id },
    h('div', { class: 'row' },
      h('strong', {}, machine ? machine.name : 'machine'),
      h('span', { class: `badge ${s.status}` }, s.status.replace('_', ' '))),
    h('div', { class: 'path' }, s.project_path || '~'),
    s.status === 'waiting_input' && s.waiting_message ? h('div', { class: 'waiting' }, s.waiting_message) : null,
    s.stop_reason === 'budget' ? h('div', { class: 'waiting' }, 'Stopped: budget spent') : null,
    h('div', { class: 'muted small' },
      `${s.mode} · ${duration(sessionSeconds(s))} · ${s.total_tokens.toLocaleString()} tokens · $${s.total_cost.toFixed(2)}`));
}

// ---------------------------------------------------------------------------------------------
// Machines.

async function machines() {
  document.title = 'Machines · ClaudeNest';
  const list = await api.get('machines?per_page=100');
  const table = h('div', { class: 'machines' });
  const render = () => fill(table, list.length === 0 ? h('p', { class: 'muted' }, 'No machines yet.') : list.map((m) =>
    h('a', { class: 'card machine-card', href: `#/machines/${m.id}`, 'data-machine': m.id },
      h('div', { class: 'row' }, h('strong', {}, m.name), h('span', { class: `badge ${m.status}` }, m.status)),
      h('div', { class: 'muted small' }, [m.hostname, m.platform, m.arch].filter(Boolean).join(' · ')),
      h('div', { class: 'small' }, `${m.active_sessions_count}/${m.max_sessions} sessions`))));
  render();
  const watches = [];
  const watchMachine = (m) => watches.push(live.watch(`private-machine.${m.id}`, {
    'machine:status': (e) => {
      m.status = e.status;
      render();
    },
    // What moved while the subscription was being made (an agent linking right after pairing).
    'pusher:subscription_succeeded': async () => {
      try {
        Object.assign(m, await api.get(`machines/${m.id}`));
        render();
      } catch (err) {
        showError(err);
      }
    },
  }));
  list.forEach(watchMachine);

  const pair = submitter(h('form', { class: 'card', 'aria-label': 'Pair a machine' },
    h('h2', {}, 'Pair a machine'),
    h('p', { class: 'muted small' }, 'Run ', h('code', {}, 'claudenest-agent pair --server URL'),
      ' on the machine and type the code it shows.'),
    h('div', { class: 'inline' },
      field('Code', h('input', { name: 'code', required: true, autocomplete: 'off', spellcheck: 'false' })),
      field('Name (optional)', h('input', { name: 'name', autocomplete: 'off' })),
      h('button', { type: 'submit', class: 'primary' }, 'Pair')),
  ), async ({ code, name }) => {
    const paired = await api.post(`pairing/${seg(code.trim())}/complete`, name.trim() ? { name: name.trim() } : {});
    list.unshift(paired);
    watchMachine(paired);
    render();
    pair.reset();
    notice(`${paired.name} paired.`);
  });
  fill(main, h('h1', {}, 'Machines'), pair, table);
  return () => watches.forEach((w) => w.stop());
}

async function machine(id) {
  const m = await api.get(`machines/${id}`);
  document.title = `${m.name} · ClaudeNest`;
  const status = h('span', { class: `badge ${m.status}`, id: 'machine-status' }, m.status);
  const setStatus = (value) => {
    m.status = value;
    status.className = `badge ${value}`;
    status.textContent = value;
  };
  const environment = h('div', {});
  const showEnvironment = async () => {
    try {
      const env = await api.get(`machines/${id}/environment`);
      fill(environment, h('pre', { class: 'small' }, JSON.stringify(env, null, 2)));
    } catch (err) {
      fill(environment, h('p', { class: 'muted' }, err.message));
    }
  };
  const watch = live.watch(`private-machine.${id}`, {
    'machine:status': (e) => {
      setStatus(e.status);
      showEnvironment();
    },
    'pusher:subscription_succeeded': async () => {
      try {
        setStatus((await api.get(`machines/${id}`)).status);
      } catch (err) {
        showError(err);
      }
    },
  });

  const newSession = submitter(h('form', { class: 'card', 'aria-label': 'New session' },
    h('h2', {}, 'New session'),
    h('div', { class: 'inline' },
      field('Mode', h('select', { name: 'mode' },
        ['interactive', 'headless', 'oneshot'].map((mode) => h('option', { value: mode }, mode)))),
      field('Project path', h('input', { name: 'project_path', placeholder: '/home/you/project' }))),
    field('Prompt (optional)', h('textarea', { name: 'initial_prompt', rows: 2 })),
    h('button', { type: 'submit', class: 'primary' }, 'Start'),
  ), async ({ mode, project_path, initial_prompt }) => {
    const cols = Math.max(10, Math.min(1000, Math.floor((main.clientWidth - 24) / 8.4)));
    const rows = Math.max(2, Math.min(500, Math.floor((window.innerHeight - 200) / 17)));
    const created = await api.post(`machines/${id}/sessions`, {
      mode,
      project_path: project_path.trim() || null,
      initial_prompt: initial_prompt.trim() || null,
      pty_size: { cols, rows },
    });
    location.hash = `#/sessions/${created.session.id}`;
  });

  const actions = h('div', { class: 'actions' },
    h('button', { onclick: async () => {
      if (!confirm(`Regenerate ${m.name}'s token? Its agent must be given the new one.`)) return;
      try {
        const { token } = await api.post(`machines/${id}/regenerate-token`);
        fill(secret, h('p', {}, 'New machine token (shown once): '), h('code', { class: 'secret' }, token));
      } catch (err) {
        showError(err);
      }
    } }, 'Regenerate token'),
    h('button', { onclick: async () => {
      try {
        await api.post(`machines/${id}/wake`);
        notice('Wake-on-LAN packet sent.');
      } catch (err) {
        showError(err);
      }
    } }, 'Wake'));
  const secret = h('div', {});

  const skills = h('section', { class: 'card' }, h('h2', {}, 'Skills'));
  const mcp = h('section', { class: 'card' }, h('h2', {}, 'MCP servers'));
  const plugins = h('section', { class: 'card' }, h('h2', {}, 'Plugins'));
  const projects = h('section', { class: 'card' }, h('h2', {}, 'Projects'));

  fill(main,
    h('h1', {}, m.name, ' ', status),
    h('p', { class: 'muted' }, [m.hostname, m.platform, m.arch, m.agent_version && `agent ${m.agent_version}`,
      m.claude_version && `claude ${m.claude_version}`].filter(Boolean).join(' · ')),
    h('p', {}, 'Capabilities: ', m.capabilities.length ? m.capabilities.join(', ') : '—'),
    actions, secret, newSession,
    h('section', { class: 'card' }, h('h2', {}, 'Environment'), environment),
    projects, skills, mcp, plugins);
  showEnvironment();
  projectsSection(projects, id);
  renderSkills(skills, id);
  renderMcp(mcp, id);
  renderPlugins(plugins, id);
  return () => watch.stop();
}

async function renderSkills(section, machineId) {
  const list = h('div', {});
  const refresh = async () => {
    try {
      const skills = await api.get(`machines/${machineId}/skills?per_page=100`);
      fill(list, skills.length === 0 ? h('p', { class: 'muted' }, 'No skills.') : skills.map((s) => {
        const editor = h('div', {});
        return h('div', { class: 'item' },
          h('div', { class: 'row' },
            h('span', {}, h('strong', {}, s.name), ' ', h('code', { class: 'small' }, s.path)),
            h('span', {},
              h('button', { onclick: async () => {
                try {
                  await api.post(`machines/${machineId}/skills/${seg(s.path)}/toggle`);
                  refresh();
                } catch (err) {
                  showError(err);
                }
              } }, s.enabled ? 'Disable' : 'Enable'),
              h('button', { onclick: async () => {
                try {
                  const full = await api.get(`machines/${machineId}/skills/${seg(s.path)}`);
                  fill(editor, submitter(h('form', {},
                    h('textarea', { name: 'content', rows: 10, class: 'code' }, full.content),
                    h('button', { type: 'submit' }, 'Save')),
                  async ({ content }) => {
                    await api.patch(`machines/${machineId}/skills/${seg(s.path)}`, { content });
                    notice('Skill saved.');
                    fill(editor);
                  }));
                } catch (err) {
                  showError(err);
                }
              } }, 'Edit'))),
          h('div', { class: 'muted small' }, s.description, s.enabled ? '' : ' (disabled)'),
          editor);
      }));
    } catch (err) {
      fill(list, h('p', { class: 'muted' }, err.message));
    }
  };
  section.append(list);
  await refresh();
}

async function renderMcp(section, machineId) {
  const list = h('div', {});
  const refresh = async () => {
    try {
      const servers = await api.get(`machines/${machineId}/mcp`);
      fill(list, servers.length === 0 ? h('p', { class: 'muted' }, 'No MCP servers.') : servers.map((s) => {
        const tools = h('div', {});
        const act = (verb) => async () => {
          try {
            await api.post(`machines/${machineId}/mcp/${seg(s.name)}/${verb}`);
            refresh();
          } catch (err) {
            showError(err);
          }
        };
        return h('div', { class: 'item' },
          h('div', { class: 'row' },
            h('span', {}, h('strong', {}, s.display_name || s.name), ' ', h('span', { class: `badge ${s.status}` }, s.status)),
            h('span', {},
              s.status === 'running' ? h('button', { onclick: act('stop') }, 'Stop') : h('button', { onclick: act('start') }, 'Start'),
              h('button', { onclick: () => showTools(tools, machineId, s.name) }, `Tools (${s.tools_count})`))),
          tools);
      }));
    } catch (err) {
      fill(list, h('p', { class: 'muted' }, err.message));
    }
  };
  section.append(list);
  await refresh();
}

async function showTools(target, machineId, server) {
  try {
    const tools = await api.get(`machines/${machineId}/mcp/${seg(server)}/tools`);
    const output = h('pre', { class: 'small' });
    fill(target, submitter(h('form', {},
      field('Tool', h('select', { name: 'tool' }, tools.map((t) => h('option', { value: t.name, title: t.description || '' }, t.name)))),
      field('Arguments (JSON)', h('textarea', { name: 'parameters', rows: 3, class: 'code' }, '{}')),
      h('button', { type: 'submit' }, 'Run')),
    async ({ tool, parameters }) => {
      let args;
      try {
        args = JSON.parse(parameters || '{}');
      } catch (err) {
        throw new ApiError(422, 'VAL_001', 'The arguments are not JSON.', { parameters: [err.message] });
      }
      const result = await api.post(`machines/${machineId}/mcp/${seg(server)}/execute`, { tool, parameters: args });
      output.textContent = JSON.stringify(result, null, 2);
    }), output);
  } catch (err) {
    showError(err);
  }
}

async function renderPlugins(section, machineId) {
  const list = h('div', {});
  const refresh = async () => {
    try {
      const [installed, enabled] = await Promise.all([
        api.get('plugins?per_page=100'),
        api.get(`machines/${machineId}/plugins`),
      ]);
      const on = new Map(enabled.map((e) => [e.plugin.name, e]));
      fill(list, installed.length === 0 ? h('p', { class: 'muted' }, 'No plugins installed (upload with POST /api/plugins).') : installed.map((p) => {
        const current = on.get(p.name);
        const form = submitter(h('form', { class: 'plugin-form' },
          field('Config (JSON object)', h('textarea', { name: 'config', rows: 2, class: 'code' },
            JSON.stringify(current ? current.config : {}))),
          field('Grants (JSON: {"filesystem": [...], "http": [...]})', h('textarea', { name: 'grants', rows: 2, class: 'code' },
            JSON.stringify(current ? current.grants : { filesystem: [], http: [] }))),
          h('button', { type: 'submit' }, current ? 'Update' : 'Enable')),
        async ({ config: cfg, grants }) => {
          const parse = (text, name) => {
            try {
              return JSON.parse(text || '{}');
            } catch (err) {
              throw new ApiError(422, 'VAL_001', `The ${name} is not JSON.`, { [name]: [err.message] });
            }
          };
          await api.put(`machines/${machineId}/plugins/${seg(p.name)}`, { config: parse(cfg, 'config'), grants: parse(grants, 'grants') });
          notice(`${p.name} enabled.`);
          refresh();
        });
        return h('div', { class: 'item' },
          h('div', { class: 'row' },
            h('span', {}, h('strong', {}, p.name), ` ${p.version} · ${p.world}`),
            current ? h('button', { onclick: async () => {
              try {
                await api.del(`machines/${machineId}/plugins/${seg(p.name)}`);
                refresh();
              } catch (err) {
                showError(err);
              }
            } }, 'Disable') : null),
          h('div', { class: 'muted small' }, p.description),
          form);
      }));
    } catch (err) {
      fill(list, h('p', { class: 'muted' }, err.message));
    }
  };
  section.append(list);
  await refresh();
}

// ---------------------------------------------------------------------------------------------
// A session: its terminal.

async function session(id) {
  let attached;
  try {
    attached = await api.post(`sessions/${seg(id)}/attach`);
  } catch (err) {
    if (err.status === 404 || err.status === 422) {
      document.title = 'Session not found · ClaudeNest';
      fill(main, h('section', { class: 'not-found' },
        h('h1', {}, 'Session not found'),
        h('p', {}, 'There is no session with this id in your account.'),
        h('a', { href: '#/' }, 'Back to the fleet')));
      return undefined;
    }
    throw err;
  }
  const s = attached.session;
  document.title = `Session · ClaudeNest`;
  const status = h('span', { class: `badge ${s.status}`, id: 'session-status' }, s.status);
  const ended = ['completed', 'error', 'terminated'];
  const screen = h('div', { class: 'terminal', id: 'terminal' });
  const ctrl = h('button', { 'aria-pressed': 'false' }, 'Ctrl');
  const keybar = h('div', { class: 'keybar', role: 'toolbar', 'aria-label': 'Keys' },
    ctrl, KEYS.map(([label, sequence]) => h('button', { onclick: () => terminal.key(sequence) }, label)));
  const endButton = h('button', { class: 'danger', onclick: async () => {
    if (!confirm('End this session? The process on the machine is stopped.')) return;
    try {
      await api.post(`sessions/${s.id}/terminate`);
    } catch (err) {
      showError(err);
    }
  } }, 'End session');
  const setStatus = (value, exitCode) => {
    status.className = `badge ${value}`;
    status.textContent = exitCode === null || exitCode === undefined ? value : `${value} (exit ${exitCode})`;
    if (ended.includes(value)) {
      terminal.end();
      endButton.disabled = true;
      keybar.hidden = true;
    }
  };
  const attention = attentionPanel(s.id);
  fill(main,
    h('div', { class: 'session-head' },
      h('a', { href: `#/machines/${s.machine_id}` }, '← machine'),
      h('span', { class: 'path' }, s.project_path || '~'),
      h('span', { class: 'muted small' }, `${s.mode}`),
      status, h('span', { class: 'spacer' }), endButton),
    attention.element, screen, keybar);
  const terminal = new SessionTerminal(screen, s, { onStatus: (e) => setStatus(e.status, e.exit_code) });
  window.claudenestTerminal = terminal; // for the browser tests and the curious
  ctrl.addEventListener('click', () => {
    terminal.setCtrl(!terminal.ctrlNext);
    terminal.term.focus();
  });
  const onCtrl = (e) => ctrl.setAttribute('aria-pressed', String(e.detail));
  document.addEventListener('claudenest:ctrl', onCtrl);
  if (ended.includes(s.status)) setStatus(s.status, s.exit_code);
  await terminal.start(attached.snapshot);
  terminal.term.focus();
  return () => {
    attention.stop();
    document.removeEventListener('claudenest:ctrl', onCtrl);
    terminal.dispose();
    if (window.claudenestTerminal === terminal) window.claudenestTerminal = null;
  };
}

// ---------------------------------------------------------------------------------------------
// Personal tokens.

const ABILITIES = ['*', 'tokens:read', 'tokens:write', 'machines:read', 'machines:write', 'sessions:read',
  'sessions:write', 'projects:read', 'projects:write', 'tasks:read', 'tasks:write', 'context:read',
  'context:write', 'skills:read', 'skills:write', 'mcp:read', 'mcp:write', 'plugins:read', 'plugins:write',
  'notifications:read', 'notifications:write'];

async function tokens() {
  document.title = 'Tokens · ClaudeNest';
  const list = h('div', {});
  const secret = h('div', {});
  const refresh = async () => {
    const all = await api.get('auth/tokens?per_page=100');
    fill(list, h('table', {},
      h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', {}, 'Abilities'), h('th', {}, 'Last used'),
        h('th', {}, 'Expires'), h('th', {}))),
      h('tbody', {}, all.map((t) => h('tr', { 'data-token': t.id, class: t.is_active ? null : 'inactive' },
        h('td', {}, t.name), h('td', { class: 'small' }, t.abilities.join(', ')), h('td', { class: 'small' }, when(t.last_used_at)),
        h('td', { class: 'small' }, t.expires_at ? when(t.expires_at) : 'never'),
        h('td', {}, !t.is_active ? h('span', { class: 'muted small' }, 'revoked or expired') : h('button', { class: 'danger', onclick: async () => {
          if (!confirm(`Revoke ${t.name}? Whatever uses it stops working.`)) return;
          try {
            await api.del(`auth/tokens/${t.id}`);
            notice(`${t.name} revoked.`);
            refresh();
          } catch (err) {
            showError(err);
          }
        } }, 'Revoke')))))));
  };
  const create = submitter(h('form', { class: 'card', 'aria-label': 'New token' },
    h('h2', {}, 'New token'),
    h('div', { class: 'inline' },
      field('Name', h('input', { name: 'name', required: true })),
      field('Expires in days (optional)', h('input', { name: 'expires_in_days', type: 'number', min: 1, max: 3650 }))),
    h('fieldset', { class: 'abilities' }, h('legend', {}, 'Abilities'),
      ABILITIES.map((a) => h('label', {}, h('input', { type: 'checkbox', name: 'abilities', value: a, 'data-group': '1' }), ` ${a}`))),
    h('button', { type: 'submit', class: 'primary' }, 'Create')),
  async ({ name, expires_in_days, abilities }) => {
    const body = { name };
    if (abilities.length) body.abilities = abilities;
    if (expires_in_days) body.expires_in_days = Number(expires_in_days);
    const made = await api.post('auth/tokens', body);
    fill(secret, h('div', { class: 'card' }, h('p', {}, `Token ${name} (copy it now, it is shown once):`),
      h('code', { class: 'secret', id: 'new-token' }, made.token)));
    create.reset();
    refresh();
  });
  fill(main, h('h1', {}, 'Tokens'), create, secret, list);
  await refresh();
}

// ---------------------------------------------------------------------------------------------

// The browser tests reach the live connection through this (to drop and restore the socket).
window.claudenest = { live };

async function boot() {
  try {
    config = await api.get('client-config');
  } catch (err) {
    showError(err);
  }
  live.configure(config.pusher_app_key);
  try {
    await oauthFinish();
  } catch (err) {
    showError(err);
  }
  window.addEventListener('hashchange', route);
  await route();
}

boot();
