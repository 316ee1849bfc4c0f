// Answers server-everything's trigger-elicitation-request through the web
// chat's form, in Debian's Chromium with playwright-core: the form drawn
// from the requested schema (formats, numbers, integers, booleans, enums
// with titles, a multi-select, defaults), submitted, then a second
// question declined. Prints a JSON report; exits non-zero on the first
// failure.
//
// Environment: BASE (the service URL), TOKEN (alice), CHROMIUM, SHOTS.
import { check, report, run, shot, step, watch } from '../../internal/nodetest/pages.mjs';

const { BASE, TOKEN } = process.env;

await run(async (browser) => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 1100 } });
  context.setDefaultTimeout(20000);
  const page = await context.newPage();
  watch(page, 'alice');
  await page.goto(`${BASE}/#token=${TOKEN}`);
  await page.locator('#input').waitFor();

  step('a tool call asks a question: the form is drawn from its schema');
  await page.locator('#input').fill('ask me');
  await page.locator('#input').press('Enter');
  const form = page.locator('form.elicit');
  await form.waitFor();
  await page.locator('.note', { hasText: 'Waiting for your answer.' }).waitFor();
  check((await form.locator('.elicit-head').textContent()).includes('Please provide inputs'), 'the question is shown');
  const field = (name) => form.locator(`.field[data-name="${name}"]`);
  check(await field('name').locator('input[type="text"][required]').count() === 1, 'name: a required text input');
  check(await field('email').locator('input[type="email"]').count() === 1, 'email: an email input');
  check(await field('homepage').locator('input[type="url"]').count() === 1, 'homepage: a url input');
  check(await field('birthdate').locator('input[type="date"]').count() === 1, 'birthdate: a date input');
  check(await field('check').locator('input[type="checkbox"]').count() === 1, 'check: a checkbox');
  check(await field('integer').locator('input[type="number"]').inputValue() === '42', 'integer: its default');
  check(await field('integer').locator('input[type="number"]').getAttribute('step') === '1', 'integer: whole steps');
  check(await field('number').locator('input[type="number"]').getAttribute('max') === '1000', 'number: its maximum');
  check(await field('firstLine').locator('input').inputValue() === 'It was a dark and stormy night.', 'a string default');
  check(await field('untitledSingleSelectEnum').locator('select').inputValue() === 'Monica', 'an enum: a select, its default chosen');
  const heroes = await field('titledSingleSelectEnum').locator('option').allTextContents();
  check(heroes.includes('Superman') && heroes.includes('Wonder Woman'), 'a titled enum shows its titles: ' + heroes);
  check(await field('legacyTitledEnum').locator('option', { hasText: 'Dogs' }).count() === 1, 'enumNames are the labels');
  const instruments = field('untitledMultipleSelectEnum').locator('input[type="checkbox"]');
  check(await instruments.count() === 5, 'a multi-select: a checkbox per choice');
  check(await field('untitledMultipleSelectEnum').locator('input[value="Guitar"]').isChecked(), 'its default is checked');
  check((await field('titledMultipleSelectEnum').textContent()).includes('Salmon'), 'a titled multi-select shows its titles');
  await shot(page, 'elicit-0-form');

  step('fill and submit the form: the call goes on with the answer');
  await field('name').locator('input').fill('Alice Browser');
  await field('email').locator('input').fill('alice@example.com');
  await field('integer').locator('input').fill('7');
  await field('check').locator('input').check();
  await field('untitledMultipleSelectEnum').locator('input[value="Drums"]').check();
  await form.locator('button.accept').click();
  await page.locator('.msg.assistant .text', { hasText: 'Name: Alice Browser' }).waitFor();
  check(await page.locator('form.elicit').count() === 0, 'the form is gone');
  const said = await page.locator('.msg.assistant .text', { hasText: 'Name: Alice Browser' }).textContent();
  check(said.includes('Favorite Integer: 7') && said.includes('Agreed to terms: true') && said.includes('Drums'), 'the server got the answer: ' + said);
  report.conversationId = new URL(page.url()).searchParams.get('c');
  await shot(page, 'elicit-1-answered');

  step('a second question, declined');
  await page.locator('#input').fill('ask again');
  await page.locator('#input').press('Enter');
  await page.locator('form.elicit').waitFor();
  await page.locator('form.elicit button.decline').click();
  await page.locator('.msg.assistant .text', { hasText: 'declined' }).waitFor();
  await shot(page, 'elicit-2-declined');
});
