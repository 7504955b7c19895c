/**
 * The API key and the JWT never show where other users or other programs can see them: no
 * process's command line, no child's environment (cscs-sa itself inherits CSCS_API_KEY from
 * the user, as it must), no log line, no error, no file under HOME.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { userInfo } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { GatewayDouble } from '../helpers/gateway-double.ts';
import { BIN, cscsSa, filesUnder, tempHome, userEnv, type Home } from '../helpers/cli.ts';
import { scanProcesses } from '../helpers/procscan.ts';

const API_KEY = 'sa-secret-key-5f0e1d2c3b4a';
const gw = new GatewayDouble({ apiKey: API_KEY, principals: [userInfo().username] });
const test = suite('secrets');
const homes: Home[] = [];

test.before(async () => {
  await gw.start();
});
test.after(async () => {
  await gw.stop();
  for (const home of homes) home.remove();
});

test('refreshes leak neither key nor token into argv, child environments, logs, errors or files', async () => {
  const scanner = await scanProcesses();
  // Slow answers keep every process alive long enough to be seen.
  for (let i = 0; i < 8; i++) gw.faults.sign.push({ delayMs: 300 });
  const runs = [];
  // Two homes for each way of giving the key, each with a match and a rejected sign at once:
  // every pairing runs twice in parallel, as the earlier eight homes ran it four times.
  for (let i = 0; i < 4; i++) {
    const home = tempHome();
    homes.push(home);
    // A generous deadline: what is scanned must be refreshes that succeed, also on a loaded machine.
    const env = userEnv(home, { CSCS_AUTHX_URL: gw.url, DEBUG: 'cscs-sa:*', CSCS_SA_TIMEOUT: '60' });
    if (i % 2 === 0) {
      env.CSCS_API_KEY = API_KEY;
    } else {
      // The other half reads the key through a secret-manager style command that takes a while.
      const vault = join(home.dir, 'vault');
      writeFileSync(vault, API_KEY, { mode: 0o600 });
      mkdirSync(join(home.dir, '.config', 'cscs-sa'), { recursive: true });
      writeFileSync(join(home.dir, '.config', 'cscs-sa', 'config.json'), JSON.stringify({ apiKeyCommand: ['sh', '-c', `sleep 0.3; cat ${vault}`] }));
    }
    runs.push(cscsSa(['match'], env), cscsSa(['sign', '--force'], { ...env, CSCS_API_KEY: 'rejected-secret-key-9876' }));
  }
  const results = await Promise.all(runs);
  await sleep(100);
  const { scans, processes } = await scanner.stop();

  const secrets = [API_KEY, 'rejected-secret-key-9876', ...gw.issuedTokens];
  assert.ok(gw.issuedTokens.size >= 4, `${gw.issuedTokens.size} tokens issued`);
  // cscs-sa itself holds the key the user gave it. It is the only node process here; a node
  // process can also read with an empty command line (exiting, or a child between fork and exec,
  // which still shares node's memory), so processes are told apart by their comm too.
  const ours = (p: { comm: string; cmdline: string }) => p.cmdline.includes(BIN) || p.comm === 'node';
  // The scan must have seen the children it vouches for, or it proves nothing.
  const children = processes.filter((p) => !ours(p));
  assert.ok(processes.some((p) => p.cmdline.includes(BIN)), 'saw cscs-sa processes');
  assert.ok(children.some((p) => p.cmdline.startsWith('ssh-keygen')), 'saw ssh-keygen children');
  assert.ok(children.some((p) => p.cmdline.includes('sleep 0.3; cat')), 'saw apiKeyCommand children');
  for (const p of processes) {
    for (const secret of secrets) {
      assert.not.ok(p.cmdline.includes(secret), `argv of ${p.cmdline} holds a secret`);
      if (!ours(p)) assert.not.ok(p.environ.includes(secret), `environment of ${p.comm} (${p.cmdline}) holds a secret`);
      // A token is never in any environment, cscs-sa's included.
      if (secret.startsWith('eyJ')) assert.not.ok(p.environ.includes(secret), `environment of ${p.comm} holds a token`);
    }
  }

  const printed = results.map((r) => `${r.stdout}\n${r.stderr}`).join('\n');
  assert.match(printed, /cscs-sa:gateway POST/, 'DEBUG output was produced');
  assert.match(printed, /cscs-sa: API key rejected \(401\)/, 'error messages were produced');
  const written = homes.flatMap((home) => filesUnder(home.dir)).filter((f) => !f.endsWith('/vault'));
  assert.ok(written.length >= 12, `${written.length} files written`);
  for (const secret of secrets) {
    assert.not.ok(printed.includes(secret), 'a secret was printed');
    for (const file of written) assert.not.ok(readFileSync(file, 'latin1').includes(secret), `${file} holds a secret`);
  }
  console.log(`    ${scans} scans of /proc saw ${processes.length} processes, ${children.length} of them not cscs-sa`);
});

test.run();
