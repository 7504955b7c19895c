/**
 * What setup writes, read and run by old OpenSSH clients built from the release tags
 * (ssh-8.2p1, ssh-8.0p1), in CSCS_SA_TEST_OLD_OPENSSH, else ../shared/openssh/ beside the
 * checkout, when present: the plain block (with a second account's block after it) and burst
 * mode parse (`-G`, also for a host the block does not name) and connect through today's sshd;
 * -G is read with the running client's option string. The old client is `ssh` on the PATH, so
 * setup's `ssh -V` and ProxyJump's child ssh are the old one too.
 */
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { BIN, cscsSa } from '../helpers/cli.ts';
import { setupHome } from '../helpers/setup-home.ts';
import { skipTest, worldSuite } from '../helpers/suites.ts';
import { API_KEY } from '../helpers/world.ts';

const scratch = mkdtempSync(join(tmpdir(), 'cscs-sa-oldssh-'));
const { world, test } = worldSuite('old OpenSSH clients', { after: () => rmSync(scratch, { recursive: true, force: true }) });
const OLD = process.env.CSCS_SA_TEST_OLD_OPENSSH || fileURLToPath(new URL('../../../shared/openssh/', import.meta.url));

/** A folder whose `ssh` is the old client (and whose cscs-sa is the built one), first on the PATH. */
function pathWith(client: string): { PATH: string; ssh: string } {
  const bin = mkdtempSync(join(scratch, 'bin-'));
  symlinkSync(client, join(bin, 'ssh'));
  symlinkSync(BIN, join(bin, 'cscs-sa'));
  return { PATH: `${bin}:${process.env.PATH}`, ssh: join(bin, 'ssh') };
}

/** Runs the old client by its link named ssh, as a user would (cscs-sa looks for its parent by that name). */
async function oldSsh(ssh: string, ...args: string[]) {
  const r = await execa(ssh, ['-F', world.sshConfig, ...args], { env: world.env, extendEnv: false, reject: false, stdin: 'ignore' });
  return { exitCode: r.exitCode, stdout: String(r.stdout), stderr: String(r.stderr) };
}

async function expireCertificate(): Promise<void> {
  const expired = await world.gateway.sign(readFileSync(world.home.pub, 'utf8'), { validity: '-10m:-5m' });
  writeFileSync(world.home.cert, `${expired}\n`);
}

for (const version of ['8.2p1', '8.0p1']) {
  const client = join(OLD, `ssh-${version}`);
  // The plain block is the first of the two accounts' (sa-clariden is the default account's, with
  // the same file and Include as alone): a run of it alone would repeat what that one checks.
  // The plain block's test also runs ssh -P -G with the stale certificate, before the command that
  // refreshes it (a test of its own ran setup again only for that).
  const blocks: [string, Parameters<typeof setupHome>[1], string][] = [
    ['burst mode', { args: ['--multiplex'] }, ''],
    ['the plain block and a second account\'s', { env: { CSCS_API_KEY_PROJ: API_KEY }, accounts: [[], ['--account', 'proj']] }, '; ssh -P -G (-P takes no argument before 9.4) makes no gateway call'],
  ];
  for (const [name, options, dashP] of blocks) {
    const title = `OpenSSH ${version}, ${name}: setup asks it, the block parses (also for github.com) and connects; a stale certificate is refreshed${dashP}`;
    if (!existsSync(client)) {
      skipTest(title, `${client} is not there`);
      continue;
    }
    test(title, async () => {
      const { PATH, ssh } = pathWith(client);
      const home = await setupHome(world, { ...options, env: { ...options?.env, PATH } });
      for (const host of ['sa-clariden', 'github.com', ...(options?.accounts ? ['proj-clariden'] : [])]) {
        const g = await oldSsh(ssh, '-G', host);
        assert.is(g.exitCode, 0, `${host}: ${g.stderr}`);
      }
      for (const host of ['sa-clariden', ...(options?.accounts ? ['proj-clariden'] : [])]) {
        const r = await oldSsh(ssh, host, 'echo', 'works');
        assert.is(r.exitCode, 0, `${host}: ${r.stderr}`);
        assert.is(r.stdout, 'works');
      }
      await expireCertificate();
      world.gateway.reset();
      if (dashP) {
        const g = await oldSsh(ssh, '-P', '-G', 'sa-clariden');
        assert.is(g.exitCode, 0, g.stderr);
        assert.match(g.stdout, /^hostname 127\.0\.0\.1$/m);
        assert.is(world.gateway.requests.length, 0);
      }
      const again = await oldSsh(ssh, '-S', 'none', 'sa-clariden', 'echo', 'works');
      assert.is(again.exitCode, 0, again.stderr);
      assert.is(world.gateway.signCalls, 1);
      if (options?.args) await cscsSa(['close', '--ssh-config', home.config], world.env);
    });
  }
}

test.run();
