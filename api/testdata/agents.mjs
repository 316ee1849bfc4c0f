// Drives the chat page's agents in Chromium: bob picks an agent in the
// composer and sees it answer; a new chat starts with the default agent,
// which hands off, and the answer shows the handoff and the agent that
// answered, also when the conversation is opened again; carol, an admin,
// is offered the admins' agent too, and sees the turns by agent and the
// handoff in the admin console.
//
// Environment: BASE (the service URL), BOB and CAROL (their tokens; carol
// is an admin), CHROMIUM, SHOTS.
import { check, report, run, shot, step, watch } from '../../internal/nodetest/pages.mjs';

const { BASE, BOB, CAROL } = process.env;

await run(async (browser) => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 760 } });
  context.setDefaultTimeout(15000);
  const page = await context.newPage();
  watch(page, 'bob');

  step('bob: the composer offers his agents, the default chosen');
  await page.goto(`${BASE}/#token=${BOB}`);
  const select = page.locator('#agent:not([hidden])');
  await select.waitFor();
  const options = await page.locator('#agent option').allTextContents();
  check(JSON.stringify(options) === JSON.stringify(['triage', 'tasks']), 'bob\'s agents: ' + options);
  check(await select.inputValue() === 'triage', 'the default agent is chosen');
  await shot(page, 'agents-0-select');

  step('bob chooses tasks: tasks answers, and says so');
  await select.selectOption('tasks');
  await page.locator('#input').fill('hello tasks');
  await page.locator('#input').press('Enter');
  const answer = page.locator('.msg.assistant', { hasText: 'tasks answering' });
  await answer.waitFor();
  check((await answer.locator('.role .agent-badge').textContent()) === 'tasks', 'the answer names tasks');
  await page.locator('#send:not([hidden])').waitFor();
  await shot(page, 'agents-1-chosen');

  step('a new chat starts with triage, which hands off to tasks');
  await page.locator('#new-chat').click();
  check(await select.inputValue() === 'triage', 'a new chat has the default agent');
  await page.locator('#input').fill('add milk');
  await page.locator('#input').press('Enter');
  const handed = page.locator('.msg.assistant', { hasText: 'after the handoff' });
  await handed.waitFor();
  await page.locator('#send:not([hidden])').waitFor();
  check((await handed.locator('.handoff-line').textContent()).includes('triage handed off to tasks'), 'the handoff is shown');
  check((await handed.locator('.role .agent-badge').textContent()) === 'tasks', 'tasks answered');
  check(await select.inputValue() === 'tasks', 'the composer follows the handoff');
  report.conversationId = new URL(page.url()).searchParams.get('c');
  await shot(page, 'agents-2-handoff');

  step('the conversation opened again shows the handoff and its agent');
  await page.goto(`${BASE}/?c=${encodeURIComponent(report.conversationId)}`);
  const again = page.locator('.msg.assistant', { hasText: 'after the handoff' });
  await again.waitFor();
  check((await again.locator('.handoff-line').textContent()).includes('triage handed off to tasks'), 'the stored handoff is shown');
  check((await again.locator('.role .agent-badge').textContent()) === 'tasks', 'the stored answer names tasks');
  await page.locator('#agent:not([hidden])').waitFor();
  check(await page.locator('#agent').inputValue() === 'tasks', 'the conversation\'s agent is chosen');
  await shot(page, 'agents-3-reopened');

  step('carol, an admin, is offered the admins\' agent');
  const carol = await (await browser.newContext()).newPage();
  watch(carol, 'carol');
  await carol.goto(`${BASE}/#token=${CAROL}`);
  await carol.locator('#agent:not([hidden])').waitFor();
  const hers = await carol.locator('#agent option').allTextContents();
  check(JSON.stringify(hers) === JSON.stringify(['triage', 'tasks', 'ops']), 'carol\'s agents: ' + hers);

  step('the admin console: stats by agent, and the handoff in bob\'s conversation');
  await carol.goto(`${BASE}/admin?view=stats&group_by=agent#token=${CAROL}`);
  const row = carol.locator('#agent-stats-table tbody tr[data-agent="tasks"]');
  await row.waitFor();
  const cells = await row.locator('td').allTextContents();
  check(cells[0] === 'tasks' && cells[1] === '2' && cells[2] === '1', 'tasks: two turns, one handoff: ' + cells);
  await shot(carol, 'agents-4-admin-stats');
  await carol.goto(`${BASE}/admin?view=conversation&id=${encodeURIComponent(report.conversationId)}`);
  await carol.locator('.turn').first().waitFor();
  const turn = await carol.locator('.turn').first().textContent();
  check(turn.includes('triage handed off to tasks') && turn.includes('1 handoff'), 'the turn shows its handoff: ' + turn);
  check((await carol.locator('.turn .turn-head .agent-badge').first().textContent()) === 'tasks', 'the turn names its agent');
  await shot(carol, 'agents-5-admin-conversation');
});
