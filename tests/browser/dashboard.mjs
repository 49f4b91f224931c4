// The dashboard in a real headless Chromium (Debian's, driven by playwright-core), against the
// built `claudenest` binary and a real agent whose `claude` is a stand-in.
// Run by tests/tests/e2e/dashboard.rs, which starts them and passes in env:
//   BASE_URL, PASSWORD, ADA (e-mail, no machine yet), BOB (another user), PAIR_CODE (what
//   `claudenest-agent pair` printed), SHOTS (where screenshots go).
// Prints one line per step; exits 1 at the first failure.
import { check, env, story, terminalLines, waitForTerminal } from './common.mjs';

const BASE = env('BASE_URL');
const PASSWORD = env('PASSWORD');
const ADA = env('ADA');
const BOB = env('BOB');
const PAIR_CODE = env('PAIR_CODE');
const SHOTS = env('SHOTS');

function step(text) {
  console.log(`ok: ${text}`);
}

async function signIn(page, email) {
  await page.goto(`${BASE}/#/sign-in`);
  await page.getByLabel('E-mail').fill(email);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.getByRole('heading', { name: 'Fleet' }).waitFor();
}

async function apiToken(email) {
  const response = await fetch(`${BASE}/api/auth/login`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ email, password: PASSWORD }),
  });
  return (await response.json()).data.token;
}

await story(async (browser) => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const pageErrors = [];
  page.on('pageerror', (err) => pageErrors.push(err.message));
  page.on('dialog', (dialog) => dialog.accept());

  // Signing in: a wrong password is shown, the right one opens the fleet.
  await page.goto(`${BASE}/`);
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  await page.screenshot({ path: `${SHOTS}/sign-in.png` });
  await page.getByLabel('E-mail').fill(ADA);
  await page.getByLabel('Password').fill('not the password');
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.getByRole('alert').filter({ hasText: 'AUTH_' }).waitFor();
  step('a wrong password is shown as an error');
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.getByRole('heading', { name: 'Fleet' }).waitFor();
  step('signed in');

  // Pairing: type the agent's code, watch the machine come online without reloading.
  await page.getByRole('link', { name: 'Machines' }).click();
  await page.getByLabel('Code').fill('NOPE-NOPE');
  await page.getByRole('button', { name: 'Pair', exact: true }).click();
  await page.getByRole('alert').filter({ hasText: 'MCH_005' }).waitFor();
  step('an unknown pairing code is refused with MCH_005');
  await page.getByLabel('Code').fill(PAIR_CODE);
  await page.getByLabel('Name (optional)').fill('build-box');
  await page.getByRole('button', { name: 'Pair', exact: true }).click();
  const card = page.locator('.machine-card', { hasText: 'build-box' });
  await card.waitFor();
  await card.locator('.badge', { hasText: 'online' }).waitFor({ timeout: 20000 });
  step('the paired machine turned online without a reload');
  await page.screenshot({ path: `${SHOTS}/machines.png` });

  // A session with the stand-in claude: type, see the answer.
  await card.click();
  await page.getByRole('heading', { name: /build-box/ }).waitFor();
  await page.locator('section', { hasText: 'Environment' }).locator('pre').waitFor();
  await page.screenshot({ path: `${SHOTS}/machine.png`, fullPage: true });
  await page.getByRole('button', { name: 'Start', exact: true }).click();
  await page.waitForURL(/#\/sessions\//);
  const sessionId = page.url().split('/').pop();
  await waitForTerminal(page, (l) => l.some((x) => x.includes('stand-in claude ready')), 'the ready line');
  await page.locator('#terminal').click();
  await page.keyboard.type('hello from the browser');
  await page.keyboard.press('Enter');
  await waitForTerminal(page, (l) => l.some((x) => x.includes('you said: hello from the browser')), 'the echo');
  step('typed a line and saw the answer');

  // Resize: the PTY follows the window.
  const before = await page.evaluate(() => [window.claudenestTerminal.term.rows, window.claudenestTerminal.term.cols]);
  await page.setViewportSize({ width: 900, height: 620 });
  await page.waitForFunction((b) => {
    const t = window.claudenestTerminal.term;
    return t.rows !== b[0] && t.cols !== b[1];
  }, before);
  const [rows, cols] = await page.evaluate(() => [window.claudenestTerminal.term.rows, window.claudenestTerminal.term.cols]);
  await page.keyboard.type('size');
  await page.keyboard.press('Enter');
  await waitForTerminal(page, (l) => l.some((x) => x.trim() === `${rows} ${cols}`), `stty size = ${rows} ${cols}`);
  step(`resized: stty size says ${rows} ${cols} (was ${before.join(' ')})`);

  // A dropped socket: output made meanwhile arrives once, nothing lost.
  const token = await apiToken(ADA);
  await page.evaluate(() => window.claudenest.live.connection().disconnect());
  const sent = await fetch(`${BASE}/api/sessions/${sessionId}/input`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
    body: JSON.stringify({ data: 'count 40\n' }),
  });
  check(sent.ok, `input through the API answered ${sent.status}`);
  await page.waitForTimeout(800);
  check(!(await terminalLines(page)).some((x) => x.trim() === 'line 40'), 'output arrived while the socket was down');
  await page.evaluate(() => window.claudenest.live.connection().connect());
  const caught = await waitForTerminal(page, (l) => l.some((x) => x.trim() === 'line 40'), 'line 40 after reconnecting');
  for (let i = 1; i <= 40; i++) {
    const seen = caught.filter((x) => x.trim() === `line ${i}`).length;
    check(seen === 1, `line ${i} shown ${seen} times after the socket came back`);
  }
  step('after a dropped socket every line arrived exactly once');

  // Reload: the same screen comes back.
  const screenBefore = (await terminalLines(page)).slice(-rows).map((x) => x.trimEnd());
  await page.reload();
  await waitForTerminal(page, (l) => l.some((x) => x.includes('line 40')), 'the screen after reload');
  const screenAfter = (await terminalLines(page)).slice(-rows).map((x) => x.trimEnd());
  const visible = (lines) => lines.filter(Boolean).join('\n');
  check(visible(screenAfter).includes(visible(screenBefore.slice(-10))),
    `after reload the screen differs:\n${visible(screenBefore)}\n---\n${visible(screenAfter)}`);
  step('after a reload the same screen is back');
  await page.screenshot({ path: `${SHOTS}/session.png` });

  // A phone: the key bar sends what a touch keyboard lacks.
  const phone = await context.newPage();
  await phone.setViewportSize({ width: 390, height: 760 });
  await phone.goto(`${BASE}/#/sessions/${sessionId}`);
  await waitForTerminal(phone, (l) => l.some((x) => x.includes('line 40')), 'the screen on a phone');
  await phone.locator('#terminal').click();
  await phone.keyboard.type('garbage');
  await phone.getByRole('button', { name: 'Ctrl' }).click();
  await phone.keyboard.type('u'); // Ctrl-U: the line discipline drops what was typed
  await phone.keyboard.type('key');
  await phone.getByRole('toolbar', { name: 'Keys' }).getByRole('button', { name: 'Tab' }).click();
  await phone.keyboard.type('bar');
  await phone.keyboard.press('Enter');
  // A tab after "you said: key" (13 columns) moves to column 16: three blanks.
  const keyed = await waitForTerminal(phone, (l) => l.some((x) => /you said: .*bar/.test(x)), 'the key bar line');
  const said = keyed.find((x) => /you said: .*bar/.test(x));
  check(said.trimEnd() === 'you said: key   bar', `the line was ${JSON.stringify(said)}`);
  step('the key bar types Tab and Ctrl on a phone');
  await phone.screenshot({ path: `${SHOTS}/session-phone.png` });
  await phone.close();

  // The fleet, live: ending the session in one tab moves it to "Ended" in another.
  const fleet = await context.newPage();
  await fleet.goto(`${BASE}/#/`);
  const running = fleet.locator(`section[data-group=running] [data-session="${sessionId}"]`);
  await running.waitFor();
  await fleet.screenshot({ path: `${SHOTS}/fleet.png` });
  await page.getByRole('button', { name: 'End session' }).click();
  await page.locator('#session-status', { hasText: 'terminated' }).waitFor();
  await fleet.locator(`section[data-group=ended] [data-session="${sessionId}"]`).waitFor({ timeout: 15000 });
  step('ended: the fleet view moved it to Ended without a reload');
  await fleet.close();

  // Tokens: create one with chosen abilities (shown once), revoke it.
  await page.goto(`${BASE}/#/tokens`);
  await page.getByLabel('Name', { exact: true }).fill('ci-watcher');
  await page.getByLabel('sessions:read').check();
  await page.getByRole('button', { name: 'Create', exact: true }).click();
  const secret = await page.locator('#new-token').textContent();
  check(secret.startsWith('cn_'), `the new token is ${secret}`);
  const row = page.locator('tr', { hasText: 'ci-watcher' });
  await row.waitFor();
  check((await row.textContent()).includes('sessions:read'), 'the token lists its ability');
  await page.screenshot({ path: `${SHOTS}/tokens.png` });
  await row.getByRole('button', { name: 'Revoke' }).click();
  await row.getByText('revoked or expired').waitFor();
  const revoked = await fetch(`${BASE}/api/auth/me`, { headers: { Authorization: `Bearer ${secret}` } });
  check(revoked.status === 401, `the revoked token answers ${revoked.status}`);
  step('a token was created with an ability and revoked');

  // Another user: Ada's session is simply not there.
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  await signIn(page, BOB);
  await page.goto(`${BASE}/#/sessions/${sessionId}`);
  await page.getByRole('heading', { name: 'Session not found' }).waitFor();
  check(!(await page.content()).includes('line 40'), "Bob's page shows Ada's output");
  await page.screenshot({ path: `${SHOTS}/not-found.png` });
  step("another user's session id shows a not-found page");

  check(pageErrors.length === 0, `errors in the page: ${pageErrors.join('; ')}`);
});
