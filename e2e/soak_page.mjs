// The watch page kept open in headless Chromium for a soak, as an evening's
// viewer leaves it: one page, never reloaded, for SECONDS. Every 10 s it
// prints one JSON line: seconds since the start, the player's mode and the
// video frames decoded so far. server/tests/soak.rs starts it and judges the
// lines; it can be run by hand against any server too.
//
//   node soak_page.mjs http://192.0.2.1:8080/ 7200
import { launchBrowser } from './harness.mjs';

const [url, seconds] = process.argv.slice(2);
if (!url || !(Number(seconds) > 0)) {
  console.error('usage: node soak_page.mjs URL SECONDS');
  process.exit(2);
}
const host = new URL(url).hostname;
const browser = await launchBrowser();
const context = await browser.newContext();
// Only the server itself: a fallback embed would reach past this machine.
await context.route('**/*', (route) =>
  new URL(route.request().url()).hostname === host ? route.continue() : route.abort('blockedbyclient'));
const page = await context.newPage();
const errors = [];
page.on('pageerror', (err) => errors.push(String(err)));
const started = Date.now();
await page.goto(url);
const end = started + Number(seconds) * 1000;
while (Date.now() < end) {
  // A sampling period, not a wait for a condition: the page runs on its own.
  await new Promise((resolve) => setTimeout(resolve, Math.min(10000, Math.max(0, end - Date.now()))));
  const state = await page.evaluate(() => {
    const video = document.querySelector('.player video');
    return {
      mode: document.querySelector('.player')?.getAttribute('data-mode') ?? null,
      frames: video ? video.getVideoPlaybackQuality().totalVideoFrames : 0,
    };
  });
  console.log(JSON.stringify({ t: Math.round((Date.now() - started) / 1000), ...state, errors: errors.length }));
}
for (const err of errors.slice(0, 5)) console.error(`page error: ${err}`);
await browser.close();
