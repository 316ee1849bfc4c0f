// Drives the chat page's connect flow in Debian's Chromium with
// playwright-core, as a user who has connected nothing: a call of demo (an
// OAuth server) shows "Connect demo"; Connect opens the sign-in in a window
// of its own, which goes through the demo's authorization server to the
// callback page, tells the chat over the BroadcastChannel and closes; the
// card says demo is connected, and Retry answers with the tool's result.
// Then a call of tasks (user_secret) asks for its secret in a form; the
// sidebar lists both connections, disconnects demo and connects it again;
// the admin console lists everyone's and revokes carol's tasks. Saves a screenshot of every step and prints a JSON
// report; exits non-zero on the first failure.
//
// Environment: BASE (the service URL), TOKEN (carol's, who has connected
// nothing), ADMIN_TOKEN (root, an admin), AUTH_ORIGIN (the demo's
// authorization server), CHROMIUM (the browser), SHOTS (screenshot
// directory).
import { check, report, run, shot, step, watch } from '../../../internal/nodetest/pages.mjs';

const { BASE, TOKEN, ADMIN_TOKEN, AUTH_ORIGIN, SHOTS } = process.env;
const TIMEOUT = 20000;
report.told = [];

await run(async (browser) => {
  const context = await browser.newContext({ viewport: { width: 1366, height: 768 } });
  context.setDefaultTimeout(TIMEOUT);
  const page = await context.newPage();
  watch(page, 'chat');

  step('open the chat: the sidebar lists the servers to connect, none connected');
  await page.goto(`${BASE}/#token=${TOKEN}`);
  await page.locator('#input').waitFor();
  await page.locator('#connection-list .connection-item[data-server="demo"]').waitFor();
  check(await page.locator('#connection-list .connection-item[data-state="needed"]').count() === 2, 'demo and tasks are not connected');

  step('a call of demo, which carol has not connected: the answer ends with a card to connect it');
  await page.locator('#input').fill('carol');
  await page.locator('#input').press('Enter');
  const card = page.locator('.connect-card[data-server="demo"]');
  await card.waitFor();
  await page.locator('#send:not([hidden])').waitFor(); // the turn has ended
  check((await card.locator('.connect-title').textContent()) === 'Connect demo', 'the card says Connect demo');
  check(await card.locator('button.retry').isHidden(), 'no Retry before connecting');
  await page.locator('.tool-card[data-status="failed"] .tool-title', { hasText: 'demo · greet' }).waitFor();
  const blockText = await page.locator('.msg.assistant').last().textContent();
  check(blockText.indexOf('tool said:') < blockText.indexOf('Connect demo'), 'the card comes after what the model said');
  report.conversationId = new URL(page.url()).searchParams.get('c');
  check(report.conversationId, 'the page names the conversation in its URL');
  await shot(page, 'connect-1-card');

  step('Connect opens the sign-in in its own window; it goes through the authorization server to the callback and closes');
  // The chat page listens on the channel the callback page posts on, as
  // the card does: what it carried goes in the report.
  await page.evaluate(() => {
    const ch = new BroadcastChannel('switchboard-connections');
    window.__told = [];
    ch.addEventListener('message', (e) => window.__told.push(e.data));
  });
  // The chat page's COOP severs the window from its opener: it shows up
  // as a page of the context, not as this page's popup.
  // The sign-in's request to the authorization server is held until the
  // card waiting for it has been seen.
  const authorizeRequests = [];
  let release, reached;
  const held = new Promise((r) => { release = r; });
  const atAuthorize = new Promise((r) => { reached = r; });
  await context.route((u) => u.origin === AUTH_ORIGIN && u.pathname === '/authorize', async (route) => {
    authorizeRequests.push(route.request().url());
    reached();
    await held;
    await route.continue();
  });
  // (The window shows up as a page only once its first request is
  // answered.)
  const opened = context.waitForEvent('page');
  await card.locator('button.connect').click();
  await atAuthorize;
  check(await card.getAttribute('data-state') === 'waiting', 'the card waits for the sign-in');
  check((await card.locator('.connect-status').textContent()).includes('window that opened'), 'the card says where to sign in');
  check(await card.locator('button.retry').isHidden(), 'no Retry while signing in');
  await shot(page, 'connect-2-signing-in');
  release();
  const popup = await opened;
  watch(popup, 'sign-in');
  const closed = popup.isClosed() ? Promise.resolve() : popup.waitForEvent('close', { timeout: TIMEOUT });
  // The callback page shows for a moment before it closes itself.
  await popup.waitForURL(`${BASE}/oauth/callback?**`, { waitUntil: 'commit' });
  try {
    await popup.locator('h1', { hasText: 'Connected demo' }).waitFor({ timeout: 5000 });
    await shot(popup, 'connect-3-callback');
  } catch (e) {
    if (!popup.isClosed()) throw e;
    console.error('the callback page closed before its screenshot'); // its close is checked next
  }
  await closed;
  check(popup.isClosed(), 'the sign-in window closed itself');
  check(authorizeRequests.length === 1, 'the window went through the authorization server once: ' + authorizeRequests);

  step('the card says demo is connected and offers Retry');
  await page.locator('.connect-card[data-server="demo"][data-state="connected"]').waitFor();
  report.told = await page.evaluate(() => window.__told);
  check(report.told.length === 1 && report.told[0].ok === true && report.told[0].server === 'demo', 'the channel said demo connected: ' + JSON.stringify(report.told));
  check((await card.locator('.connect-title').textContent()) === 'demo is connected', 'the card says demo is connected');
  check(await card.locator('button.connect').isHidden(), 'no Connect once connected');
  const retry = card.locator('button.retry');
  await retry.waitFor();
  await page.locator('#connection-list .connection-item[data-server="demo"][data-state="connected"]').waitFor();
  await shot(page, 'connect-4-connected');

  step("Retry sends carol's message again: the answer has the tool's result");
  await retry.click();
  await page.locator('.tool-card[data-status="succeeded"] .tool-title', { hasText: 'demo · greet' }).waitFor();
  await page.locator('.msg.assistant .text', { hasText: 'Hello, carol!' }).waitFor();
  await page.locator('#send:not([hidden])').waitFor();
  check(await page.locator('.msg.user').count() === 2, 'the message shows again, as it is stored again');
  check(await retry.isHidden(), 'Retry is used up');
  await shot(page, 'connect-5-retried');

  step('a call of tasks (user_secret): the card asks for its secret');
  await page.locator('#input').fill('add buy milk');
  await page.locator('#input').press('Enter');
  const tasks = page.locator('.connect-card[data-server="tasks"]');
  const secret = tasks.getByLabel('TASKS_TOKEN');
  await secret.waitFor();
  await page.locator('#send:not([hidden])').waitFor();
  check((await tasks.locator('.secrets-form').textContent()).includes('a token for your task list'), 'the form says what the secret is for');
  check(await tasks.locator('button.connect').isHidden(), 'no sign-in button for a user_secret server');
  await shot(page, 'connect-6-secrets-form');
  await secret.fill('carol-task-token');
  await tasks.locator('button.save-secrets').click();
  await page.locator('.connect-card[data-server="tasks"][data-state="connected"]').waitFor();
  await shot(page, 'connect-7-secrets-saved');
  await tasks.locator('button.retry').click();
  await page.locator('.tool-card[data-status="succeeded"] .tool-title', { hasText: 'tasks · add_task' }).waitFor();
  await page.locator('.msg.assistant .text', { hasText: 'buy milk' }).last().waitFor();
  await page.locator('#send:not([hidden])').waitFor();
  await shot(page, 'connect-8-secrets-retried');

  step('the sidebar lists both connected; Disconnect demo');
  await page.locator('#connection-list .connection-item[data-server="tasks"][data-state="connected"]').waitFor();
  await page.locator('#connections').screenshot({ path: `${SHOTS}/connect-9-sidebar.png` });
  report.screenshots.push(`${SHOTS}/connect-9-sidebar.png`);
  await page.getByRole('button', { name: 'Disconnect demo' }).click();
  await page.locator('#connection-list .connection-item[data-server="demo"][data-state="needed"]').waitFor();
  const again = page.locator('#connection-list').getByRole('button', { name: 'Connect demo' });
  check(await again.count() === 1, 'the sidebar offers to connect demo again');
  await shot(page, 'connect-10-disconnected');

  step("the sidebar's Connect signs in again: a window asks for a new sign-in URL, and closes by itself");
  const reopened = context.waitForEvent('page');
  await again.click();
  const second = await reopened;
  watch(second, 'sign-in again');
  if (!second.isClosed()) await second.waitForEvent('close', { timeout: TIMEOUT });
  await page.locator('#connection-list .connection-item[data-server="demo"][data-state="connected"]').waitFor();
  check(authorizeRequests.length === 2, 'a second sign-in went through the authorization server: ' + authorizeRequests.length);

  step('the admin console lists the connections of everyone');
  const admin = await browser.newContext({ viewport: { width: 1366, height: 768 } });
  admin.setDefaultTimeout(TIMEOUT);
  const root = await admin.newPage();
  watch(root, 'admin');
  await root.goto(`${BASE}/admin?view=servers#token=${ADMIN_TOKEN}`);
  const rows = root.locator('#connections-table tbody tr');
  await rows.nth(3).waitFor();
  const listed = await rows.evaluateAll((trs) => trs.map((tr) => tr.dataset.user + '/' + tr.dataset.server).sort());
  check(JSON.stringify(listed) === JSON.stringify(['alice/demo', 'alice/tasks', 'carol/demo', 'carol/tasks']), 'the connections listed: ' + listed);
  const aliceDemo = await root.locator('#connections-table tbody tr[data-user="alice"][data-server="demo"]').textContent();
  check(aliceDemo.includes('oauth') && aliceDemo.includes('mcp:tools'), "alice's demo row has its type and scopes: " + aliceDemo);
  await root.locator('#connections-table').scrollIntoViewIfNeeded();
  await shot(root, 'connect-11-admin-connections');

  step("an admin revokes carol's tasks");
  await root.getByRole('button', { name: "Revoke carol's tasks" }).click();
  await root.waitForFunction(() => document.querySelectorAll('#connections-table tbody tr').length === 3);
  check(await root.locator('#connections-table tbody tr[data-user="carol"][data-server="tasks"]').count() === 0, "carol's tasks row is gone");
  await admin.close();
  await context.close();
});
