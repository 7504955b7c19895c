/**
 * Agent mode: the ProxyCommand loads the certificate into ssh-agent before the first byte, so
 * ssh authenticates with it even though the certificate file did not exist when ssh read its
 * identity files (no Match exec in this config at all).
 */
import * as assert from 'uvu/assert';
import { execa } from 'execa';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { worldSuite } from '../helpers/suites.ts';
import { cscsSa } from '../helpers/cli.ts';
import { withKeyPair } from '../helpers/prepared.ts';

let agentPid = '';
const { world, test } = worldSuite('agent', { after: () => agentPid && process.kill(Number(agentPid)) });

test('ssh authenticates with the agent-loaded certificate; the file was absent when ssh started', async () => {
  const home = world.freshHome();
  const socket = join(home.dir, 'agent.sock');
  const agent = await execa('ssh-agent', ['-s', '-a', socket]);
  agentPid = /SSH_AGENT_PID=(\d+)/.exec(String(agent.stdout))![1]!;
  const env = { ...world.env, SSH_AUTH_SOCK: socket };
  // The key pair exists, the certificate does not (sign was a Node start to get there).
  withKeyPair(home);
  const config = join(home.dir, 'agent_config');
  writeFileSync(
    config,
    `Host sa-ela\n    HostName 127.0.0.1\n    Port ${world.ela.port}\n    User ${world.user}\n    IdentityFile ${home.key}\n    IdentitiesOnly no\n` +
      `    ProxyCommand cscs-sa proxy --agent %h %p\n    BatchMode yes\n    StrictHostKeyChecking no\n    UserKnownHostsFile /dev/null\n    LogLevel ERROR\n`,
  );
  world.gateway.reset();
  const r = await execa('ssh', ['-F', config, 'sa-ela', 'echo', 'ok'], { env, extendEnv: false, reject: false });
  assert.is(r.exitCode, 0, String(r.stderr));
  assert.is(String(r.stdout), 'ok');
  assert.is(world.gateway.signCalls, 1, 'the proxy refreshed the missing certificate');
  assert.ok(existsSync(home.cert));
  const listed = await execa('ssh-add', ['-l'], { env, extendEnv: false });
  assert.match(String(listed.stdout), /\(ED25519-CERT\)/);

  // Without agent mode the same config fails: ssh never saw a certificate.
  rmSync(home.cert);
  await execa('ssh-add', ['-D'], { env, extendEnv: false });
  writeFileSync(config, readFileSync(config, 'utf8').replace(' --agent', ''));
  const without = await execa('ssh', ['-F', config, 'sa-ela', 'true'], { env, extendEnv: false, reject: false });
  assert.is.not(without.exitCode, 0);
  assert.match(String(without.stderr), /Permission denied \(publickey\)/);
});

test('agent mode without a running agent: one line naming the fix', async () => {
  world.freshHome();
  const r = await cscsSa(['proxy', '--agent', '127.0.0.1', String(world.ela.port)], world.env);
  assert.is(r.exitCode, 7);
  assert.is(r.stderr, 'cscs-sa: agent mode needs a running ssh-agent, and SSH_AUTH_SOCK is not set: start one with eval "$(ssh-agent)"\n');
});

test.run();
