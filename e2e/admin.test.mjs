// The admin panel in headless Chromium: log in at /admin, switch an outlet,
// see the panel show the new state.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, launchBrowser, waitFor } from './harness.mjs';

const bin = process.env.TINSEL_BIN ?? new URL('../target/release/tinsel', import.meta.url).pathname;
const PASSWORD = 'e2e password 123';

let server, browser;

before(async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'tinsel-e2e-admin-'));
  const added = spawnSync(bin, ['user', 'add', 'alice', '--password-stdin', '--data-dir', dataDir], {
    input: `${PASSWORD}\n`, encoding: 'utf8', timeout: 20000,
  });
  assert.equal(added.status, 0, added.stderr);
  server = await startServer([], { dataDir });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

const outletOn = async (name) => {
  const outlets = await (await fetch(server.url('/api/lights'))).json();
  return outlets.find((o) => o.name === name)?.on;
};

test('log in at /admin, switch an outlet, and see the state change', async () => {
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (err) => errors.push(String(err)));
  const response = await page.goto(server.url('/admin'));
  assert.equal(response.status(), 200);

  // A wrong password is refused in plain words.
  await page.getByLabel('Username').fill('alice');
  await page.getByLabel('Password').fill('not the password');
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByText('wrong username or password').waitFor({ timeout: 20000 });

  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByText('Logged in as alice').waitFor({ timeout: 20000 });

  const card = page.locator('article.outlet[data-outlet="outlet-1"]');
  await card.waitFor({ timeout: 20000 });
  assert.equal(await card.getAttribute('data-state'), 'off');
  assert.equal(await card.locator('.badge.simulated').textContent(), 'simulated');
  assert.equal(await outletOn('outlet-1'), false);

  // A visitor watches while the admin switches: the page follows, pushed by the server.
  const watch = await browser.newPage();
  await watch.goto(server.url('/'));
  const bulb = watch.locator('.bulb[data-outlet="outlet-1"]');
  await waitFor('the watch page to show outlet-1 off', async () => (await bulb.getAttribute('data-state')) === 'off');

  await card.locator('button[data-action="on"]').click();
  await waitFor('the panel to show outlet-1 on', async () => (await card.getAttribute('data-state')) === 'on');
  await waitFor('the watch page to show outlet-1 on', async () => (await bulb.getAttribute('data-state')) === 'on');
  await watch.locator('.actions li', { hasText: '@alice switched outlet-1 on' }).waitFor({ timeout: 20000 });
  assert.equal(await card.locator('.badge.on').textContent(), 'on');
  assert.equal(await outletOn('outlet-1'), true, 'the server switched it');
  await page.locator('.audit td', { hasText: 'admin:alice' }).first().waitFor({ timeout: 20000 });

  await card.locator('button[data-action="off"]').click();
  await waitFor('the panel to show outlet-1 off', async () => (await card.getAttribute('data-state')) === 'off');
  assert.equal(await outletOn('outlet-1'), false);

  await waitFor('the watch page to show outlet-1 off', async () => (await bulb.getAttribute('data-state')) === 'off');

  // A flash of the dark outlet lights it for 5 s and puts it back: the
  // visitor sees it lit, then dark, and reads who did it.
  await card.locator('button[data-action="flash"]').click();
  await waitFor('the watch page to show outlet-1 lit by the flash', async () => (await bulb.getAttribute('data-state')) === 'on');
  await watch.locator('.actions li', { hasText: '@alice made outlet-1 blink' }).waitFor({ timeout: 20000 });
  await waitFor('the watch page to show outlet-1 dark after the flash', async () => (await bulb.getAttribute('data-state')) === 'off', { timeoutMs: 20000 });
  await page.locator('.audit td', { hasText: 'flashed on for 5 s (read back: on)' }).first().waitFor({ timeout: 20000 });
  await watch.close();

  // The stream health part is there, with no publisher; the outward links
  // say they are off and how to turn them on.
  await page.locator('.stream-health[data-stream="tree"]', { hasText: 'no publisher' }).waitFor({ timeout: 20000 });
  await page.locator('.links', { hasText: 'No push targets' }).waitFor({ timeout: 20000 });
  await page.locator('.tweets[data-state="off"]', { hasText: 'The tweet poller is off' }).waitFor({ timeout: 20000 });

  // Logging out brings back the form; the session is gone on the server too.
  await page.getByRole('button', { name: 'Log out' }).click();
  await page.getByRole('button', { name: 'Log in' }).waitFor({ timeout: 20000 });
  const session = await page.evaluate(async () => (await fetch('/api/session')).status);
  assert.equal(session, 401);
  assert.deepEqual(errors, []);
});

test('with no account yet, the login page says how to make the first admin', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'tinsel-e2e-noadmin-'));
  const fresh = await startServer([], { dataDir });
  const page = await browser.newPage();
  try {
    await page.goto(fresh.url('/admin'));
    const notice = page.locator('.login .first-admin');
    await notice.waitFor({ timeout: 20000 });
    assert.match(await notice.textContent(), /No admin account exists yet/);
    const command = (await notice.locator('code').textContent()).trim();
    assert.equal(command, `tinsel user add admin --password-stdin --data-dir ${dataDir}`);
    // The command does what it says: the notice is gone once the account exists.
    const added = spawnSync(bin, ['user', 'add', 'admin', '--password-stdin', '--data-dir', dataDir], {
      input: `${PASSWORD}\n`, encoding: 'utf8', timeout: 20000,
    });
    assert.equal(added.status, 0, added.stderr);
    const asked = page.waitForResponse((r) => r.url().endsWith('/api/accounts'), { timeout: 20000 });
    await page.reload();
    assert.deepEqual(await (await asked).json(), { exist: true, create_with: null });
    await page.getByRole('button', { name: 'Log in' }).waitFor({ timeout: 20000 });
    assert.equal(await notice.count(), 0);
  } finally {
    await page.close();
    await fresh.stop();
  }
});
