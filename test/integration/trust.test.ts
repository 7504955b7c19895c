/**
 * Inputs trusted only as OpenSSH trusts them: config files (data and code) that no one else
 * wrote or can write, gateway URLs that never carry the API key in clear text, and settings
 * whose names are settings (not `__proto__`). Each refusal: exit 3, one line naming the file or
 * variable and the fix, and nothing in the file run (a marker file proves it).
 */
import * as assert from 'uvu/assert';
import { execa, execaSync } from 'execa';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gatewaySuite, missingTool, skipTest } from '../helpers/suites.ts';
import { BIN, cscsSa, userEnv } from '../helpers/cli.ts';
import { withKeyPair } from '../helpers/prepared.ts';
import { ATTACKER_UID, asAttacker, asVictim, VICTIM_UID, victimHome, victimUnavailable } from '../helpers/victim.ts';

const API_KEY = 'sa-trust-key-0123456789';
const { gw, test } = gatewaySuite('trust', API_KEY);
const isRoot = process.getuid?.() === 0;
const NOBODY = 65534;

const FORMATS = ['json', 'yaml', 'js', 'mjs', 'cjs'] as const;
type Format = (typeof FORMATS)[number];

/** A config file whose use leaves `marker`: code formats at load, data formats when apiKeyCommand runs. */
function configText(format: Format, marker: string): string {
  const command = ['sh', '-c', `touch ${marker}.command; echo ${API_KEY}`];
  const settings = JSON.stringify({ apiKeyCommand: command });
  switch (format) {
    case 'json':
      return settings;
    case 'yaml':
      return `apiKeyCommand: ${JSON.stringify(command)}\n`;
    case 'mjs':
      return `import { writeFileSync } from 'node:fs';\nwriteFileSync(${JSON.stringify(marker)}, 'ran');\nexport default ${settings};\n`;
    default:
      return `require('node:fs').writeFileSync(${JSON.stringify(marker)}, 'ran');\nmodule.exports = ${settings};\n`;
  }
}

function writeConfig(homeDir: string, format: Format, marker: string): string {
  const dir = join(homeDir, '.config', 'cscs-sa');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = join(dir, `config.${format}`);
  writeFileSync(file, configText(format, marker));
  chmodSync(file, 0o644);
  return file;
}

/** Whether anything of the config file ran: its code, or its apiKeyCommand. */
function ran(marker: string): boolean {
  return existsSync(marker) || existsSync(`${marker}.command`);
}

for (const format of FORMATS) {
  // Both refusals, then the fix, on one file: the run that shows the fixed file is used proves the
  // marker for both. A data format's marker needs a refresh, for apiKeyCommand to run; a code
  // format's code runs wherever the file is loaded, status's load included (a refresh through a
  // trusted js, mjs and cjs file is the subject of the strace tests below).
  const code = format !== 'json' && format !== 'yaml';
  test(`config.${format} writable by others, or by its group: exit 3 naming the file and chmod go-w, nothing in it runs; fixed, it is used`, async ({ home, env }) => {
    if (!code) withKeyPair(home);
    const marker = join(home.dir, 'ran');
    const file = writeConfig(home.dir, format, marker);
    delete env.CSCS_API_KEY;
    for (const [who, mode] of [['others', 0o666], ['its group', 0o664]] as const) {
      chmodSync(file, mode);
      const r = await cscsSa(['match'], env);
      assert.is(r.exitCode, 3, who);
      assert.is(r.stderr, `cscs-sa: config file ${file} is writable by others, so nothing in it is used: chmod go-w ${file}\n`, who);
      assert.not.ok(ran(marker), `nothing ran (writable by ${who})`);
      assert.is(gw.requests.length, 0, who);
    }
    // The fix it names works, and the same file then runs (so the marker could have shown it).
    chmodSync(file, 0o644);
    const fixed = await cscsSa([code ? 'status' : 'match'], env);
    // status: 1, no certificate yet.
    assert.is(fixed.exitCode, code ? 1 : 0, fixed.stderr);
    assert.ok(ran(marker), 'the trusted file is used');
  });
}

// The owner is judged with the mode, on the descriptor opened before the format is looked at
// (src/core/config.ts openTrustedConfig, then loadConfigFile): the tests above show every format
// goes through it. One format here, the one whose code would run at load.
if (isRoot) {
  test('a config file owned by another user (config.cjs): exit 3, nothing in it runs', async ({ home, env }) => {
    const marker = join(home.dir, 'ran');
    const file = writeConfig(home.dir, 'cjs', marker);
    chownSync(file, NOBODY, NOBODY);
    delete env.CSCS_API_KEY;
    const r = await cscsSa(['match'], env);
    assert.is(r.exitCode, 3);
    assert.is(r.stderr, `cscs-sa: config file ${file} belongs to another user (uid ${NOBODY}), so nothing in it is used: remove it, or replace it with a file of your own\n`);
    assert.not.ok(ran(marker));
    assert.is(gw.requests.length, 0);
  });
}

test('a config file in a folder others can write: exit 3 naming the folder', async ({ home, env }) => {
  const marker = join(home.dir, 'ran');
  const file = writeConfig(home.dir, 'cjs', marker);
  const dir = join(home.dir, '.config');
  chmodSync(dir, 0o777);
  const r = await cscsSa(['match'], env);
  assert.is(r.exitCode, 3);
  assert.is(r.stderr, `cscs-sa: config file ${file} is in folder ${dir}, which others can write, so nothing in it is used: chmod go-w ${dir}, or move the config file to a folder only you can write\n`);
  assert.not.ok(ran(marker));
});

test('CSCS_SA_CONFIG through a symlink is judged by its target and the target\'s folders', async ({ home, env }) => {
  const marker = join(home.dir, 'ran');
  const shared = mkdtempSync(join(tmpdir(), 'cscs-sa-shared-'));
  try {
    chmodSync(shared, 0o777);
    const target = join(shared, 'config.cjs');
    writeFileSync(target, configText('cjs', marker));
    chmodSync(target, 0o644);
    const link = join(home.dir, 'config.cjs');
    await execa('ln', ['-s', target, link]);
    const r = await cscsSa(['match'], { ...env, CSCS_SA_CONFIG: link });
    assert.is(r.exitCode, 3);
    assert.match(r.stderr, new RegExp(`is in folder ${shared}, which others can write`));
    assert.not.ok(ran(marker));
  } finally {
    rmSync(shared, { recursive: true, force: true });
  }
});

test('prototype keys are unknown settings: exit 3, one line', async ({ home, env }) => {
  for (const [format, text, name] of [
    ['json', '{"__proto__": {"apiKeyCommand": "touch x"}}', '__proto__'],
    ['json', '{"constructor": 1}', 'constructor'],
    ['yaml', 'prototype: 1\n', 'prototype'],
    ['yaml', '__proto__: 1\n', '__proto__'],
  ] as const) {
    const dir = join(home.dir, '.config', 'cscs-sa');
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const file = join(dir, `config.${format}`);
    writeFileSync(file, text);
    const r = await cscsSa(['match'], env);
    assert.is(r.exitCode, 3, `${format} ${name}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`^cscs-sa: config file ${file}: unknown setting "${name}": remove it or use one of key, env, authxUrl,.*\\n$`));
  }
});

/** A TCP server that counts connections (a proxy that never proxies). */
async function counter(): Promise<{ server: Server; url: string; count: () => number }> {
  let connections = 0;
  const server = createServer((socket) => {
    connections++;
    socket.destroy();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, count: () => connections };
}

test('http:// to a remote host: exit 3 before any connection; https:// and loopback http:// are used', async ({ home, env }) => {
  withKeyPair(home);
  // Every connection to a non-loopback host goes through this "proxy", so it sees any attempt.
  const proxy = await counter();
  try {
    const proxied = { ...env, HTTP_PROXY: proxy.url, HTTPS_PROXY: proxy.url, NO_PROXY: '127.0.0.1' };
    const r = await cscsSa(['match'], { ...proxied, CSCS_AUTHX_URL: 'http://authx-gateway.svc.cscs.ch' });
    assert.is(r.exitCode, 3);
    assert.is(
      r.stderr,
      'cscs-sa: CSCS_AUTHX_URL: "http://authx-gateway.svc.cscs.ch" would send the API key unencrypted: use https:// (plain http:// is only for loopback addresses: 127.0.0.0/8, ::1, localhost)\n',
    );
    assert.is(proxy.count(), 0, 'nothing connected');
    // The same with https:// does try to connect: the counter would have seen the http:// one.
    const https = await cscsSa(['match'], { ...proxied, CSCS_AUTHX_URL: 'https://authx-gateway.svc.cscs.ch', CSCS_SA_TIMEOUT: '2' });
    assert.is(https.exitCode, 5, https.stderr);
    assert.ok(proxy.count() > 0, 'https:// went out');
    // Loopback http:// (the double) is accepted, in any spelling of 127.0.0.0/8: every other test
    // here reaches it as http://127.0.0.1.
    const url = `http://127.1:${new URL(gw.url).port}`;
    const ok = await cscsSa(['sign', '--force'], { ...env, CSCS_AUTHX_URL: url });
    assert.is(ok.exitCode, 0, `${url}: ${ok.stderr}`);
  } finally {
    proxy.server.close();
  }
});

test('http:// in the config file is refused the same way', async ({ home, env }) => {
  const dir = join(home.dir, '.config', 'cscs-sa');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'config.json');
  writeFileSync(file, JSON.stringify({ authxUrl: 'http://10.1.2.3:8080' }));
  const { CSCS_AUTHX_URL: _url, ...rest } = env;
  const r = await cscsSa(['match'], rest);
  assert.is(r.exitCode, 3);
  assert.match(r.stderr, new RegExp(`^cscs-sa: config file ${file}: "http://10\\.1\\.2\\.3:8080" would send the API key unencrypted: use https://`));
});

// nobody must be able to reach the program: not so where a folder above this checkout is private.
const nobodyProbe = isRoot && execaSync('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', process.execPath, BIN, '--version'], { reject: false, stdin: 'ignore' });
if (nobodyProbe && nobodyProbe.exitCode !== 0) {
  skipTest('config files of other users, as nobody', `nobody cannot run ${BIN} here (a folder above it is not readable): ${String(nobodyProbe.stderr).split('\n')[0]}`);
} else if (isRoot) {
  test('as a non-root user (nobody): a config file of a third user is refused, root\'s and our own are used', async () => {
    const homeDir = mkdtempSync(join(tmpdir(), 'cscs-sa-nobody-'));
    try {
      const marker = join(homeDir, 'ran');
      const file = writeConfig(homeDir, 'cjs', marker);
      await execa('chown', ['-R', `${NOBODY}:${NOBODY}`, homeDir]);
      const env = userEnv({ dir: homeDir } as never, { CSCS_AUTHX_URL: gw.url, CSCS_SA_TIMEOUT: '3' });
      const asNobody = (args: string[]) =>
        execa('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', process.execPath, BIN, ...args], { env, extendEnv: false, reject: false, stdin: 'ignore' });

      chownSync(file, 1, 1); // daemon: another user, not root
      const refused = await asNobody(['match']);
      assert.is(refused.exitCode, 3, String(refused.stderr));
      assert.is(String(refused.stderr), `cscs-sa: config file ${file} belongs to another user (uid 1), so nothing in it is used: remove it, or replace it with a file of your own`);
      assert.not.ok(ran(marker));

      chownSync(file, 0, 0); // root's: trusted, as OpenSSH trusts root's files
      const rootOwned = await asNobody(['match']);
      assert.is(rootOwned.exitCode, 0, String(rootOwned.stderr));
      assert.ok(ran(marker));
      rmSync(marker);

      // Its own: the code runs at load (status's too), with the certificate root's file got.
      chownSync(file, NOBODY, NOBODY);
      const own = await asNobody(['status']);
      assert.is(own.exitCode, 0, String(own.stderr));
      assert.ok(ran(marker));
    } finally {
      rmSync(homeDir, { recursive: true, force: true });
    }
  });
} else {
  skipTest('config files of other users, as nobody', 'needs root (chown, setpriv)');
}

const noVictim = victimUnavailable();
if (noVictim) {
  skipTest("as an unprivileged user, a config file reached through a symlink in another user's folder", noVictim);
} else {
  test("as an unprivileged user: a config file reached through a symlink in a folder another user owns is refused, nothing in it runs", async () => {
    const victim = victimHome();
    const attacker = mkdtempSync(join(tmpdir(), 'cscs-sa-attacker-'));
    try {
      chownSync(attacker, ATTACKER_UID, ATTACKER_UID);
      chmodSync(attacker, 0o755);
      // The file is the victim's own, in the victim's own folder: only the link is the attacker's,
      // and they can point it anywhere at any time (another of the victim's files, one of theirs).
      const marker = join(victim.dir, 'ran');
      const target = join(victim.dir, 'config.cjs');
      writeFileSync(target, configText('cjs', marker), { mode: 0o600 });
      chownSync(target, VICTIM_UID, VICTIM_UID);
      const link = join(attacker, 'config.cjs');
      await asAttacker('ln', ['-s', target, link]);
      const env = userEnv({ dir: victim.dir } as never, { CSCS_AUTHX_URL: gw.url, CSCS_SA_TIMEOUT: '3', CSCS_SA_CONFIG: link });
      const r = await asVictim(['match'], env);
      assert.is(r.exitCode, 3, r.stderr);
      assert.is(r.stderr, `cscs-sa: config file ${link} is in folder ${attacker}, which belongs to another user (uid ${ATTACKER_UID}), so nothing in it is used: move the config file to a folder of your own\n`);
      assert.not.ok(ran(marker), 'nothing of it ran');
      assert.is(gw.requests.length, 0);
      // Named directly, the same file is used: the marker would have shown a run.
      const direct = await asVictim(['match'], { ...env, CSCS_SA_CONFIG: target });
      assert.is(direct.exitCode, 0, direct.stderr);
      assert.ok(ran(marker));
    } finally {
      victim.remove();
      rmSync(attacker, { recursive: true, force: true });
    }
  });
}

const noStrace = missingTool('strace');
for (const format of ['cjs', 'mjs', 'js'] as const) {
  const name = `config.${format} is opened once: the code that runs is the text read through the checked descriptor, never imported again by name`;
  if (noStrace) {
    skipTest(name, noStrace);
    continue;
  }
  test(name, async ({ home, env }) => {
    withKeyPair(home);
    const marker = join(home.dir, 'ran');
    const file = writeConfig(home.dir, format, marker);
    chmodSync(file, 0o600);
    const trace = join(home.dir, 'trace');
    // strace slows every process it follows (ssh-keygen too): a deadline that a loaded machine meets.
    // No CSCS_API_KEY: the refresh's key comes from the apiKeyCommand the file exports, which shows
    // that what it exports is used, not only that its code ran.
    const { CSCS_API_KEY: _, ...rest } = env;
    const traced = { ...rest, CSCS_SA_TIMEOUT: '60' };
    const r = await execa('strace', ['-f', '-qq', '-e', 'trace=open,openat,openat2', '-o', trace, process.execPath, BIN, 'match'], { env: traced, extendEnv: false, reject: false, stdin: 'ignore' });
    assert.is(r.exitCode, 0, String(r.stderr));
    assert.ok(existsSync(marker), 'the code ran');
    assert.ok(existsSync(`${marker}.command`), 'its apiKeyCommand ran');
    const opens = readFileSync(trace, 'utf8')
      .split('\n')
      .filter((line) => line.includes(`"${file}"`));
    assert.is(opens.length, 1, opens.join('\n'));
  });
}

test('a config file that does not parse: the reason and where, never the text of the file', async ({ home, env }) => {
  const secret = 'sk-live-SECRET0123456789';
  for (const [name, text, reason] of [
    ['config.json', `${secret}\n`, 'invalid JSON: a character that cannot start a JSON value'],
    ['config.json', `{"apiKeyCommand": ${secret}}`, 'invalid JSON: a character that cannot start a JSON value'],
    ['config.json', `{"apiKeyCommand": "${secret}`, 'invalid JSON at line 1, column 44: Unterminated string'],
    ['config.yaml', `apiKeyCommand: !${secret} x\n`, 'invalid YAML (1:43)'],
    ['config.cjs', `module.exports = { apiKeyCommand: ${secret} ${secret} };\n`, 'SyntaxError in its code'],
    ['config.mjs', `import settings from './${secret}.mjs';\nexport default settings;\n`, 'it imports a file by a relative path, which an ES module config file cannot: keep the settings in the file itself, or use node: modules only'],
  ] as const) {
    const dir = join(home.dir, '.config', 'cscs-sa');
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const file = join(dir, name);
    writeFileSync(file, text, { mode: 0o600 });
    const r = await cscsSa(['match'], env);
    assert.is(r.exitCode, 3, r.stderr);
    assert.is(r.stderr, `cscs-sa: cannot read config file ${file}: ${reason}: correct or remove the file\n`);
  }
});

test.run();
