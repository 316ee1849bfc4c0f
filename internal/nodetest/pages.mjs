// What the browser tests' scripts share: Debian's Chromium launched with
// playwright-core, a report of the steps taken, the screenshots saved and
// the errors the pages logged, printed as JSON when the script ends (with
// the first failure, if any, and a non-zero exit).
//
// Environment: CHROMIUM (the browser), SHOTS (the screenshot directory).
import { chromium } from 'playwright-core';

/** The report the script prints; scripts add fields of their own. */
export const report = { steps: [], screenshots: [], consoleErrors: [] };

/** check fails the script with what when cond is false. */
export function check(cond, what) {
  if (!cond) throw new Error('check failed: ' + what);
}

/** step records the step the script is at (also on stderr, for the test's log). */
export function step(name) {
  report.steps.push(name);
  console.error('step:', name);
}

/** shot saves a screenshot of page as SHOTS/name.png. */
export async function shot(page, name, options = {}) {
  const path = `${process.env.SHOTS}/${name}.png`;
  await page.screenshot({ path, ...options });
  report.screenshots.push(path);
}

/**
 * watch records what page logs as an error, labelled: script errors, CSP
 * violations, failed requests. net::ERR_ABORTED is the browser cancelling a
 * request itself (a navigation or reload leaving a load behind, a window
 * closing, Stop aborting its fetch), not a failure of ours: those show as
 * another error or as an HTTP status, which the pages report on their own.
 */
export function watch(page, label, sink = report.consoleErrors) {
  page.on('console', (m) => { if (m.type() === 'error') sink.push(`${label}: console: ${m.text()}`); });
  page.on('pageerror', (e) => sink.push(`${label}: page error: ${e.message}`));
  page.on('requestfailed', (r) => {
    const why = r.failure() && r.failure().errorText;
    if (why === 'net::ERR_ABORTED') return;
    sink.push(`${label}: request failed: ${r.url()} ${why}`);
  });
}

/**
 * run launches the browser headless, runs body with it, and prints the
 * report: an exception ends the script with it as the report's error.
 * @param {(browser: import('playwright-core').Browser) => Promise<void>} body
 */
export async function run(body) {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
  try {
    await body(browser);
  } catch (e) {
    report.error = String(e && e.stack ? e.stack : e);
  } finally {
    await browser.close();
  }
  console.log(JSON.stringify(report));
  process.exit(report.error ? 1 : 0);
}
