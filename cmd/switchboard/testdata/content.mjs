// Shows a tool's screenshot in Debian's Chromium with playwright-core: the
// chat page opens the conversation, its tool card shows the image (read
// with the user's token into a blob URL); the admin console's view of the
// call shows it too. Saves screenshots and prints a JSON report with the
// images' sizes as the pages decoded them; exits non-zero on the first
// failure.
//
// Environment: BASE (the service URL), TOKEN (the user's), ADMIN_TOKEN,
// CONVERSATION (the conversation's id), CALL (the screenshot call's ledger
// id), CHROMIUM (the browser), SHOTS (screenshot directory).
import { chromium } from 'playwright-core';

const { BASE, TOKEN, ADMIN_TOKEN, CONVERSATION, CALL, CHROMIUM, SHOTS } = process.env;
const TIMEOUT = 20000;
const report = { steps: [], screenshots: [], consoleErrors: [], chat: null, admin: null };

function check(cond, what) {
  if (!cond) throw new Error('check failed: ' + what);
}

function step(name) {
  report.steps.push(name);
  console.error('step:', name);
}

async function shot(page, name) {
  const path = `${SHOTS}/${name}.png`;
  await page.screenshot({ path, fullPage: true });
  report.screenshots.push(path);
}

function watch(page, label) {
  page.on('console', (m) => { if (m.type() === 'error') report.consoleErrors.push(`${label}: console: ${m.text()}`); });
  page.on('pageerror', (e) => report.consoleErrors.push(`${label}: page error: ${e.message}`));
  page.on('requestfailed', (r) => {
    const why = r.failure() && r.failure().errorText;
    if (why === 'net::ERR_ABORTED') return;
    report.consoleErrors.push(`${label}: request failed: ${r.url()} ${why}`);
  });
}

// decoded waits for the image to load and returns what the page made of it.
async function decoded(img) {
  await img.waitFor();
  await img.evaluate((node) => node.decode());
  return img.evaluate((node) => ({ src: node.src, width: node.naturalWidth, height: node.naturalHeight, alt: node.alt }));
}

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
});
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  context.setDefaultTimeout(TIMEOUT);
  const page = await context.newPage();
  watch(page, 'chat');

  step('the chat opens the conversation; the screenshot call\'s card shows the image');
  await page.goto(`${BASE}/?c=${CONVERSATION}#token=${TOKEN}`);
  const card = page.locator('.tool-card', { has: page.locator('.tool-title', { hasText: 'browser · browser_take_screenshot' }) });
  await card.locator('summary').waitFor();
  await card.locator('summary').click();
  report.chat = await decoded(card.locator('img.content-image'));
  check(report.chat.src.startsWith('blob:'), 'the image is shown from a blob URL: ' + report.chat.src);
  check(report.chat.width > 0 && report.chat.height > 0, 'the image decoded');
  await card.locator('img.content-image').scrollIntoViewIfNeeded();
  await shot(page, 'content-1-chat');

  step('the admin console shows the call with its image');
  const admin = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  admin.setDefaultTimeout(TIMEOUT);
  const root = await admin.newPage();
  watch(root, 'admin');
  await root.goto(`${BASE}/admin?call=${CALL}#token=${ADMIN_TOKEN}`);
  report.admin = await decoded(root.locator('#call-detail img.content-image'));
  check(report.admin.src.startsWith('blob:'), 'the admin image is shown from a blob URL');
  await root.locator('#call-detail img.content-image').scrollIntoViewIfNeeded();
  await shot(root, 'content-2-admin');
  await admin.close();
  await context.close();
} catch (e) {
  report.error = String(e && e.stack ? e.stack : e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(report));
process.exit(report.error ? 1 : 0);
