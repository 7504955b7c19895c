/**
 * Other SSH clients (docs/other-clients.md), measured: paramiko and Fabric (Debian's
 * python3-paramiko and python3-fabric) read the same ssh_config as ssh, through
 * test/helpers/paramiko_client.py. They run `Match exec` when they look a host up (paramiko's
 * SSHConfig.lookup, Fabric's Connection()), not when they connect, so a connection opened after
 * the certificate expired fails; `proxy --agent` refreshes at connect time and fixes that.
 */
import * as assert from 'uvu/assert';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { worldSuite } from '../helpers/suites.ts';

/** Debian's python, where python3-paramiko and python3-fabric are installed. */
const PYTHON = '/usr/bin/python3';
const CLIENT = fileURLToPath(new URL('../helpers/paramiko_client.py', import.meta.url));
/**
 * The expiry cases' certificate fetched at look-up lives 5 s, refreshed when fewer than 1 s are
 * left: Fabric looks up the host and its jump host one after the other, and the second must
 * still find it fresh (three seconds or more for a Node start, on a loaded machine).
 */
const VALIDITY = '-5s:+5s';
const MARGIN = '1';
/**
 * The client's wait between look-up and connection, which is most of this file's wall time: the
 * look-up's certificate was signed before the wait began, so it has ended a second before the
 * wait does (sshd counts whole seconds).
 */
const PAST_EXPIRY = '6';

let agentPid = 0;
const { world, test } = worldSuite('clients', { after: () => agentPid && process.kill(agentPid) });

/**
 * The layout `setup` writes (each host one of ProxyCommand or ProxyJump, the Match line last,
 * naming the host as typed), pointed at the loopback sshd; the jump host's proxy logs its
 * connections, which shows that a client went through it.
 */
function clientConfig({ agent = false } = {}): { config: string; proxyLog: string } {
  const home = world.home;
  const config = join(home.dir, 'client_config');
  const proxyLog = join(home.dir, 'proxy.log');
  writeFileSync(
    config,
    `Host sa-ela
    HostName 127.0.0.1
    Port ${world.ela.port}
    ProxyCommand cscs-sa proxy${agent ? ' --agent' : ''} --log ${proxyLog} %h %p
Host sa-clariden
    HostName 127.0.0.1
    Port ${world.clariden.port}
    ProxyJump sa-ela
Host sa-*
    User ${world.user}
    IdentityFile ${home.key}
    CertificateFile ${home.cert}
    IdentitiesOnly yes
    BatchMode yes
    StrictHostKeyChecking no
    UserKnownHostsFile /dev/null
Match originalhost sa-* exec "cscs-sa match %n"
`,
  );
  return { config, proxyLog };
}

function client(config: string, host: string, wait: string, mode: string, env = world.env) {
  return execa(PYTHON, [CLIENT, config, host, wait, mode], { env, extendEnv: false, reject: false, stdin: 'ignore' });
}

/**
 * A fresh HOME whose first certificate lives 5 s, and an empty ssh-agent for it. Only the first:
 * a refresh at connect time gets the usual lifetime, which a client on a loaded machine cannot
 * outlast while it authenticates.
 */
async function shortLivedHome(): Promise<Record<string, string>> {
  world.freshHome({ env: { CSCS_SA_REFRESH_MARGIN: MARGIN } });
  world.gateway.faults.sign.push({ validity: VALIDITY });
  const socket = join(world.home.dir, 'agent.sock');
  if (agentPid) process.kill(agentPid);
  const agent = await execa('ssh-agent', ['-s', '-a', socket]);
  agentPid = Number(/SSH_AGENT_PID=(\d+)/.exec(String(agent.stdout))![1]);
  return { ...world.env, SSH_AUTH_SOCK: socket };
}

/** What the user sees when the client logged in and ran the command. */
function assertLoggedIn(r: { exitCode?: number; stdout: unknown; stderr: unknown }): void {
  assert.is(r.stderr, '');
  assert.is(r.exitCode, 0);
  assert.is(r.stdout, 'hello from paramiko');
}

test('paramiko: SSHConfig.lookup() runs Match exec (through invoke), which fetches the certificate connect() then uses', async () => {
  world.freshHome();
  const { config } = clientConfig();
  assert.not.ok(existsSync(world.home.cert));
  const r = await client(config, 'sa-ela', '0', 'paramiko');
  assertLoggedIn(r);
  assert.is(world.gateway.signCalls, 1);
});

test('paramiko without the invoke package: lookup() of a config with Match exec raises, before any connection', async () => {
  world.freshHome();
  const { config } = clientConfig();
  const r = await client(config, 'sa-ela', '0', 'paramiko-without-invoke');
  assert.is(r.exitCode, 1);
  assert.match(r.stderr, /^ModuleNotFoundError: import of invoke halted/);
  assert.is(world.gateway.requests.length, 0);
});

test('Fabric: Connection() runs Match exec for the host and its ProxyJump host; run() goes through the jump host', async () => {
  world.freshHome();
  const { config, proxyLog } = clientConfig();
  const r = await client(config, 'sa-clariden', '0', 'fabric');
  assertLoggedIn(r);
  assert.is(world.gateway.signCalls, 1);
  assert.match(readFileSync(proxyLog, 'utf8'), new RegExp(`cscs-sa:proxy connected to 127\\.0\\.0\\.1 port ${world.ela.port}\\n`));
});

// paramiko straight to the jump host (its ProxyCommand); Fabric through it (ProxyJump).
for (const [name, host, mode, made] of [
  ['paramiko', 'sa-ela', 'paramiko', 'SSHConfig.lookup()'],
  ['Fabric', 'sa-clariden', 'fabric', 'Connection()'],
] as const) {
  test(`${name}: ${made}, then a connection after that certificate expired fails with a bare "Authentication failed."`, async () => {
    await shortLivedHome();
    const { config } = clientConfig();
    const r = await client(config, host, PAST_EXPIRY, mode);
    assert.is(r.stderr, 'AuthenticationException: Authentication failed.');
    assert.is(r.exitCode, 1);
    assert.is(world.gateway.signCalls, 1, 'nothing refreshed at connect time');
  });

  test(`${name} with ProxyCommand "cscs-sa proxy --agent": the proxy refreshes at connect time, the agent serves the certificate`, async () => {
    const env = await shortLivedHome();
    const { config } = clientConfig({ agent: true });
    const r = await client(config, host, PAST_EXPIRY, `${mode}-agent`, env);
    assertLoggedIn(r);
    assert.is(world.gateway.signCalls, 2, 'one at look-up, one by the proxy at connect time');
  });
}

test.run();
