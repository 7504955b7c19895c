/**
 * The Match line's shell check (src/ssh/freshcheck.ts), through real ssh and the block that setup
 * writes: with a fresh certificate ssh starts no Node but the relay, under every shell ssh may run
 * it with; anything the check cannot vouch for goes to `cscs-sa match`, which refreshes.
 */
import * as assert from 'uvu/assert';
import { execaSync } from 'execa';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cscsSa, writeConfig } from '../helpers/cli.ts';
import { SECOND_GIVEN_AWAY } from '../helpers/gateway-double.ts';
import type { NodeStarts } from '../helpers/node-starts.ts';
import { paced } from '../helpers/paced.ts';
import { sharedSetupHome } from '../helpers/setup-home.ts';
import { missingTool, skipTest, worldSuite } from '../helpers/suites.ts';
import { API_KEY } from '../helpers/world.ts';

const scratch = mkdtempSync(join(tmpdir(), 'cscs-sa-fresh-'));
const { world, test } = worldSuite('fresh check', {
  after: () => {
    rmSync(scratch, { recursive: true, force: true });
    blocks.remove();
  },
});

/**
 * setup's blocks for the default account and a second one (proj), made once for the file. They do
 * not depend on the environment a test adds (SHELL only picks the shell setup asks where cscs-sa
 * is, which under cron's PATH names it by absolute path whatever the shell), and proj's Match line
 * is not the sa- hosts'.
 */
const blocks = sharedSetupHome(world, { accounts: [[], ['--account', 'proj']] });

/** A HOME with those blocks, led to this world's sshd, and `env` (SHELL, the refresh margin, ...) on top. */
async function setupBlocks(env: Record<string, string> = {}): Promise<NodeStarts> {
  return (await blocks.home(env)).starts;
}

async function sshWorks(host = 'sa-clariden', ...options: string[]): Promise<void> {
  const r = await world.ssh(...options, host, 'echo', 'works');
  assert.is(r.exitCode, 0, r.stderr);
  assert.is(r.stdout, 'works');
  assert.is(r.stderr, '');
}

/** A valid certificate for `pub` written by hand, without cscs-sa's comment. */
async function handWritten(pub: string, validity?: string): Promise<string> {
  return `${await world.gateway.sign(readFileSync(pub, 'utf8'), validity ? { validity } : {})}\n`;
}

const SHELLS = ['/bin/sh', '/bin/bash', '/bin/dash', '/usr/bin/zsh', '/usr/bin/fish'];

for (const shell of SHELLS) {
  const name = `SHELL=${shell}: a fresh certificate costs ssh no Node start but the relay, ssh -G none; the first command refreshes`;
  if (!existsSync(shell)) {
    skipTest(name, `${shell} is not installed (apt-get install ${shell.split('/').pop()})`);
    continue;
  }
  test(name, async () => {
    const starts = await setupBlocks({ SHELL: shell });
    await sshWorks();
    assert.is(world.gateway.signCalls, 1);
    assert.is(starts.of('match').length, 1, starts.list().join('\n'));
    world.gateway.reset();
    starts.reset();

    await sshWorks();
    assert.is((await world.ssh('-G', 'sa-clariden')).exitCode, 0);
    assert.is(world.gateway.signCalls, 0);
    // Two hops (sa-clariden and its ProxyJump sa-ela) ran the Match line; only the relay is Node.
    assert.equal(starts.of('match'), []);
    assert.is(starts.list().length, 1, starts.list().join('\n'));
    assert.is(starts.of('proxy').length, 1);
  });
}

test('a certificate removed, expired, written by hand, of another account, or a key pair replaced: match judges it, refreshes where needed, ssh works', async () => {
  const starts = await setupBlocks({ CSCS_API_KEY_PROJ: API_KEY });
  // proj's certificate, for the case that copies it.
  await sshWorks('proj-clariden');
  const proj = join(world.home.dir, '.ssh', 'cscs-key-proj');
  // What changed, how many sign calls follow, and in how many of the two hops' Match lines match ran.
  // The expired one first: it needs no certificate before it, and its refresh leaves the one that
  // 'removed' removes (a first command only to get one cost a refresh and a relay).
  const cases: [string, () => Promise<void> | void, number, number?][] = [
    ['expired, by hand', async () => writeFileSync(world.home.cert, await handWritten(world.home.pub, '-10m:-5m')), 1],
    ['removed', () => rmSync(world.home.cert), 1],
    // Valid, but without the fresh window: match runs for both hops, finds it fresh and keeps it.
    ['valid, by hand', async () => writeFileSync(world.home.cert, await handWritten(world.home.pub)), 0, 2],
    // Its own window and key are proj's: not this key pair's.
    ["account proj's, copied", () => writeFileSync(world.home.cert, readFileSync(`${proj}-cert.pub`)), 1],
    [
      'key pair replaced',
      () => {
        rmSync(world.home.key);
        rmSync(world.home.pub);
        execaSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', world.home.key]);
      },
      1,
    ],
  ];
  for (const [what, change, signs, matches = 1] of cases) {
    await change();
    world.gateway.reset();
    starts.reset();
    await sshWorks();
    assert.is(world.gateway.signCalls, signs, what);
    assert.is(starts.of('match').length, matches, `${what}: ${starts.list().join(', ')}`);
    // And now it is fresh by the shell again (for the valid one written by hand: once refreshed).
    if (signs === 1) {
      starts.reset();
      await sshWorks();
      assert.equal(starts.of('match'), [], what);
    }
  }
});

test('match --env bogus with a fresh certificate: exit 2 (a bad flag) and one line, on the fast path and on the full one', async () => {
  await setupBlocks();
  await sshWorks();
  const line = 'cscs-sa: --env: "bogus" is not a CSCS environment: use prod or tds\n';
  const fast = await cscsSa(['match', '--env', 'bogus', 'sa-clariden'], world.env);
  assert.equal([fast.exitCode, fast.stderr, fast.stdout], [2, line, '']);
  // A YAML config file: the fast path leaves it to the full command and its loader.
  writeConfig(world.home, 'config.yaml', 'timeout: 5\n');
  const full = await cscsSa(['match', '--env', 'bogus', 'sa-clariden'], world.env);
  assert.equal([full.exitCode, full.stderr, full.stdout], [2, line, '']);
  assert.is((await cscsSa(['match', 'sa-clariden'], world.env)).exitCode, 0);
});

const LIFETIME = 12;
// ssh's login must fit in the margin, on a loaded machine too: 5 s, as the refresh allows one through a jump host.
const MARGIN = 5;

// The gateway's clock minus the runner's, in seconds, for each shift of the runner's clock.
for (const [shift, offset] of [['+10m', -600], ['-10m', 600]] as const) {
  const name = `local clock ${shift} off the gateway's and sshd's: every command works, match runs only to refresh, status shows the offset`;
  const noFaketime = missingTool('faketime');
  if (noFaketime) {
    skipTest(name, noFaketime);
    continue;
  }
  test(name, async () => {
    // ssh runs the Match line (sh, date, cscs-sa) and the relay through $SHELL: all of it on the skewed clock.
    const skewed = join(scratch, `skewed${shift}`);
    writeFileSync(skewed, `#!/bin/sh\nexec faketime -f ${shift} /bin/sh "$@"\n`);
    chmodSync(skewed, 0o755);
    const starts = await setupBlocks({ SHELL: skewed, CSCS_SA_REFRESH_MARGIN: String(MARGIN) });
    world.gateway.options.validity = `-5s:+${LIFETIME}s`;
    try {
      // One ssh every 1.5 s: several runs inside each fresh window (LIFETIME less MARGIN, ~6 s) and
      // each refresh margin, which is what can go wrong; more runs would only repeat the fresh case.
      const { runs, elapsed } = await paced(2 * LIFETIME, 1500, async (i, ms) => {
        const r = await world.ssh('sa-ela', 'true');
        assert.is(r.exitCode, 0, `run ${i} at ${(ms / 1000).toFixed(1)} s: ${r.stderr}`);
      });
      const signs = world.gateway.signCalls;
      assert.ok(signs >= 2, `${signs} sign calls over two lifetimes: a certificate was used after it expired`);
      // Ideal: one certificate per (lifetime - margin - the second given away) seconds; allow one more.
      const ideal = Math.ceil(elapsed / (LIFETIME - MARGIN - SECOND_GIVEN_AWAY));
      assert.ok(signs <= ideal + 1, `${signs} sign calls for ${runs} runs in ${elapsed.toFixed(1)} s (ideal ${ideal})`);
      // match ran for the refreshes (one more where a refresh found another's), the shell for the rest.
      const matches = starts.of('match').length;
      assert.ok(matches <= signs + 1, `${matches} match starts for ${signs} refreshes in ${runs} runs`);
      assert.ok(runs > matches, `${runs} runs, ${matches} match starts`);
      // The offset learned is never below the truth (src/refresh/gateway.ts clockOffset), above it
      // by the Date header's second and the sign call's round trip at most.
      const [status] = JSON.parse((await cscsSa(['status', '--json'], world.env)).stdout);
      const over = status.clockOffsetMs - offset * 1000;
      assert.ok(over >= 0 && over < 3000, `learned offset ${status.clockOffsetMs} ms`);
      console.log(`    clock ${shift}: ${runs} runs in ${elapsed.toFixed(1)} s, ${signs} sign calls (ideal ${ideal}), ${matches} match starts, offset ${status.clockOffsetMs} ms`);
    } finally {
      world.gateway.options.validity = undefined;
    }
  });
}

test.run();
