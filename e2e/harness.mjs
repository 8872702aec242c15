// Starts the real tinsel binary, an ffmpeg publisher and Debian's Chromium for
// the browser tests. Every wait has a deadline; everything started is stopped.
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

export const KEY = 'e2e-key-0123456789';

const bin = process.env.TINSEL_BIN ?? new URL('../target/release/tinsel', import.meta.url).pathname;
const siteDir = process.env.TINSEL_SITE_DIR ?? new URL('../target/site', import.meta.url).pathname;

/** Polls `check` until it answers something truthy. `what` may be a function,
 * (async) called on failure, so the error tells the state at the deadline. */
export async function waitFor(what, check, { timeoutMs = 20000, intervalMs = 100 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value) return value;
    } catch (err) {
      last = err;
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
  const described = typeof what === 'function' ? await Promise.resolve(what()).catch((err) => `? (${err})`) : what;
  throw new Error(`gave up after ${timeoutMs} ms waiting for ${described}${last ? `: ${last}` : ''}`);
}

/** A tinsel server on ports the OS picks; in a fresh data dir unless given one. */
export async function startServer(extraArgs = [], { dataDir = mkdtempSync(join(tmpdir(), 'tinsel-e2e-')) } = {}) {
  const child = spawn(bin, [
    'serve', '--rtmp-listen', '127.0.0.1:0', '--http-listen', '127.0.0.1:0', '--webrtc-udp-port', '0',
    '--data-dir', dataDir, '--site-dir', siteDir, '--stream', `tree=${KEY}`, ...extraArgs,
  ], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, RUST_LOG: 'info' } });
  const logs = [];
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => logs.push(...chunk.split('\n')));
  const address = (marker) => waitFor(`"${marker}" in the server log`, () => {
    const line = logs.find((l) => l.includes(marker));
    return line && line.split('addr=')[1].trim();
  });
  const rtmp = await address('RTMP listening');
  const http = await address('HTTP listening');
  const webrtcUdp = await address('WebRTC UDP listening');
  return {
    rtmp, http, webrtcUdp, logs, dataDir,
    url: (path = '/') => `http://${http}${path}`,
    publishUrl: `rtmp://${rtmp}/live/${KEY}`,
    async stop() {
      child.kill('SIGTERM');
      await waitFor('tinsel to exit', () => child.exitCode !== null || child.signalCode !== null, { timeoutMs: 15000 })
        .catch(() => child.kill('SIGKILL'));
    },
  };
}

/** ffmpeg publishing 720p30 H.264 + AAC like OBS. */
export function startPublisher(url) {
  const child = spawn('ffmpeg', [
    '-hide_banner', '-loglevel', 'error', '-nostdin', '-re',
    '-f', 'lavfi', '-i', 'testsrc2=size=1280x720:rate=30',
    '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000',
    '-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency', '-g', '60', '-bf', '0',
    '-b:v', '2500k', '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-b:a', '128k', '-f', 'flv', url,
  ], { stdio: 'ignore' });
  return { stop: () => child.kill('SIGKILL') };
}

/** Debian's Chromium, headless, with nothing reaching out to the internet. */
export function launchBrowser() {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run',
    ],
  });
}
