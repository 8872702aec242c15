// LL-HLS in headless Chromium with hls.js (the version the web app bundles), in
// low-latency mode: it plays, and its latency estimate stays low.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { startServer, startPublisher, launchBrowser, waitFor } from './harness.mjs';

const hlsScript = createRequire(import.meta.url).resolve('hls.js/dist/hls.min.js');
let server, publisher, browser;

before(async () => {
  server = await startServer();
  publisher = startPublisher(server.publishUrl);
  await waitFor('a playlist with a segment', async () => (await fetch(server.url('/hls/tree/index.m3u8'))).ok);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  publisher?.stop();
  await server?.stop();
});

test('hls.js plays LL-HLS within 2.5 s of live for 30 s', async () => {
  const page = await browser.newPage();
  // A page on another origin than the server: CORS is part of what is tested.
  await page.setContent('<video id="v" muted autoplay playsinline></video>');
  await page.addScriptTag({ path: hlsScript });
  const src = server.url('/hls/tree/index.m3u8');
  await page.evaluate((src) => {
    const video = document.getElementById('v');
    const hls = new Hls({ lowLatencyMode: true });
    window.errors = [];
    hls.on(Hls.Events.ERROR, (_, data) => { if (data.fatal) window.errors.push(data.details); });
    hls.loadSource(src);
    hls.attachMedia(video);
    window.hls = hls;
  }, src);
  await waitFor('playback to start', () => page.evaluate(() => document.getElementById('v').currentTime > 0.5), { timeoutMs: 20000 });

  const samples = [];
  const deadline = Date.now() + 30000;
  while (Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    samples.push(await page.evaluate(() => ({
      latency: window.hls.latency,
      time: document.getElementById('v').currentTime,
      frames: document.getElementById('v').getVideoPlaybackQuality().totalVideoFrames,
      width: document.getElementById('v').videoWidth,
    })));
  }
  const latencies = samples.map((s) => s.latency);
  const frames = samples.at(-1).frames - samples[0].frames;
  console.log(`hls.js latency over 30 s (s): ${latencies.map((l) => l.toFixed(2)).join(' ')}`);
  console.log(`max ${Math.max(...latencies).toFixed(2)} s, ${frames} frames decoded in ${samples.length - 1} s, ${samples[0].width} px wide`);
  assert.deepEqual(await page.evaluate(() => window.errors), []);
  assert.ok(Math.max(...latencies) < 2.5, `latency stayed under 2.5 s: ${latencies}`);
  assert.ok(frames > 25 * (samples.length - 1), `video kept playing: ${frames} frames`);
  assert.equal(samples[0].width, 1280);
});
