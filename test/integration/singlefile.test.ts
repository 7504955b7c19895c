/**
 * The single-file build (dist-action/cscs-sa.cjs: the GitHub Action runs it, the GitLab
 * component downloads it, a release attaches it): committed exactly as the sources build, and,
 * copied alone into an empty folder, a whole cscs-sa with nothing but node: --version, setup,
 * and the refresh that a real ssh triggers.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { dirname, join } from 'node:path';
import { execa } from 'execa';
import { GatewayDouble } from '../helpers/gateway-double.ts';
import { tempHome, userEnv } from '../helpers/cli.ts';
import { hostFlags, NamedHosts, unavailable } from '../helpers/cscs-names.ts';
import { ROOT } from '../helpers/gh-runner.ts';

const API_KEY = 'sa-single-file-key-0123456789';
const { version, dependencies } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string; dependencies: Record<string, string> };
const hosts = new NamedHosts(new GatewayDouble({ apiKey: API_KEY, principals: [userInfo().username] }), await unavailable());
const test = suite('single-file build');
test.before(async () => {
  await hosts.start();
});
test.after(async () => hosts.stop());

test('the committed dist-action/ is byte for byte what scripts/build.js --action builds from the sources', async () => {
  const fresh = mkdtempSync(join(tmpdir(), 'cscs-sa-action-'));
  try {
    const r = await execa(process.execPath, [join(ROOT, 'scripts', 'build.js'), '--action', fresh], { reject: false, all: true });
    assert.is(r.exitCode, 0, r.all);
    const committed = join(ROOT, 'dist-action');
    assert.equal(readdirSync(committed).sort(), readdirSync(fresh).sort());
    for (const name of readdirSync(fresh)) {
      assert.ok(readFileSync(join(committed, name)).equals(readFileSync(join(fresh, name))), `dist-action/${name} differs from a fresh build: run npm run bundle and commit it`);
    }
  } finally {
    rmSync(fresh, { recursive: true, force: true });
  }
});

test('copied alone into an empty folder: --version, setup, and ssh with a refresh, with nothing but node', async () => {
  const home = tempHome();
  try {
    const folder = join(home.dir, 'opt');
    mkdirSync(folder);
    const file = join(folder, 'cscs-sa.cjs');
    copyFileSync(join(ROOT, 'dist-action', 'cscs-sa.cjs'), file);
    // node's folder and the system's: nothing of this checkout (no node_modules) is reachable.
    const env = userEnv(home, { PATH: `${dirname(process.execPath)}:/usr/bin:/bin`, SHELL: '/bin/sh', CSCS_API_KEY: API_KEY, CSCS_AUTHX_URL: hosts.gateway.url, NODE_PATH: undefined });
    const run = (args: string[], input?: string) => execa(file, args, { env, extendEnv: false, reject: false, cwd: folder, ...(input === undefined ? { stdin: 'ignore' as const } : { input }) });

    const v = await run(['--version']);
    assert.is(v.exitCode, 0, String(v.stderr));
    assert.is(v.stdout, `${version} (undici ${dependencies.undici})`);

    const config = join(home.dir, '.ssh', 'config');
    const setup = await run(['setup', '--hosts', 'clariden', '--ssh-config', config, '--known-hosts', '-', ...hostFlags(hosts.why ? hosts.targets : {})], hosts.pins);
    assert.is(setup.exitCode, 0, String(setup.stderr));
    assert.match(String(setup.stdout), /^pinned 2 host key\(s\) in /m);
    // Not on PATH: the block starts it by absolute paths, behind the Match line's shell check.
    assert.match(readFileSync(join(home.dir, '.ssh', 'cscs-sa.conf'), 'utf8'), ` 2>/dev/null || ${process.execPath} ${file} match %n"`);

    // setup fetched a certificate to learn the login name: without it, ssh makes the refresh.
    rmSync(home.cert);
    hosts.gateway.reset();
    const ssh = await execa('ssh', ['-F', config, 'sa-clariden', 'echo', 'ok'], { env, extendEnv: false, reject: false, stdin: 'ignore' });
    assert.is(ssh.exitCode, 0, String(ssh.stderr));
    assert.is(ssh.stdout, 'ok');
    assert.is(hosts.gateway.signCalls, 1);
  } finally {
    home.remove();
  }
});

test.run();
