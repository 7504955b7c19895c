/**
 * The GitLab CI/CD component (templates/cscs-sa.yml), run as GitLab runs a job that extends it:
 * the inputs interpolated into `$[[ inputs.NAME ]]`, before_script and the job's script in one
 * shell with the job's variables, after_script in a shell of its own. The single-file build is
 * downloaded from a local server standing in for the GitHub release; ssh, scp and rsync reach real
 * sshd under the real CSCS host names where the machine allows it.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { execa } from 'execa';
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { userInfo } from 'node:os';
import { defaultLoaders } from 'cosmiconfig';
import { GatewayDouble } from '../helpers/gateway-double.ts';
import { filesUnder, type Home, tempHome, userEnv } from '../helpers/cli.ts';
import { NamedHosts, unavailable } from '../helpers/cscs-names.ts';
import { ROOT } from '../helpers/gh-runner.ts';

const API_KEY = 'sa-gitlab-key-0f1e2d3c4b5a6978';
const user = userInfo().username;
const why = await unavailable();
if (why) console.log(`NOTE: not under the real CSCS host names (${why}): the component's host input leads sa-ela and sa-clariden to 127.0.0.1`);
const hosts = new NamedHosts(new GatewayDouble({ apiKey: API_KEY, principals: [user] }), why);
const COMPONENT = join(ROOT, 'templates', 'cscs-sa.yml');

interface Spec {
  spec: { inputs: Record<string, { default?: string | boolean; regex?: string; options?: string[] }> };
}
interface Job {
  before_script: string[];
  after_script: string[];
}

/** The component with `inputs` interpolated, as GitLab does it: each value checked against its spec first. */
function component(inputs: Record<string, string>): Job {
  const [header, body] = readFileSync(COMPONENT, 'utf8').split(/^---$/m) as [string, string];
  const { spec } = defaultLoaders['.yaml'](COMPONENT, header) as Spec;
  const unknown = Object.keys(inputs).filter((name) => !Object.hasOwn(spec.inputs, name));
  assert.equal(unknown, [], 'inputs the component declares');
  const values = Object.fromEntries(Object.entries(spec.inputs).map(([name, s]) => [name, inputs[name] ?? String(s.default)]));
  for (const [name, value] of Object.entries(values)) {
    const s = spec.inputs[name]!;
    if (s.regex) assert.ok(new RegExp(s.regex).test(value), `input ${name}="${value}" fails its regex`);
    if (s.options) assert.ok(s.options.includes(value), `input ${name}="${value}" is none of its options`);
  }
  const text = body.replace(/\$\[\[ inputs\.([a-z-]+) \]\]/g, (_, name: string) => {
    assert.ok(Object.hasOwn(values, name), `the component uses an undeclared input ${name}`);
    return values[name]!;
  });
  return (defaultLoaders['.yaml'](COMPONENT, text) as Record<string, Job>)['.cscs-sa']!;
}

let server: ReturnType<typeof createServer>;
let installUrl = '';
interface Ctx {
  home: Home;
  env: Record<string, string>;
  sshConfig: string;
}
const test = suite<Ctx>('GitLab component');
test.before(async () => {
  await hosts.start();
  const file = readFileSync(join(ROOT, 'dist-action', 'cscs-sa.cjs'));
  server = createServer((req, res) => (req.url === '/v0.1.0/cscs-sa.cjs' ? res.end(file) : res.writeHead(404).end()));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  installUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v0.1.0/cscs-sa.cjs`;
});
test.after(async () => {
  server.close();
  await hosts.stop();
});
test.before.each((ctx) => {
  hosts.gateway.reset();
  ctx.home = tempHome();
  ctx.sshConfig = join(ctx.home.dir, '.ssh', 'config');
  // A job's environment: its CI/CD variables and GitLab's predefined ones; the double stands for the gateway.
  ctx.env = userEnv(ctx.home, { CI_JOB_ID: '4242', CSCS_API_KEY: API_KEY, CSCS_SA_KNOWN_HOSTS: hosts.pins, CSCS_AUTHX_URL: hosts.gateway.url, SHELL: '/bin/sh' });
});
test.after.each((ctx) => ctx.home.remove());

/** A job that extends the component: before_script and script in one shell, after_script in another. */
async function job(ctx: Ctx, script: string[], inputs: Record<string, string> = {}, env = ctx.env) {
  const c = component({ 'install-url': installUrl, host: hosts.hostLines.join(' '), 'ssh-config': ctx.sshConfig, ...inputs });
  const shell = (lines: string[]) => execa('/bin/sh', ['-e', '-c', lines.join('\n')], { env, extendEnv: false, reject: false, stdin: 'ignore', cwd: ctx.home.dir });
  const main = await shell([...c.before_script, ...script]);
  const after = await shell(c.after_script);
  return { main: { exitCode: main.exitCode, stdout: String(main.stdout), stderr: String(main.stderr) }, after: { exitCode: after.exitCode, stdout: String(after.stdout), stderr: String(after.stderr) } };
}

test('a job that extends .cscs-sa: its script runs ssh, scp and rsync with no API key in its shell; after_script leaves nothing', async (ctx) => {
  const remote = join(ctx.home.dir, 'remote');
  const { main, after } = await job(ctx, [
    'test -z "${CSCS_API_KEY:-}"',
    `ssh -F "${ctx.sshConfig}" sa-clariden mkdir -p ${remote}`,
    'printf "results\\n" > results.txt',
    `scp -F "${ctx.sshConfig}" results.txt sa-clariden:${remote}/`,
    `rsync -a -e "ssh -F ${ctx.sshConfig}" results.txt sa-clariden:${remote}/copy.txt`,
    `ssh -F "${ctx.sshConfig}" sa-clariden id -un`,
  ]);
  assert.is(main.exitCode, 0, main.stderr);
  assert.match(main.stdout, /^0\.1\.0 \(undici /m);
  assert.match(main.stdout, /^principals +\S+/m);
  assert.ok(main.stdout.endsWith(`\n${user}`), main.stdout);
  assert.is(readFileSync(join(remote, 'copy.txt'), 'utf8'), 'results\n');
  assert.ok(hosts.gateway.signCalls >= 1);

  assert.is(after.exitCode, 0, after.stderr);
  assert.match(after.stdout, /^cscs-sa: closed [1-9]\d* connections?$/m);
  assert.match(after.stdout, /^took the Include of \S+cscs-sa\.conf out of /m);
  const left = readdirSync(join(ctx.home.dir, '.ssh'));
  assert.not.ok(left.some((name) => name.startsWith('cscs-key-') || name === 'cscs-sa.conf' || name === 'cscs-sa-cm' && readdirSync(join(ctx.home.dir, '.ssh', name)).length > 0), left.join(' '));
  assert.not.match(readFileSync(ctx.sshConfig, 'utf8'), /Include/);
  assert.not.ok(existsSync(join(ctx.home.dir, '.cscs-sa-ci-4242')));
  for (const file of filesUnder(ctx.home.dir)) assert.not.ok(readFileSync(file, 'latin1').includes(API_KEY), `${file} holds the key`);
});

test('a job with an after_script of its own (which replaces the component\'s): the API key file still goes when the script ends', async (ctx) => {
  const c = component({ 'install-url': installUrl, host: hosts.hostLines.join(' '), 'ssh-config': ctx.sshConfig, multiplex: 'false' });
  const keyFile = join(ctx.home.dir, '.cscs-sa-ci-4242', 'api-key');
  const script = [...c.before_script, `test -s "${keyFile}"`, `ssh -F "${ctx.sshConfig}" sa-clariden true`];
  const main = await execa('/bin/sh', ['-e', '-c', script.join('\n')], { env: ctx.env, extendEnv: false, reject: false, stdin: 'ignore', cwd: ctx.home.dir });
  assert.is(main.exitCode, 0, String(main.stderr));
  assert.not.ok(existsSync(keyFile));
  for (const file of filesUnder(ctx.home.dir)) assert.not.ok(readFileSync(file, 'latin1').includes(API_KEY), `${file} holds the key`);
});

test('an image without node, or without ssh: one line saying what the image lacks, exit 1, nothing installed', async (ctx) => {
  const bare = join(ctx.home.dir, 'bare-bin');
  mkdirSync(bare);
  const none = await job(ctx, ['true'], {}, { ...ctx.env, PATH: bare });
  assert.is(none.main.exitCode, 1);
  assert.is(none.main.stderr, "cscs-sa: the job's image has no node: use an image with Node.js 20.18 or later (image: node:22-bookworm), or install it first");
  symlinkSync(process.execPath, join(bare, 'node'));
  const noSsh = await job(ctx, ['true'], {}, { ...ctx.env, PATH: bare });
  assert.is(noSsh.main.exitCode, 1);
  assert.is(noSsh.main.stderr, "cscs-sa: the job's image has no ssh client: install it first (apt-get install -y openssh-client, apk add openssh-client)");
  assert.not.ok(existsSync(join(ctx.home.dir, '.cscs-sa-ci-4242')));
  assert.not.ok(existsSync(join(ctx.home.dir, '.ssh')));
});

test('examples/gitlab-ci.yml includes the component with inputs it declares, and its job extends .cscs-sa', () => {
  const path = join(ROOT, 'examples', 'gitlab-ci.yml');
  const example = defaultLoaders['.yaml'](path, readFileSync(path, 'utf8')) as { include: { remote: string; inputs: Record<string, string> }[] } & Record<string, { extends?: string }>;
  const [include] = example.include;
  assert.match(include!.remote, /\/templates\/cscs-sa\.yml$/);
  component(include!.inputs);
  assert.is(example.clariden!.extends, '.cscs-sa');
});

test.run();
