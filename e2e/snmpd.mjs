// net-snmp's snmpd as the tree's PDU: a pass_persist script serves APC's
// sPDUOutletCtl column for four outlets (1 on, 2 off; 3, reboot, ends on),
// and snmpset switches one from outside, as a person at the PDU would.
import { spawn, execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createSocket } from 'node:dgram';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { waitFor } from './harness.mjs';

export const OUTLET_CTL = '.1.3.6.1.4.1.318.1.1.4.4.2.1.3';

// The same outlet table the Rust tests use.
const PASS_PERSIST = readFileSync(new URL('../server/tests/data/apc-outlets.py', import.meta.url), 'utf8');

async function freeUdpPort() {
  const socket = createSocket('udp4');
  await new Promise((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const { port } = socket.address();
  await new Promise((resolve) => socket.close(resolve));
  return port;
}

const run = promisify(execFile);
const env = { ...process.env, MIBS: '' };

export async function startSnmpd() {
  const dir = mkdtempSync(join(tmpdir(), 'tinsel-snmpd-'));
  const script = join(dir, 'apc-outlets');
  writeFileSync(script, PASS_PERSIST);
  chmodSync(script, 0o755);
  const config = join(dir, 'snmpd.conf');
  writeFileSync(config, `rocommunity public 127.0.0.1\nrwcommunity private 127.0.0.1\npass_persist ${OUTLET_CTL} ${script} ${join(dir, 'outlets')}\n`);
  const port = await freeUdpPort();
  const address = `127.0.0.1:${port}`;
  const child = spawn('/usr/sbin/snmpd', ['-f', '-Lo', '-C', '-c', config, `udp:${address}`], {
    stdio: 'ignore', env: { ...env, SNMP_PERSISTENT_DIR: join(dir, 'persist'), MIBDIRS: dir },
  });
  const get = async (outlet) => {
    const { stdout } = await run('snmpget', ['-v2c', '-c', 'public', '-t', '1', '-r', '0', '-Oqv', address, `${OUTLET_CTL}.${outlet}`], { env, timeout: 5000 });
    return Number(stdout.trim());
  };
  await waitFor('snmpd to answer', async () => (await get(1)) === 2, { timeoutMs: 10000 });
  return {
    address,
    get,
    /** 1 on, 2 off. */
    async set(outlet, value) {
      await run('snmpset', ['-v2c', '-c', 'private', '-t', '1', '-r', '0', address, `${OUTLET_CTL}.${outlet}`, 'i', String(value)], { env, timeout: 5000 });
    },
    stop: () => child.kill('SIGKILL'),
  };
}
