// The watch page served by an edge: it plays over WebRTC from the edge's own
// hub and shows the origin's lights. Runs in the browser tests' network
// namespace (see scripts/test): TINSEL_WEBRTC_IP is the address offered.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, startPublisher, launchBrowser, waitFor } from './harness.mjs';

const SECRET = 'e2e-cluster-secret-0123456789';
const ip = process.env.TINSEL_WEBRTC_IP ?? '127.0.0.1';
let origin, edge, publisher, browser;

before(async () => {
  origin = await startServer(['--cluster-secret', SECRET, '--webrtc-ip', ip]);
  edge = await startServer([
    '--cluster-secret', SECRET, '--webrtc-ip', ip,
    '--origin', `rtmp://${origin.rtmp}`, '--origin-http', `http://${origin.http}`,
  ]);
  publisher = startPublisher(origin.publishUrl);
  await waitFor('the stream live on the origin', async () =>
    (await (await fetch(origin.url('/api/streams'))).json())[0]?.video);
  browser = await launchBrowser();
});

after(async () => {
  for (const [name, server] of [['origin', origin], ['edge', edge]]) {
    const complaints = server?.logs.filter((line) => /ERROR|WARN/.test(line)) ?? [];
    if (complaints.length) console.log(`${name} log:\n${complaints.join('\n')}`);
  }
  await browser?.close();
  publisher?.stop();
  await edge?.stop();
  await origin?.stop();
});

test("an edge's watch page plays over WebRTC and shows the origin's lights", async () => {
  const context = await browser.newContext();
  // Nothing past this machine (the YouTube embed is not needed: the stream is live).
  await context.route('**/*', (route) => {
    const { hostname } = new URL(route.request().url());
    return hostname === '127.0.0.1' ? route.continue() : route.abort('blockedbyclient');
  });
  const page = await context.newPage();
  const start = Date.now();
  await page.goto(edge.url('/'));
  const mode = () => page.locator('.player').getAttribute('data-mode');
  const frames = () => page.evaluate(() => document.querySelector('.player video').getVideoPlaybackQuality().totalVideoFrames);
  // The page opening is a viewer arriving: the on-demand edge starts pulling.
  await waitFor(async () => `WebRTC frames (mode ${await mode().catch(() => '?')})`,
    async () => (await mode()) === 'WebRTC' && (await frames()) > 0, { timeoutMs: 30000, intervalMs: 50 });
  const firstFrame = Date.now() - start;
  const before = await frames();
  await waitFor('frames to keep coming', async () => (await frames()) > before + 30, { timeoutMs: 10000 });
  // The media came from the edge: its WebRTC viewer, not the origin's.
  const edgeStatus = (await (await fetch(edge.url('/api/streams'))).json())[0];
  const originStatus = (await (await fetch(origin.url('/api/streams'))).json())[0];
  assert.equal(edgeStatus.viewers.webrtc, 1);
  assert.equal(originStatus.viewers.webrtc, 0);
  // The origin's outlets, relayed: a bulb for each.
  const outlets = await (await fetch(origin.url('/api/lights'))).json();
  await waitFor('a bulb per origin outlet', async () => (await page.locator('.bulb').count()) === outlets.length);
  for (const outlet of outlets) {
    assert.equal(await page.locator(`.bulb[data-outlet="${outlet.name}"]`).count(), 1);
  }
  console.log(`edge watch page: first WebRTC frame ${firstFrame} ms after navigation (the pull starting included)`);
  await context.close();
});
