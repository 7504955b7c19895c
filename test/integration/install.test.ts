/**
 * The README's two installs, as a user runs them: the tarball `npm pack` makes (what a release
 * attaches, what `npm publish` uploads), and a pinned commit of the git repository. Each goes
 * into a fresh global prefix and must give a `cscs-sa` that starts, answers --help and
 * refreshes a certificate: dependencies and the built dist/ are all in place.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { GatewayDouble } from '../helpers/gateway-double.ts';
import { tempHome, userEnv } from '../helpers/cli.ts';
import { RegistryDouble } from '../helpers/registry.ts';
import { skipTest } from '../helpers/suites.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const { version, dependencies } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string; dependencies: Record<string, string> };
const API_KEY = 'sa-install-key-0123456789';

const test = suite('install');
const work = mkdtempSync(join(tmpdir(), 'cscs-sa-install-'));

// No network: npm gets the dependencies from a registry double serving the tarballs `npm ci`
// fetched, with a cache of its own (the user's is left as it was). npm, as a user's shell runs
// it: not with the npm_* variables `npm test` sets for its scripts.
const registry = new RegistryDouble(ROOT);
const npmEnv = () => ({
  ...Object.fromEntries(Object.entries(process.env).filter(([name]) => !/^npm_/i.test(name))),
  ...registry.npmEnv,
  npm_config_cache: join(work, 'npm-cache'),
  npm_config_audit: 'false',
  npm_config_fund: 'false',
  npm_config_update_notifier: 'false',
});
const gw = new GatewayDouble({ apiKey: API_KEY, principals: [userInfo().username] });
test.before(async () => {
  await Promise.all([gw.start(), registry.start()]);
});
test.after(async () => {
  await Promise.all([gw.stop(), registry.stop()]);
  rmSync(work, { recursive: true, force: true });
});

async function npm(args: string[], cwd: string): Promise<void> {
  const r = await execa('npm', args, { cwd, env: npmEnv(), extendEnv: false, reject: false, all: true, stdin: 'ignore' });
  assert.is(r.exitCode, 0, `npm ${args.join(' ')}:\n${r.all}`);
}

/** The one tarball npm wrote into `dir`. */
function tarball(dir: string): string {
  const found = readdirSync(dir).filter((name) => name.endsWith('.tgz'));
  assert.equal(found, [`cscs-sa-${version}.tgz`]);
  return join(dir, found[0]!);
}

/** `npm install -g` into a fresh prefix, then what a user runs first. */
async function installAndUse(tgz: string, name: string): Promise<void> {
  const prefix = join(work, `prefix-${name}`);
  await npm(['install', '-g', '--prefix', prefix, tgz], work);
  const bin = join(prefix, 'bin', 'cscs-sa');
  const home = tempHome();
  try {
    // Only the prefix's bin and node's folder: nothing of this checkout is reachable.
    const env = userEnv(home, { PATH: `${join(prefix, 'bin')}:${dirname(process.execPath)}:/usr/bin:/bin`, CSCS_API_KEY: API_KEY, CSCS_AUTHX_URL: gw.url });
    const run = (args: string[]) => execa(bin, args, { env, extendEnv: false, reject: false, stdin: 'ignore' });
    const v = await run(['--version']);
    assert.is(v.exitCode, 0, v.stderr);
    assert.is(v.stdout, `${version} (undici ${dependencies.undici})`);
    const help = await run(['--help']);
    assert.is(help.exitCode, 0, help.stderr);
    assert.match(help.stdout, /^Usage: cscs-sa COMMAND/);
    gw.reset();
    const first = await run(['match', 'sa-clariden']); // no key yet: key pair, token, certificate
    assert.is(first.exitCode, 0, first.stderr);
    assert.is(first.stderr, '');
    const fresh = await run(['match', 'sa-clariden']);
    assert.is(fresh.exitCode, 0, fresh.stderr);
    assert.is(fresh.stderr, '');
    assert.is(gw.signCalls, 1);
  } finally {
    home.remove();
  }
}

/** The tarball of this checkout, packed by the first test. */
let packed = '';

test('npm pack, then npm install -g of the tarball: a working cscs-sa', async () => {
  const out = mkdtempSync(join(work, 'pack-'));
  // --ignore-scripts: the dist/ that npm test built, not a rebuild in place under the files running beside this one.
  await npm(['pack', '--ignore-scripts', '--pack-destination', out], ROOT);
  const tgz = (packed = tarball(out));
  const { stdout } = await execa('tar', ['-tzf', tgz]);
  assert.ok(stdout.split('\n').includes('package/dist/entry.cjs'), 'the tarball carries the built dist/');
  await installAndUse(tgz, 'pack');
});

test('from a git URL pinned to a commit (npm pack git+URL#COMMIT, then install -g): a working cscs-sa', async () => {
  const repo = join(work, 'repo.git');
  await execa('git', ['clone', '--quiet', '--bare', '--no-local', ROOT, repo]);
  const { stdout: commit } = await execa('git', ['rev-parse', 'HEAD'], { cwd: ROOT });
  const out = mkdtempSync(join(work, 'git-'));
  // npm clones the commit, installs its devDependencies and runs `prepare` (the build).
  await npm(['pack', `git+file://${repo}#${commit}`], out);
  await installAndUse(tarball(out), 'git');
});

test('setup run through npx warns that ssh_config would name npx\'s cache', async () => {
  const key = join(work, 'npx-key');
  // npx's copy lands in this test's own cache, not in the user's ~/.npm.
  const r = await execa('npx', ['--yes', '--package', packed, '--', 'cscs-sa', 'setup', '--print', '--user', 'svc', '--key', key], {
    cwd: work,
    env: npmEnv(),
    extendEnv: false,
    reject: false,
    stdin: 'ignore',
  });
  assert.is(r.exitCode, 0, r.stderr);
  const warning = /^cscs-sa: warning: ssh_config will name (\/\S+\/_npx\/\S+\/bin\/cscs-sa\.cjs) in npx's cache, which npm may clean: install cscs-sa \(README: Install\) and run setup again$/.exec(r.stderr);
  assert.ok(warning, r.stderr);
  assert.ok(r.stdout.includes(warning[1]!), 'the block names the script in npx\'s cache');
});

if (registry.missing.length === 0) test.run();
else {
  skipTest('install (every test of this file)', `the registry double serves the tarballs npm ci left in npm's cache (${registry.cache}), and ${registry.missing.length} are not there (${registry.missing.slice(0, 3).join(' ')} ...): run npm ci again`);
  rmSync(work, { recursive: true, force: true });
  rmSync(gw.dir, { recursive: true, force: true });
}
