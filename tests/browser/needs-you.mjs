// "Needs you" in a real headless Chromium: a session whose Claude Code (the hook-calling
// stand-in) asks for permission shows why it waits, with Allow and Deny; the answers reach the
// waiting dialog; the fleet says what each session waits for. Run by
// tests/tests/e2e/dashboard.rs with env: BASE_URL, TOKEN, SESSION, NTFY_URL (a receiver the
// operator allowed), SHOTS. The notifications page adds an ntfy target first and shows what
// was sent to it at the end.
// Prints one line per step; exits 1 at the first failure.
import { check, env, story, waitForTerminal } from './common.mjs';

const BASE = env('BASE_URL');
const TOKEN = env('TOKEN');
const SESSION = env('SESSION');
const NTFY_URL = env('NTFY_URL');
const SHOTS = env('SHOTS');

function step(text) {
  console.log(`ok: ${text}`);
}

await story(async (browser) => {
  const context = await browser.newContext({ viewport: { width: 1100, height: 800 } });
  await context.addInitScript((token) => localStorage.setItem('claudenest.token', token), TOKEN);
  const page = await context.newPage();
  const pageErrors = [];
  page.on('pageerror', (err) => pageErrors.push(err.message));

  await page.goto(`${BASE}/#/notifications`);
  const form = page.getByRole('form', { name: 'New target' });
  await form.getByLabel('Name').fill('phone');
  await form.getByLabel('Kind').selectOption('ntfy');
  await form.getByLabel('URL').fill(NTFY_URL);
  await form.getByRole('button', { name: 'Add' }).click();
  const secret = await page.locator('#new-secret').innerText();
  check(secret.startsWith('whsec_'), `the signing secret is shown once: ${secret}`);
  await page.locator('[data-target]').filter({ hasText: 'phone' }).waitFor();
  step('an ntfy target is added on the notifications page, its secret shown once');

  await page.goto(`${BASE}/#/sessions/${SESSION}`);
  await waitForTerminal(page, (lines) => lines.some((l) => l.includes('stand-in claude ready')), 'the prompt');
  const panel = page.locator('#attention');
  check(await panel.isHidden(), 'nothing to answer yet, so no panel');

  await page.keyboard.type('tool echo from-the-page-$((40+2))\r');
  const allow = page.locator('[data-answer=allow]');
  await allow.waitFor({ timeout: 10000 });
  const asked = await panel.innerText();
  check(asked.includes('Claude asks to use Bash') && asked.includes('echo from-the-page-'), `the panel says: ${asked}`);
  step('the permission asked shows with Allow and Deny');
  await page.screenshot({ path: `${SHOTS}/needs-you.png` });

  await allow.click();
  await waitForTerminal(page, (lines) => lines.some((l) => l.trim() === 'from-the-page-42'), 'the allowed tool running');
  await page.getByText('Claude finished its turn').first().waitFor({ timeout: 10000 });
  step('Allow let the tool run, and the turn\'s end shows');

  // The button has the focus now: back to the terminal, as a person would click it.
  await page.evaluate(() => window.claudenestTerminal.term.focus());
  await page.keyboard.type('tool echo nope\r');
  await page.locator('[data-answer=deny]').waitFor({ timeout: 10000 });
  await page.locator('#attention input[name=reason]').fill('not on a Sunday');
  await page.locator('[data-answer=deny]').click();
  await waitForTerminal(page, (lines) => lines.some((l) => l.includes('denied: not on a Sunday')), 'the denial with its reason');
  check(!(await waitForTerminal(page, () => true, '')).some((l) => l.trim() === 'nope'), 'the denied command did not run');
  step('Deny blocked the tool and told Claude why');

  await page.goto(`${BASE}/#/`);
  const card = page.locator(`[data-session="${SESSION}"] .waiting`);
  await card.waitFor({ timeout: 10000 });
  check((await card.innerText()).includes('finished its turn'), 'the fleet says what the session waits for');
  step('the fleet card says what the session waits for');
  await page.screenshot({ path: `${SHOTS}/needs-you-fleet.png` });

  await page.goto(`${BASE}/#/notifications`);
  const sent = page.locator('[data-delivery]').filter({ hasText: 'permission' }).filter({ hasText: 'delivered' });
  await sent.first().waitFor({ timeout: 10000 });
  check((await sent.count()) === 2, `both permission notices were delivered: ${await page.locator('#main').innerText()}`);
  step('the notifications page lists what was sent');
  await page.screenshot({ path: `${SHOTS}/notifications.png` });
  check(pageErrors.length === 0, `page errors: ${pageErrors.join('; ')}`);
});
