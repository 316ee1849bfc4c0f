// Drives Switchboard's web UI in Debian's Chromium with playwright-core, as
// a person would: chat with tool calls, approve a call, reopen the
// conversation, then the admin console's log, filters, a call's detail, a
// conversation's timing, stats and servers. Saves a screenshot of every
// screen and prints a JSON report; exits non-zero on the first failure.
//
// Environment: BASE (the service URL), TOKEN (alice, an admin), USER_TOKEN
// (bob, not an admin), CHROMIUM (the browser), SHOTS (screenshot directory).
import { check, report, run, shot, step, watch } from '../../internal/nodetest/pages.mjs';

const { BASE, TOKEN, USER_TOKEN } = process.env;
const TIMEOUT = 15000;

await run(async (browser) => {
  const context = await browser.newContext({ viewport: { width: 1366, height: 768 } });
  context.setDefaultTimeout(TIMEOUT);
  const page = await context.newPage();
  watch(page, 'alice');

  step('open the login URL: the token moves from the fragment to sessionStorage');
  await page.goto(`${BASE}/#token=${TOKEN}`);
  await page.locator('#input').waitFor();
  check(await page.evaluate(() => location.hash) === '', 'the fragment is stripped');
  check(await page.evaluate(() => sessionStorage.getItem('switchboard.token')) === TOKEN, 'the token is in sessionStorage');
  check((await page.locator('.who .user').textContent()) === 'alice', 'the user id is decoded from the token');
  await shot(page, 'chat-0-empty');

  step('send a message: two tool cards, then the streamed answer');
  await page.locator('#input').fill('Add a task to buy milk');
  await page.locator('#input').press('Enter');
  await page.locator('.msg.user .bubble', { hasText: 'Add a task to buy milk' }).waitFor();
  await page.locator('.tool-card[data-status="succeeded"]').nth(1).waitFor();
  await page.locator('.msg.assistant .text', { hasText: 'I added “buy milk”' }).waitFor();
  await page.locator('#send:not([hidden])').waitFor();
  const titles = await page.locator('.tool-card .tool-title').allTextContents();
  check(JSON.stringify(titles) === JSON.stringify(['tasks · add_task', 'tasks · list_tasks']), 'card titles: ' + titles);
  report.conversationId = new URL(page.url()).searchParams.get('c');
  check(report.conversationId, 'the page names the new conversation in its URL');
  await shot(page, 'chat-1-answer');

  step('open a tool card: arguments, result, status and duration');
  const first = page.locator('.tool-card').first();
  await first.locator('summary').click();
  await first.locator('.args').waitFor({ state: 'visible' });
  check((await first.locator('.args').textContent()).includes('"title": "buy milk"'), 'the arguments');
  check((await first.locator('.result').textContent()).includes('buy milk'), 'the result');
  const meta = await first.locator('.tool-meta').textContent();
  check(/Statussucceeded/.test(meta) && /Duration[\d.]+ (ms|s)/.test(meta), 'status and duration: ' + meta);
  check(/[\d.]+ (ms|s)/.test(await first.locator('.tool-dur').textContent()), 'the duration on the card');
  await shot(page, 'chat-2-tool-card');

  step('a destructive call waits for approval; approve it with the button');
  await page.locator('#input').fill('Delete it');
  await page.locator('#input').press('Enter');
  const approve = page.locator('.approval:not([hidden]) button.approve');
  await approve.waitFor();
  await page.locator('#send:not([hidden])').waitFor();
  const pending = page.locator('.tool-card[data-status="awaiting_approval"]');
  check(await pending.count() === 1, 'one card awaits approval');
  check((await pending.locator('.tool-title').textContent()) === 'tasks · delete_task', 'the pending card is delete_task');
  await shot(page, 'chat-3-approval');
  await approve.click();
  await page.locator('.tool-card[data-status="succeeded"] .tool-title', { hasText: 'delete_task' }).waitFor();
  await page.locator('.msg.assistant .text', { hasText: 'deleted' }).waitFor();
  await page.locator('#send:not([hidden])').waitFor();
  check(await page.locator('.approval:not([hidden])').count() === 0, 'no approval is left');
  await shot(page, 'chat-4-approved');

  step('a call that fails shows as failed, with the error');
  await page.locator('#input').fill('Mark task 42 as done');
  await page.locator('#input').press('Enter');
  const failed = page.locator('.tool-card[data-status="failed"]');
  await failed.waitFor();
  await page.locator('.msg.assistant .text', { hasText: 'no task 42' }).waitFor();
  await page.locator('#send:not([hidden])').waitFor();
  await failed.locator('summary').click();
  await failed.locator('.result').scrollIntoViewIfNeeded();
  check((await failed.locator('.result').textContent()).includes('42'), 'the error names the task: ' + await failed.locator('.result').textContent());
  await shot(page, 'chat-5-failed-call');

  step('reload: the conversation is listed and its transcript comes back with its cards');
  await page.reload();
  await page.locator('#conversation-list .conversation.current', { hasText: 'Add a task to buy milk' }).waitFor();
  await page.locator('.tool-card').nth(3).waitFor();
  check(await page.locator('.tool-card').count() === 4, 'four cards after a reload');
  check(await page.locator('.msg.user').count() === 3, 'three user messages after a reload');
  // The ledger's statuses and durations, not a guess from the transcript.
  await page.locator('.tool-card[data-status="failed"] .tool-title', { hasText: 'complete_task' }).waitFor();
  check(await page.locator('.tool-card[data-status="succeeded"]').count() === 3, 'three calls succeeded');
  for (const d of await page.locator('.tool-card .tool-dur').allTextContents()) check(/[\d.]+ (ms|s)/.test(d), 'a duration on every card: ' + d);
  await shot(page, 'chat-6-reloaded');

  step('a call awaiting approval after a reload still has its buttons');
  await page.locator('#new-chat').click();
  await page.locator('#input').fill('Delete task 1');
  await page.locator('#input').press('Enter');
  await page.locator('.approval:not([hidden]) button.deny').waitFor();
  await page.locator('#send:not([hidden])').waitFor();
  await page.reload();
  const deny = page.locator('.approval:not([hidden]) button.deny');
  await deny.waitFor();
  await shot(page, 'chat-7-approval-after-reload');
  await deny.click();
  await page.locator('.tool-card[data-status="denied"]').waitFor();
  await page.locator('.msg.assistant .text', { hasText: 'did not delete' }).waitFor();
  await page.locator('#send:not([hidden])').waitFor();
  check(await page.locator('.msg.assistant').count() === 1, 'the turn goes on in the same answer');
  await shot(page, 'chat-8-denied');

  step('Stop cancels a running turn');
  await page.locator('#input').fill('Tell me a long story');
  await page.locator('#input').press('Enter');
  await page.locator('.msg.assistant.working').waitFor(); // the turn has started
  await page.locator('#stop:not([hidden])').click();
  // The cancel route ends the stream (an error part, and turn_cancelled in
  // the finish part: "Stopped: the turn was cancelled."); in the instant
  // before the server tracks the turn, the page drops the request
  // ("Stopped."). Either is a warning, not an error.
  await page.locator('.msg.assistant .note.warn', { hasText: 'Stopped' }).waitFor();
  await page.locator('#send:not([hidden])').waitFor();
  await shot(page, 'chat-8b-stopped');

  step('the admin console lists the calls, newest first, 50 a page');
  await page.goto(`${BASE}/admin`);
  await page.locator('#calls-table tbody tr').nth(49).waitFor();
  check(await page.locator('#calls-table tbody tr').count() === 50, 'a page of 50 calls');
  check((await page.locator('#calls-table tbody tr').first().textContent()).includes('delete_task'), "alice's last call first");
  await shot(page, 'admin-1-calls');
  const firstPage = await page.locator('#calls-table tbody tr').evaluateAll((rows) => rows.map((r) => r.dataset.id));
  await page.locator('#older').click();
  await page.waitForFunction(() => document.querySelectorAll('#calls-table tbody tr').length === 12);
  const secondPage = await page.locator('#calls-table tbody tr').evaluateAll((rows) => rows.map((r) => r.dataset.id));
  check(new Set([...firstPage, ...secondPage]).size === 62, 'two pages hold all 62 calls once');
  check(await page.locator('#older').isDisabled(), 'the last page has no older page');
  await page.locator('.pager').scrollIntoViewIfNeeded();
  await shot(page, 'admin-1b-page-2');
  await page.locator('#newer').click();
  await page.waitForFunction((id) => document.querySelector('#calls-table tbody tr')?.dataset.id === id, firstPage[0]);

  step('filter by tool');
  await page.locator('#filter-tool').fill('add_task');
  await page.locator('#apply-filters').click();
  await page.waitForURL(/tool=add_task/);
  await page.locator('#calls-table tbody tr', { hasText: 'add_task' }).waitFor();
  await page.waitForFunction(() => document.querySelectorAll('#calls-table tbody tr').length === 1);
  await shot(page, 'admin-2-filtered');

  step("open a call's detail");
  await page.locator('#calls-table tbody tr').first().click();
  await page.locator('#call-arguments').waitFor();
  check((await page.locator('#call-arguments').textContent()).includes('"title": "buy milk"'), 'the detail has the arguments');
  check((await page.locator('#call-arguments').textContent()).includes('"user_id": "alice"'), 'the arguments as sent, injected user included');
  check((await page.locator('#call-result').textContent()).includes('buy milk'), 'the detail has the result');
  check(/call=/.test(page.url()), 'the open call is in the URL');
  await shot(page, 'admin-3-call-detail');

  step("open the call's conversation: every turn with its timing");
  await page.locator('#open-conversation').click();
  await page.locator('.turn').nth(2).waitFor();
  check(await page.locator('.turn').count() === 3, 'three turns');
  check(await page.locator('.timing').count() === 3, 'a timing bar per turn');
  check((await page.locator('.turn').first().textContent()).includes('add_task'), "the first turn's calls");
  await shot(page, 'admin-4-conversation');

  step('stats per tool');
  await page.locator('#tab-stats').click();
  await page.locator('#stats-table tbody tr').nth(3).waitFor();
  const statsText = await page.locator('#stats-table').textContent();
  check(statsText.includes('complete_task') && statsText.includes('100%'), 'complete_task failed every time: ' + statsText);
  check(statsText.includes('read_file') && statsText.includes('search'), "other users' tools too");
  await shot(page, 'admin-5-stats');

  step('server health with the stderr tail');
  await page.locator('#tab-servers').click();
  await page.locator('.server-card[data-server="tasks"] .stderr').waitFor();
  check((await page.locator('.server-card[data-server="tasks"] .badge').first().textContent()) === 'ready', 'tasks is ready');
  const icons = await page.locator('.server-card[data-server="tasks"] img.icon').evaluateAll((imgs) =>
    imgs.map((i) => ({ src: i.getAttribute('src'), loaded: i.complete && i.naturalWidth > 0, chip: i.parentElement.textContent })));
  check(icons.length === 2 && icons.every((i) => i.src.startsWith('data:image/png;base64,') && i.loaded),
    'the server and add_task show their PNG icons, loaded; the SVG and script URLs are not shown: ' + JSON.stringify(icons));
  check(icons[1].chip === 'tasks__add_task', "add_task's chip has its icon: " + icons[1].chip);
  const facts = await page.locator('.server-card[data-server="tasks"] .facts').textContent();
  check(facts.includes('Protocol2025-11-25 (legacy)') && /Servertasks-mcp \S+/.test(facts) && facts.includes('Capabilitiestools'),
    "the card shows the connection's protocol, era, the server's name and version and its capabilities: " + facts);
  await shot(page, 'admin-6-servers');

  step('a wider laptop screen (1440x900)');
  await page.setViewportSize({ width: 1440, height: 900 });
  await page.goto(`${BASE}/admin?status=failed&user=alice`);
  await page.waitForFunction(() => document.querySelectorAll('#calls-table tbody tr').length === 1);
  await page.locator('#calls-table tbody tr').first().click();
  await page.locator('#call-result').waitFor();
  await shot(page, 'admin-7-failed-call-1440');
  await page.goto(`${BASE}/?c=${report.conversationId}`);
  await page.locator('.tool-card').nth(3).waitFor();
  await shot(page, 'chat-9-1440');

  step('a regenerated answer: the chat shows the new one, the admin both');
  const auth = { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' };
  const transcript = await (await fetch(`${BASE}/api/alice/conversations/${report.conversationId}`, { headers: auth })).json();
  const asked = transcript.messages.filter((m) => m.role === 'user');
  // What useChat's regenerate() sends: the messages up to the user's last.
  const regen = await fetch(`${BASE}/api/alice/chat/stream`, { method: 'POST', headers: auth, body: JSON.stringify({
    id: report.conversationId, trigger: 'regenerate-message',
    messages: asked.map((m) => ({ role: 'user', parts: [{ type: 'text', text: m.content }] })) }) });
  check(regen.status === 200 && (await regen.text()).includes('[DONE]'), 'the regenerate request streams an answer');
  await page.reload();
  await page.locator('.msg.assistant', { hasText: 'Regenerated' }).waitFor();
  check(!(await page.locator('#thread').textContent()).includes('There is no task 42'), 'the replaced answer left the chat');
  await page.goto(`${BASE}/admin?view=conversation&id=${report.conversationId}`);
  await page.locator('.turn').nth(3).waitFor();
  check(await page.locator('.line.superseded').count() >= 1, 'the replaced answer is shown, marked');
  check((await page.locator('.superseded-note').first().textContent()).includes('answered again'), 'it says it was answered again');
  await page.locator('.turn').nth(3).scrollIntoViewIfNeeded();
  await shot(page, 'admin-9-regenerated');

  step('a user who is not an admin is told so');
  const other = await browser.newContext({ viewport: { width: 1366, height: 768 } });
  other.setDefaultTimeout(TIMEOUT);
  const bob = await other.newPage();
  await bob.goto(`${BASE}/admin#token=${USER_TOKEN}`);
  await bob.locator('#forbidden').waitFor();
  await shot(bob, 'admin-8-not-an-admin');

  step('without a token: a form to paste one');
  await bob.evaluate(() => sessionStorage.clear());
  await bob.goto(`${BASE}/`);
  await bob.locator('#login-form').waitFor();
  await bob.locator('#token-input').fill('not a token');
  await bob.locator('#login-form button[type=submit]').click();
  check((await bob.locator('.form-error').textContent()).includes('not a JWT'), 'a bad token is refused');
  await shot(bob, 'login');
  await bob.locator('#token-input').fill(USER_TOKEN);
  await bob.locator('#login-form button[type=submit]').click();
  await bob.locator('#input').waitFor();
  check((await bob.locator('.who .user').textContent()) === 'bob', 'signed in as bob');
  await other.close();
  await context.close();
});
