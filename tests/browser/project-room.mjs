// The project room in a real headless Chromium while two MCP clients (the official TypeScript
// SDK, from tests/mcp) act as two Claude Code instances through /mcp. Run by
// tests/tests/e2e/dashboard.rs with env: BASE_URL, TOKEN, PROJECT, DESIGN and BUILD (two tasks;
// BUILD depends on DESIGN), SHOTS; BENCH_TASKS, when set, only times the board (see below).
// Prints one line per step; exits 1 at the first failure.
import { check, env, story } from './common.mjs';
import { Client } from '../mcp/node_modules/@modelcontextprotocol/sdk/dist/esm/client/index.js';
import { StreamableHTTPClientTransport } from '../mcp/node_modules/@modelcontextprotocol/sdk/dist/esm/client/streamableHttp.js';

const BASE = env('BASE_URL');
const TOKEN = env('TOKEN');
const PROJECT = env('PROJECT');
/// Each move must show within this long of the call answering.
const LIVE_MS = 1000;

async function instance(name) {
  const transport = new StreamableHTTPClientTransport(new URL(`${BASE}/mcp`), {
    requestInit: {
      headers: {
        Authorization: `Bearer ${TOKEN}`,
        'X-ClaudeNest-Project': PROJECT,
        'X-ClaudeNest-Instance': name,
      },
    },
  });
  const client = new Client({ name: `claude-code-${name}`, version: '1.0.0' });
  await client.connect(transport);
  return {
    async call(tool, args) {
      const result = await client.callTool({ name: tool, arguments: args });
      check(!result.isError, `${name} ${tool} failed: ${JSON.stringify(result)}`);
      return result.structuredContent;
    },
    close: () => client.close(),
  };
}

await story(async (browser) => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
  await context.addInitScript((token) => localStorage.setItem('claudenest.token', token), TOKEN);
  const page = await context.newPage();
  const pageErrors = [];
  page.on('pageerror', (err) => pageErrors.push(err.message));
  // Confirmations are accepted; prompts take the answers queued for them, in order.
  const answers = [];
  page.on('dialog', (dialog) => {
    if (dialog.type() === 'prompt') dialog.accept(answers.length ? answers.shift() : dialog.defaultValue());
    else dialog.accept();
  });

  if (process.env.BENCH_TASKS) {
    // Benchmark mode: time until the board is drawn with every task, and how long a click on
    // it takes to answer (responsiveness), for the project as set up.
    const start = Date.now();
    await page.goto(`${BASE}/#/projects/${PROJECT}`);
    const want = Number(process.env.BENCH_TASKS);
    await page.waitForFunction((n) => document.querySelectorAll('[data-task]').length === n, want, { timeout: 120000 });
    const usable = Date.now() - start;
    const clickStart = Date.now();
    await page.locator('details summary').first().click();
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => r())));
    const click = Date.now() - clickStart;
    console.log(JSON.stringify({ tasks: want, locks: await page.locator('[data-lock]').count(), usable_ms: usable, click_ms: click }));
  } else {
    const DESIGN = env('DESIGN');
    const BUILD = env('BUILD');
    const SHOTS = env('SHOTS');
    await page.goto(`${BASE}/#/projects/${PROJECT}`);
    await page.locator(`[data-column=pending] [data-task="${DESIGN}"]`).waitFor();
    await page.locator(`[data-task="${DESIGN}"].next`).waitFor();
    check(!(await page.locator(`[data-task="${BUILD}"].next`).count()), 'the dependent task is marked next');
    console.log('ok: the board shows both tasks, the independent one marked next');
    // Wait until the page's socket is subscribed, so what follows is seen live.
    await page.waitForFunction((p) => {
      const live = window.claudenest.live.connection();
      const channel = live.channel(`private-project.${p}`);
      return channel && channel.subscribed;
    }, PROJECT);

    const alpha = await instance('alpha');
    const beta = await instance('beta');
    const within = async (what, locator) => {
      const t = Date.now();
      await locator.waitFor({ timeout: 10000 });
      const ms = Date.now() - t;
      check(ms <= LIVE_MS, `${what} took ${ms} ms to show`);
      console.log(`ok: ${what} showed in ${ms} ms`);
    };

    await alpha.call('claim_task', { task_id: DESIGN });
    await within('alpha\'s claim', page.locator(`[data-column=in_progress] [data-task="${DESIGN}"]`, { hasText: 'claimed by alpha' }));
    await alpha.call('acquire_lock', { path: 'src/**', reason: 'reshaping the tree', duration_minutes: 30 });
    await within('alpha\'s glob lock', page.locator('[data-lock="src/**"]', { hasText: 'alpha' }));
    await beta.call('add_context', { content: 'The API keeps its envelope; only handlers move.', type: 'decision', files: ['src/http'] });
    await within('beta\'s context', page.locator('[data-chunk]', { hasText: 'only handlers move' }));
    await beta.call('heartbeat', { status: 'busy', context_usage: 42 });
    await within('beta\'s heartbeat', page.locator('[data-instance=beta]', { hasText: 'context 42 %' }));

    // "Is this locked, by whom": the path box answers through the glob.
    await page.getByRole('textbox', { name: 'Path', exact: true }).fill('src/main.rs');
    await page.getByRole('button', { name: 'Check', exact: true }).click();
    await page.locator('#lock-answer', { hasText: 'locked by alpha (through src/**)' }).waitFor();
    const held = await beta.call('check_lock', { path: 'src/main.rs' });
    check(held.data.locked === true, `beta sees the lock: ${JSON.stringify(held)}`);
    await page.screenshot({ path: `${SHOTS}/project.png`, fullPage: true });

    // A person steps in: force-release, and the instance's next check sees it free.
    await page.locator('[data-lock="src/**"]').getByRole('button', { name: 'Force release' }).click();
    await page.locator('[data-lock="src/**"]').waitFor({ state: 'detached' });
    const free = await beta.call('check_lock', { path: 'src/main.rs' });
    check(free.data.locked === false, `after the force-release beta sees: ${JSON.stringify(free)}`);
    console.log('ok: a force-release on the page frees the path for the instances');

    await alpha.call('complete_task', { task_id: DESIGN, summary: 'Tree reshaped', files_modified: ['src/lib.rs'] });
    await within('the completion', page.locator(`[data-column=completed] [data-task="${DESIGN}"]`));
    await within('the dependent task becoming next', page.locator(`[data-task="${BUILD}"].next`));
    const next = await beta.call('next_task', {});
    check(next.data && next.data.id === BUILD, `the API agrees: ${JSON.stringify(next)}`);
    await page.locator('[data-activity=task_completed]').first().waitFor();
    console.log('ok: the activity feed lists the completion');

    // A person on the page: a cycle is refused with the API's message, a new task appears, a
    // broadcast reaches the instance it names, a search shows similarity and method.
    answers.push('Design the tree', BUILD);
    await page.locator(`[data-task="${DESIGN}"]`).getByRole('button', { name: 'Edit…' }).click();
    await page.getByRole('alert').filter({ hasText: 'would create a cycle' }).waitFor();
    console.log('ok: a dependency cycle is refused with the API\'s message');
    await page.getByLabel('Task title').fill('Polish the docs');
    await page.getByRole('button', { name: 'Add task', exact: true }).click();
    await page.locator('[data-column=pending] [data-task]', { hasText: 'Polish the docs' }).waitFor();
    const listed = await alpha.call('list_tasks', {});
    check(listed.data.some((t) => t.title === 'Polish the docs'), 'the new task is in the API');
    await page.getByRole('textbox', { name: 'Message', exact: true }).fill('Freeze src/http for an hour');
    await page.getByRole('textbox', { name: 'To', exact: true }).fill('beta');
    await page.getByRole('button', { name: 'Broadcast', exact: true }).click();
    await page.getByRole('status').filter({ hasText: 'Broadcast sent' }).waitFor();
    const inbox = await beta.call('read_broadcasts', {});
    check(JSON.stringify(inbox).includes('Freeze src/http'), `beta's broadcasts: ${JSON.stringify(inbox)}`);
    const elsewhere = await alpha.call('read_broadcasts', {});
    check(!JSON.stringify(elsewhere).includes('Freeze src/http'), 'alpha got a broadcast meant for beta');
    console.log('ok: a broadcast from the page reaches the instance it names, only it');
    await page.getByRole('textbox', { name: 'Search', exact: true }).fill('handlers move');
    await page.getByRole('button', { name: 'Search', exact: true }).click();
    await page.locator('#context', { hasText: 'similarity' }).waitFor();
    check(/results \((semantic|text|hybrid|[a-z_]+)\)/.test(await page.locator('#context').textContent()), 'the search method is shown');
    console.log('ok: a context search shows similarity and the method');
    await page.screenshot({ path: `${SHOTS}/project-after.png`, fullPage: true });
    await alpha.close();
    await beta.close();
  }
  check(pageErrors.length === 0, `errors in the page: ${pageErrors.join('; ')}`);
});
