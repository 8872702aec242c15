// WebRTC playback over WHEP in headless Chromium. Chromium gathers candidates on
// every interface but loopback, so this file runs in a private network namespace
// with one test interface of its own (see scripts/test), TINSEL_WEBRTC_IP, and the
// server offers only that address.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, startPublisher, launchBrowser, waitFor } from './harness.mjs';

let server, publisher, browser;

before(async () => {
  server = await startServer(['--webrtc-ip', process.env.TINSEL_WEBRTC_IP ?? '127.0.0.1', '--ice-server', 'stun:stun.invalid:3478']);
  publisher = startPublisher(server.publishUrl);
  await waitFor('the stream to go live', async () => (await (await fetch(server.url('/api/streams'))).json())[0]?.video);
  browser = await launchBrowser();
});

after(async () => {
  // What the server complained about, for whoever reads a failure.
  const complaints = server?.logs.filter((line) => /ERROR|WARN/.test(line)) ?? [];
  if (complaints.length) console.log(`server log:\n${complaints.join('\n')}`);
  await browser?.close();
  publisher?.stop();
  await server?.stop();
});

/** In the page: WHEP viewers of `url`; resolves with their peer connections. */
async function watch(page, url, count, { tcpOnly = false } = {}) {
  return page.evaluate(async ({ url, count, tcpOnly }) => {
    window.viewers = [];
    for (let i = 0; i < count; i++) {
      const pc = new RTCPeerConnection();
      pc.addTransceiver('video', { direction: 'recvonly' });
      pc.addTransceiver('audio', { direction: 'recvonly' });
      const video = document.createElement('video');
      video.muted = true;
      video.autoplay = true;
      video.playsInline = true;
      document.body.append(video);
      pc.ontrack = (event) => { video.srcObject = event.streams[0] ?? new MediaStream([event.track]); };
      await pc.setLocalDescription(await pc.createOffer());
      await new Promise((resolve) => {
        if (pc.iceGatheringState === 'complete') return resolve();
        pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && resolve();
        setTimeout(resolve, 2000);
      });
      const response = await fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: pc.localDescription.sdp });
      if (response.status !== 201) throw new Error(`WHEP answered ${response.status}: ${await response.text()}`);
      const location = response.headers.get('Location');
      window.links = response.headers.get('Link');
      let answer = await response.text();
      // As if UDP were blocked: keep only the server's TCP candidates.
      if (tcpOnly) answer = answer.split('\r\n').filter((l) => !l.startsWith('a=candidate') || / tcp /i.test(l)).join('\r\n');
      await pc.setRemoteDescription({ type: 'answer', sdp: answer });
      window.viewers.push({ pc, video, location });
    }
  }, { url, count, tcpOnly });
}

async function stats(page) {
  return page.evaluate(async () => Promise.all(window.viewers.map(async ({ pc, video }) => {
    const report = await pc.getStats();
    const out = { state: pc.connectionState, width: video.videoWidth, frames: video.getVideoPlaybackQuality().totalVideoFrames };
    let pair;
    report.forEach((s) => { if (s.type === 'transport' && s.selectedCandidatePairId) pair = report.get(s.selectedCandidatePairId); });
    const remote = pair && report.get(pair.remoteCandidateId);
    out.remote = remote ? `${remote.protocol} ${remote.address}:${remote.port}` : null;
    report.forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video') {
        out.framesDecoded = s.framesDecoded;
        out.jitterBufferMs = s.jitterBufferEmittedCount ? (1000 * s.jitterBufferDelay) / s.jitterBufferEmittedCount : null;
        out.playout = s.estimatedPlayoutTimestamp ?? null;
      }
      if (s.type === 'inbound-rtp' && s.kind === 'audio') {
        out.audioPackets = s.packetsReceived;
        out.audioSamples = s.totalSamplesReceived;
      }
    });
    return out;
  })));
}

test('Chromium plays the stream over WHEP with sound for 20 s', async () => {
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (err) => errors.push(String(err)));
  await page.goto(server.url('/healthz'));
  await watch(page, server.url('/whep/tree'), 1);
  await waitFor('video frames', async () => (await stats(page))[0].framesDecoded > 10, { timeoutMs: 20000 });
  const start = (await stats(page))[0];
  await new Promise((resolve) => setTimeout(resolve, 20000));
  const end = (await stats(page))[0];
  const fps = (end.framesDecoded - start.framesDecoded) / 20;
  // Latency, by the sender's clock: RTCP sender reports tie RTP time to the
  // server's wall clock when it sent the media; Chromium's
  // estimatedPlayoutTimestamp is that wall-clock time of the frame it shows now.
  // Browser and server share this machine's clock, so now minus it is how far
  // behind the server's send the picture on screen is. Media reaches the
  // server from the publisher over loopback and leaves within a frame.
  const lags = [];
  for (let i = 0; i < 10; i++) {
    const lag = await page.evaluate(async () => {
      const report = await window.viewers[0].pc.getStats();
      let lag = null;
      report.forEach((s) => {
        if (s.type === 'inbound-rtp' && s.kind === 'video' && s.estimatedPlayoutTimestamp) {
          lag = (performance.timeOrigin + performance.now()) - (s.estimatedPlayoutTimestamp - 2208988800000);
        }
      });
      return lag;
    });
    if (lag !== null) lags.push(lag);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  lags.sort((a, b) => a - b);
  console.log(`WebRTC latency behind the server's send (median of ${lags.length}): ${lags.length ? lags[lags.length >> 1].toFixed(0) : 'n/a'} ms`);
  console.log(`WebRTC: ${end.width} px wide, ${fps.toFixed(1)} fps decoded over 20 s, ${end.audioPackets} audio packets, jitter buffer ${end.jitterBufferMs?.toFixed(0)} ms`);
  assert.equal(end.width, 1280);
  assert.ok(fps > 25, `decoded ${fps} fps`);
  assert.ok(end.audioPackets > 20 * 40, `audio packets: ${end.audioPackets}`);
  assert.deepEqual(errors, []);
  const count = async () => (await (await fetch(server.url('/api/streams'))).json())[0].viewers.webrtc;
  assert.equal(await count(), 1);
  assert.equal(await page.evaluate(() => window.links), '<stun:stun.invalid:3478>; rel="ice-server"');
  // WHEP's way out: DELETE on the session's Location.
  const location = await page.evaluate(() => window.viewers[0].location);
  assert.equal((await fetch(server.url(location), { method: 'DELETE' })).status, 200);
  await waitFor('the session to end', async () => (await count()) === 0);
  assert.equal((await fetch(server.url(location), { method: 'DELETE' })).status, 404);
  await page.close();
});

test('20 viewers at once, and one that vanishes without DELETE is cleaned up', async () => {
  const page = await browser.newPage();
  await page.goto(server.url('/healthz'));
  await watch(page, server.url('/whep/tree'), 20);
  await waitFor('all 20 decoding', async () => (await stats(page)).every((s) => s.framesDecoded > 30), { timeoutMs: 30000 });
  const count = async () => (await (await fetch(server.url('/api/streams'))).json())[0].viewers.webrtc;
  assert.equal(await count(), 20);
  // One UDP port on the server for all of them (a load balancer needs one).
  const port = server.webrtcUdp.split(':').pop();
  const remotes = new Set((await stats(page)).map((s) => s.remote));
  assert.deepEqual([...remotes], [`udp ${process.env.TINSEL_WEBRTC_IP ?? '127.0.0.1'}:${port}`]);
  console.log(`20 WHEP viewers all decoding, all from ${[...remotes][0]}`);
  await page.close();
  await waitFor('the vanished viewers to be cleaned up', async () => (await count()) === 0, { timeoutMs: 60000 });
});

test('the shared UDP port also works bound to every address (the default)', async () => {
  // In this namespace the only address besides loopback is the test one.
  const wide = await startServer(['--webrtc-ip', '0.0.0.0']);
  const widePublisher = startPublisher(wide.publishUrl);
  try {
    await waitFor('the stream to go live', async () => (await (await fetch(wide.url('/api/streams'))).json())[0]?.video);
    const page = await browser.newPage();
    await page.goto(wide.url('/healthz'));
    await watch(page, wide.url('/whep/tree'), 2);
    await waitFor('both decoding', async () => (await stats(page)).every((s) => s.framesDecoded > 30), { timeoutMs: 30000 });
    const port = wide.webrtcUdp.split(':').pop();
    for (const s of await stats(page)) assert.match(s.remote, new RegExp(`^udp [0-9.]+:${port}$`));
    console.log(`bound to 0.0.0.0: 2 viewers decoding from ${(await stats(page))[0].remote}`);
    await page.close();
  } finally {
    widePublisher.stop();
    await wide.stop();
  }
});

test('behind 1:1 NAT the answer names the public address on the shared port', async () => {
  const natted = await startServer(['--webrtc-ip', process.env.TINSEL_WEBRTC_IP ?? '127.0.0.1', '--webrtc-public-ip', '203.0.113.9']);
  const nattedPublisher = startPublisher(natted.publishUrl);
  try {
    await waitFor('the stream to go live', async () => (await (await fetch(natted.url('/api/streams'))).json())[0]?.video);
    const page = await browser.newPage();
    await page.goto(natted.url('/healthz'));
    const answer = await page.evaluate(async (url) => {
      const pc = new RTCPeerConnection();
      pc.addTransceiver('video', { direction: 'recvonly' });
      await pc.setLocalDescription(await pc.createOffer());
      const response = await fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: pc.localDescription.sdp });
      await fetch(new URL(response.headers.get('Location'), url), { method: 'DELETE' });
      return response.text();
    }, natted.url('/whep/tree'));
    const udp = answer.split('\r\n').filter((l) => l.startsWith('a=candidate') && / udp /i.test(l));
    const port = natted.webrtcUdp.split(':').pop();
    assert.ok(udp.length > 0, answer);
    for (const line of udp) assert.match(line, new RegExp(` 203\\.0\\.113\\.9 ${port} typ host`));
    await page.close();
  } finally {
    nattedPublisher.stop();
    await natted.stop();
  }
});

test('ICE over TCP when UDP is out of reach', async () => {
  const page = await browser.newPage();
  await page.goto(server.url('/healthz'));
  await watch(page, server.url('/whep/tree'), 1, { tcpOnly: true });
  await waitFor('video frames over TCP', async () => (await stats(page))[0].framesDecoded > 30, { timeoutMs: 30000 });
  const protocol = await page.evaluate(async () => {
    const report = await window.viewers[0].pc.getStats();
    let pair;
    report.forEach((s) => { if (s.type === 'transport' && s.selectedCandidatePairId) pair = report.get(s.selectedCandidatePairId); });
    return pair && report.get(pair.remoteCandidateId)?.protocol;
  });
  assert.equal(protocol, 'tcp');
  console.log('WebRTC over ICE-TCP: decoding');
  await page.close();
});

test('bad requests say why', async () => {
  const post = (path, body, type = 'application/sdp') =>
    fetch(server.url(path), { method: 'POST', headers: { 'Content-Type': type }, body });
  assert.equal((await post('/whep/nope', 'v=0\r\n')).status, 404);
  const garbage = await post('/whep/tree', 'hello');
  assert.equal(garbage.status, 400);
  assert.match((await garbage.json()).error, /SDP/);
  assert.equal((await post('/whep/tree', 'v=0\r\n', 'text/plain')).status, 415);
  const patch = await fetch(server.url('/whep/tree/0123'), { method: 'PATCH' });
  assert.equal(patch.status, 405);
});
