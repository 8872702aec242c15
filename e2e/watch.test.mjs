// The watch page in headless Chromium: the WASM app hydrates and shows the stream.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, startPublisher, launchBrowser, waitFor } from './harness.mjs';

let server, publisher, browser;

before(async () => {
  server = await startServer();
  publisher = startPublisher(server.publishUrl);
  await waitFor('the stream to go live', async () => {
    const streams = await (await fetch(server.url('/api/streams'))).json();
    return streams[0]?.live && streams[0]?.video;
  });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  publisher?.stop();
  await server?.stop();
});

test('the WASM app mounts and shows the live stream with its resolution', async () => {
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (err) => errors.push(String(err)));
  const response = await page.goto(server.url('/'));
  assert.equal(response.status(), 200);
  // The server renders a placeholder; only the hydrated WASM app fetches
  // /api/streams and fills in the card.
  const card = page.locator('article.stream[data-stream="tree"]');
  await card.waitFor({ timeout: 20000 });
  await waitFor('the card to say live', async () => (await card.getAttribute('data-state')) === 'live');
  const resolution = await page.locator('.resolution').textContent();
  assert.equal(resolution, '1280×720');
  const codec = await page.locator('.video .codec').textContent();
  assert.match(codec, /^H\.264 /);
  const wasm = await page.evaluate(() =>
    performance.getEntriesByType('resource').map((r) => r.name).filter((n) => n.endsWith('.wasm')));
  assert.equal(wasm.length, 1, 'the page loaded its WASM bundle');
  assert.deepEqual(errors, []);
  console.log(`watch page: live, ${resolution}, ${codec.trim()}, bundle ${wasm[0]}`);
});

test('a named stream has its own page and an unknown one says so', async () => {
  const page = await browser.newPage();
  await page.goto(server.url('/watch/tree'));
  await page.locator('article.stream[data-state="live"]').waitFor({ timeout: 20000 });
  await page.goto(server.url('/watch/nope'));
  await page.getByText('No such stream.').waitFor({ timeout: 20000 });
});

test('offline with no YouTube fallback: the page says offline, not "Showing YouTube"', async () => {
  const offline = await startServer();
  const page = await browser.newPage();
  try {
    await page.goto(offline.url('/'));
    await page.locator('.player .offline-card').waitFor({ timeout: 20000 });
    assert.equal(await page.locator('.stream').getAttribute('data-state'), 'offline');
    const status = (await page.locator('.player .playing').textContent()).trim();
    assert.match(status, /^Offline/);
    assert.doesNotMatch(status, /YouTube/);
    assert.equal(await page.locator('.player iframe').count(), 0);
  } finally {
    await page.close();
    await offline.stop();
  }
});
