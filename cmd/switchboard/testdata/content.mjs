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
import { check, report, run, shot, step, watch } from '../../../internal/nodetest/pages.mjs';

const { BASE, TOKEN, ADMIN_TOKEN, CONVERSATION, CALL } = process.env;
const TIMEOUT = 20000;
report.chat = null;
report.admin = null;

// decoded waits for the image to load and returns what the page made of it.
async function decoded(img) {
  await img.waitFor();
  await img.evaluate((node) => node.decode());
  return img.evaluate((node) => ({ src: node.src, width: node.naturalWidth, height: node.naturalHeight, alt: node.alt }));
}

await run(async (browser) => {
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
  await shot(page, 'content-1-chat', { fullPage: true });

  step('the admin console shows the call with its image');
  const admin = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  admin.setDefaultTimeout(TIMEOUT);
  const root = await admin.newPage();
  watch(root, 'admin');
  await root.goto(`${BASE}/admin?call=${CALL}#token=${ADMIN_TOKEN}`);
  report.admin = await decoded(root.locator('#call-detail img.content-image'));
  check(report.admin.src.startsWith('blob:'), 'the admin image is shown from a blob URL');
  await root.locator('#call-detail img.content-image').scrollIntoViewIfNeeded();
  await shot(root, 'content-2-admin', { fullPage: true });
  await admin.close();
  await context.close();
});
