// The watch page's player in headless Chromium: it picks WebRTC, falls back to
// LL-HLS when WebRTC fails, shows the YouTube embed while the stream is offline
// and goes live by itself when the publisher comes back, all without a reload.
// Also: phone and TV layouts (screenshots), the pushed status, and the size of
// what the page downloads. Like webrtc.test.mjs this file runs in a network
// namespace of its own (see scripts/test), with TINSEL_WEBRTC_IP.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, startPublisher, launchBrowser, waitFor } from './harness.mjs';
import { startSnmpd } from './snmpd.mjs';

const YOUTUBE_ID = 'tinselTree1';
const screenshots = new URL('../target/e2e-screenshots/', import.meta.url).pathname;
const webrtcIp = process.env.TINSEL_WEBRTC_IP ?? '127.0.0.1';

let server, publisher, browser;

/** A server with this config file (TOML) besides the harness's flags. */
function serverWith(toml) {
  const config = join(mkdtempSync(join(tmpdir(), 'tinsel-player-')), 'tinsel.toml');
  writeFileSync(config, toml);
  return startServer(['--config', config, '--webrtc-ip', webrtcIp]);
}

/** A server whose config names a YouTube fallback video. */
const serverWithFallback = () => serverWith(`youtube_fallback = "${YOUTUBE_ID}"\n`);

before(async () => {
  server = await serverWithFallback();
  publisher = startPublisher(server.publishUrl);
  await waitFor('the stream to go live', async () => (await (await fetch(server.url('/api/streams'))).json())[0]?.video);
  browser = await launchBrowser();
  mkdirSync(screenshots, { recursive: true });
});

after(async () => {
  const complaints = server?.logs.filter((line) => /ERROR|WARN/.test(line)) ?? [];
  if (complaints.length) console.log(`server log:\n${complaints.join('\n')}`);
  await browser?.close();
  publisher?.stop();
  await server?.stop();
});

/** A browser context in which nothing reaches past this machine: YouTube gets a stand-in page. */
async function offlineContext(options = {}) {
  const context = await browser.newContext(options);
  const youtube = [];
  await context.route('**/*', (route) => {
    const url = new URL(route.request().url());
    if (url.hostname === '127.0.0.1' || url.hostname === 'localhost') return route.continue();
    if (url.hostname === 'www.youtube.com') {
      youtube.push(url.href);
      return route.fulfill({ status: 200, contentType: 'text/html', body: '<p>YouTube stand-in</p>' });
    }
    return route.abort('blockedbyclient');
  });
  return { context, youtube };
}

const mode = (page) => page.locator('.player').getAttribute('data-mode');
const frames = (page) => page.evaluate(() => document.querySelector('.player video').getVideoPlaybackQuality().totalVideoFrames);

/** Opens the page and waits for `want` to play; answers the time to the first frame. */
async function playsOver(page, url, want) {
  const start = Date.now();
  const messages = [];
  page.on('console', (message) => messages.push(`${message.type()}: ${message.text()}`));
  await page.goto(url);
  const state = async () => `the player to play over ${want} (mode now: ${await mode(page).catch(() => '?')}, `
    + `frames: ${await frames(page).catch(() => '?')}, page console: ${JSON.stringify(messages.slice(-10))})`;
  await waitFor(state, async () =>
    (await mode(page)) === want && (await frames(page)) > 0, { timeoutMs: 30000, intervalMs: 50 });
  const firstFrame = Date.now() - start;
  const before = await frames(page);
  await waitFor('frames to keep coming', async () => (await frames(page)) > before + 30, { timeoutMs: 10000 });
  return firstFrame;
}

test('the page picks WebRTC and plays', async () => {
  const { context } = await offlineContext();
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (err) => errors.push(String(err)));
  const firstFrame = await playsOver(page, server.url('/'), 'WebRTC');
  assert.match(await page.locator('.playing .mode').textContent(), /Playing over WebRTC/);
  await waitFor('a latency estimate', async () => /behind live/.test(await page.locator('.playing').textContent()));
  await waitFor('the page to count this viewer', async () =>
    Number(await page.locator('.viewers .count').textContent()) >= 1);
  const latency = await page.locator('.playing .latency').textContent();
  // With no PDU configured, the simulated outlets, labelled so.
  const outlets = await (await fetch(server.url('/api/lights'))).json();
  await waitFor('a bulb per outlet', async () => (await page.locator('.bulb').count()) === outlets.length);
  assert.equal(await page.locator('.bulb .tag', { hasText: 'simulated' }).count(), outlets.length);
  console.log(`WebRTC: first frame ${firstFrame} ms after navigation; page says "${latency}"`);
  assert.deepEqual(errors, []);
  await context.close();
  // Leaving the page ends the WHEP session on the server.
  await waitFor('the WebRTC session to end', async () =>
    (await (await fetch(server.url('/api/streams'))).json())[0].viewers.webrtc === 0, { timeoutMs: 30000 });
});

test('with WebRTC failing, the page plays over HLS by itself', async () => {
  const { context } = await offlineContext();
  await context.route('**/whep/**', (route) =>
    route.fulfill({ status: 503, contentType: 'application/json', body: '{"error":"made to fail"}' }));
  const page = await context.newPage();
  const firstFrame = await playsOver(page, server.url('/watch/tree'), 'HLS');
  await waitFor('an HLS latency estimate', async () => /behind live/.test(await page.locator('.playing').textContent()));
  const latency = await page.locator('.playing .latency').textContent();
  const hlsJs = await page.evaluate(() => performance.getEntriesByType('resource').map((r) => r.name).filter((n) => n.includes('/vendor/hls')));
  assert.equal(hlsJs.length, 1, 'hls.js came from the app');
  console.log(`HLS after WebRTC failed: first frame ${firstFrame} ms after navigation; page says "${latency}"`);
  await context.close();
});

test('the visitor can pick a mode by hand', async () => {
  const { context } = await offlineContext();
  const page = await context.newPage();
  await playsOver(page, server.url('/'), 'WebRTC');
  await page.getByRole('button', { name: 'HLS', exact: true }).click();
  const before = Date.now();
  await waitFor('HLS frames', async () => (await mode(page)) === 'HLS' && (await frames(page)) > 30, { timeoutMs: 20000 });
  console.log(`switched to HLS by hand: playing again in ${Date.now() - before} ms`);
  assert.equal(await page.getByRole('button', { name: 'HLS', exact: true }).getAttribute('aria-pressed'), 'true');
  await context.close();
});

test('a network change restarts WebRTC without a reload', async () => {
  const { context } = await offlineContext();
  const page = await context.newPage();
  const offers = [];
  page.on('request', (r) => { if (r.method() === 'POST' && r.url().includes('/whep/')) offers.push(r.url()); });
  await playsOver(page, server.url('/'), 'WebRTC');
  assert.equal(offers.length, 1);
  await page.evaluate(() => { window.sameDocument = true; window.dispatchEvent(new Event('online')); });
  await waitFor('a new WHEP offer', () => offers.length === 2);
  const before = await frames(page);
  await waitFor('frames again over WebRTC', async () => (await mode(page)) === 'WebRTC' && (await frames(page)) > before + 30, { timeoutMs: 20000 });
  assert.equal(await page.evaluate(() => window.sameDocument), true, 'no reload');
  await context.close();
});

test('offline: the YouTube embed; the publisher back: live playback without a reload', async () => {
  const offline = await serverWithFallback();
  const { context, youtube } = await offlineContext();
  const page = await context.newPage();
  let back;
  try {
    await page.goto(offline.url('/'));
    const iframe = page.locator('.player iframe.youtube');
    await iframe.waitFor({ timeout: 20000 });
    assert.equal(await iframe.getAttribute('src'),
      `https://www.youtube.com/embed/${YOUTUBE_ID}?autoplay=1&mute=1&playsinline=1`);
    await waitFor('the embed to load (from the stand-in)', () => youtube.length > 0);
    assert.equal(await page.locator('.stream').getAttribute('data-state'), 'offline');
    await page.evaluate(() => { window.sameDocument = true; });

    back = startPublisher(offline.publishUrl);
    const start = Date.now();
    await waitFor('live playback', async () => (await mode(page)) === 'WebRTC' && (await frames(page)) > 10, { timeoutMs: 30000 });
    console.log(`publisher back: the page played live ${Date.now() - start} ms after ffmpeg started`);
    assert.equal(await page.evaluate(() => window.sameDocument), true, 'no reload');
    assert.equal(await iframe.count(), 0);
    assert.equal(await page.locator('.stream').getAttribute('data-state'), 'live');

    back.stop();
    back = undefined;
    await waitFor('the embed again after the publisher left', async () => (await mode(page)) === 'YouTube', { timeoutMs: 15000 });
    assert.equal(await page.evaluate(() => window.sameDocument), true, 'no reload');
  } finally {
    back?.stop();
    await context.close();
    await offline.stop();
  }
});

/** Layout checks a visitor would make: nothing sticks out, the player is as wide as the page allows. */
async function checkLayout(page, name) {
  const layout = await page.evaluate(() => {
    const box = (selector) => document.querySelector(selector).getBoundingClientRect();
    const main = document.querySelector('main');
    const style = getComputedStyle(main);
    const content = main.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
    const small = [...document.querySelectorAll('.player button, .side a.button, .side button')]
      .filter((el) => el.getBoundingClientRect().height < 44 || el.getBoundingClientRect().width < 44)
      .map((el) => el.textContent);
    return {
      innerWidth, scrollWidth: document.documentElement.scrollWidth,
      content, stage: box('.stage').width, video: box('.player video').width, small,
    };
  });
  await page.screenshot({ path: join(screenshots, `${name}.png`), fullPage: true });
  console.log(`${name}: ${JSON.stringify(layout)} -> ${join(screenshots, `${name}.png`)}`);
  assert.ok(layout.scrollWidth <= layout.innerWidth, `nothing overflows: ${layout.scrollWidth} > ${layout.innerWidth}`);
  assert.ok(Math.abs(layout.video - layout.stage) < 1, `the video fills its column: ${layout.video} vs ${layout.stage}`);
  assert.deepEqual(layout.small, [], 'every control is at least 44 px');
  return layout;
}

test('a phone at 390×844: the player fills the width, nothing overflows', async () => {
  const { context } = await offlineContext({
    viewport: { width: 390, height: 844 }, deviceScaleFactor: 3, isMobile: true, hasTouch: true,
    userAgent: 'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36',
  });
  const page = await context.newPage();
  await playsOver(page, server.url('/'), 'WebRTC');
  await page.locator('.unmute').waitFor();
  const layout = await checkLayout(page, 'phone-390x844');
  assert.ok(Math.abs(layout.video - layout.content) < 1, `full content width: ${layout.video} vs ${layout.content}`);
  // Tap to unmute: the button goes, the video has sound.
  await page.locator('.unmute').tap();
  await waitFor('sound on', () => page.evaluate(() => !document.querySelector('.player video').muted));
  assert.equal(await page.locator('.unmute').count(), 0);
  await context.close();
});

test('a 320 px phone and a 1920×1080 screen', async () => {
  for (const [name, viewport] of [['phone-320x640', { width: 320, height: 640 }], ['tv-1920x1080', { width: 1920, height: 1080 }]]) {
    const { context } = await offlineContext({ viewport });
    const page = await context.newPage();
    await playsOver(page, server.url('/'), 'WebRTC');
    const layout = await checkLayout(page, name);
    if (viewport.width >= 1024) assert.ok(layout.video > 0.6 * layout.content, `the player dominates: ${layout.video} of ${layout.content}`);
    else assert.ok(Math.abs(layout.video - layout.content) < 1);
    await context.close();
  }
});

/** GET with only the given Accept-Encoding; answers the status, headers and bytes on the wire. */
function rawGet(url, headers) {
  return new Promise((resolve, reject) => {
    request(url, { headers }, (res) => {
      let bytes = 0;
      res.on('data', (chunk) => { bytes += chunk.length; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, bytes }));
    }).on('error', reject).end();
  });
}

test('the bundle is compressed and cacheable; its sizes', async () => {
  // The page names the bundle's files by their content hashes.
  const page = await (await fetch(server.url('/'))).text();
  const bundle = ['wasm', 'js', 'css'].map((kind) => {
    const file = page.match(new RegExp(`/pkg/tinsel\\.[\\w-]+\\.${kind}`))?.[0];
    assert.ok(file, `the page names the ${kind} file`);
    return file;
  });
  const sizes = {};
  for (const file of [...bundle, '/vendor/hls.light-1.7.4.min.js']) {
    const plain = await rawGet(server.url(file), {});
    assert.equal(plain.status, 200, file);
    const gzip = await rawGet(server.url(file), { 'Accept-Encoding': 'gzip' });
    const br = await rawGet(server.url(file), { 'Accept-Encoding': 'br' });
    assert.equal(gzip.headers['content-encoding'], 'gzip', file);
    assert.equal(br.headers['content-encoding'], 'br', file);
    sizes[file] = { plain: plain.bytes, gzip: gzip.bytes, br: br.bytes, cache: plain.headers['cache-control'] };
    // Asking again costs a 304, not the file.
    const again = await rawGet(server.url(file), { 'If-Modified-Since': plain.headers['last-modified'] });
    assert.equal(again.status, 304, `${file} revalidates`);
  }
  for (const [file, s] of Object.entries(sizes)) {
    console.log(`${file}: ${(s.plain / 1024).toFixed(0)} KiB, gzip ${(s.gzip / 1024).toFixed(0)} KiB, brotli ${(s.br / 1024).toFixed(0)} KiB, Cache-Control: ${s.cache}`);
  }
  for (const file of Object.keys(sizes)) {
    assert.equal(sizes[file].cache, 'public, max-age=31536000, immutable', file);
  }
});

test('the lights on the page follow the PDU within a second of the server', async () => {
  const pdu = await startSnmpd();
  const lit = await serverWith(`lights_poll_s = 1
[[pdu]]
name = "pdu1"
address = "${pdu.address}"
community = "private"
model = "apc"
[[outlet]]
name = "tree-lights"
pdu = "pdu1"
index = 1
[[outlet]]
name = "star"
pdu = "pdu1"
index = 2
`);
  const { context } = await offlineContext();
  const page = await context.newPage();
  try {
    await page.goto(lit.url('/'));
    const bulb = page.locator('.bulb[data-outlet="tree-lights"]');
    await waitFor('the bulb to show off', async () => (await bulb.getAttribute('data-state')) === 'off');
    assert.equal(await page.locator('.bulb[data-outlet="star"]').getAttribute('data-state'), 'off');
    // When the page shows the change, by the machine's clock.
    await page.evaluate(() => {
      const el = document.querySelector('.bulb[data-outlet="tree-lights"]');
      new MutationObserver(() => {
        const now = document.querySelector('.bulb[data-outlet="tree-lights"]');
        if (now?.dataset.state === 'on' && !window.litAt) window.litAt = performance.timeOrigin + performance.now();
      }).observe(el.parentElement.parentElement, { subtree: true, childList: true, attributes: true });
    });
    const switched = Date.now();
    await pdu.set(1, 1); // someone at the PDU switches the tree on
    const serverAt = await waitFor('the server to see it', async () => {
      const outlets = await (await fetch(lit.url('/api/lights'))).json();
      return outlets.find((o) => o.name === 'tree-lights')?.on === true && Date.now();
    }, { intervalMs: 20, timeoutMs: 10000 });
    const pageAt = await waitFor('the page to show it', () => page.evaluate(() => window.litAt), { timeoutMs: 5000 });
    console.log(`lights: PDU switched -> server ${serverAt - switched} ms (its poll), server -> page ${Math.round(pageAt - serverAt)} ms (the test reads /api/lights every 20 ms)`);
    assert.ok(pageAt - serverAt < 1000, `the page followed the server within 1 s: ${pageAt - serverAt} ms`);
    assert.equal(await page.locator('.bulb[data-outlet="tree-lights"] .state').textContent(), 'on');
  } finally {
    await context.close();
    await lit.stop();
    pdu.stop();
  }
});
