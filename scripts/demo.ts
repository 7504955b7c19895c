/**
 * npm run demo: cscs-sa end to end without a CSCS account. A local double of the CSCS gateway
 * (signing real certificates) and two loopback sshd stand in for ela and clariden; `cscs-sa setup`
 * runs into a temporary HOME exactly as for a user, and plain ssh, scp and rsync use what it wrote.
 * The only difference from the real thing: a wrapper ssh config points the two CSCS host names
 * at 127.0.0.1.
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { execa } from 'execa';
import { GatewayDouble } from '../test/helpers/gateway-double.ts';
import { Sshd } from '../test/helpers/sshd.ts';
import { BIN } from '../test/helpers/cli.ts';

const home = mkdtempSync(join(tmpdir(), 'cscs-sa-demo-'));
const gateway = new GatewayDouble({ apiKey: 'demo-api-key-not-a-real-one', principals: [userInfo().username] });
const say = (text: string) => process.stdout.write(`\n${text}\n`);

let ela: Sshd | undefined;
let clariden: Sshd | undefined;
try {
  say('== Starting a local double of the CSCS gateway and two loopback sshd (ela, clariden)');
  await gateway.start();
  ela = await new Sshd('ela', gateway.caPublicKey).start();
  clariden = await new Sshd('clariden', gateway.caPublicKey).start();
  console.log(`gateway ${gateway.url}, ela on port ${ela.port}, clariden on port ${clariden.port}`);

  const bin = join(home, 'bin');
  mkdirSync(bin);
  symlinkSync(BIN, join(bin, 'cscs-sa'));
  mkdirSync(join(home, '.ssh'), { mode: 0o700 });
  const sshConfig = join(home, '.ssh', 'config');
  writeFileSync(sshConfig, 'Host github.com\n    User git\n', { mode: 0o600 });
  const env: Record<string, string> = {
    PATH: `${bin}:${process.env.PATH}`,
    HOME: home,
    SHELL: '/bin/sh',
    LANG: 'C.UTF-8',
    CSCS_API_KEY: 'demo-api-key-not-a-real-one',
    CSCS_AUTHX_URL: gateway.url,
  };
  // What the user types, and what they see.
  const step = async (file: string, args: string[], shown = `${file} ${args.join(' ')}`) => {
    process.stdout.write(`$ ${shown}\n`);
    const r = await execa(file, args, { env, extendEnv: false, reject: false, stdin: 'ignore', all: true });
    if (r.all) process.stdout.write(`${String(r.all).replace(new RegExp(home, 'g'), '~')}\n`);
    if (r.exitCode !== 0) throw new Error(`${shown} failed with exit code ${r.exitCode}`);
  };

  say(`== A fresh HOME (${home}) with no key and an ssh config of its own`);
  await step('cat', [sshConfig], 'cat ~/.ssh/config');

  say('== cscs-sa setup: creates the key pair, learns the login name from a first certificate, writes the ssh config');
  await step('cscs-sa', ['setup', '--hosts', 'clariden', '--ssh-config', sshConfig], 'cscs-sa setup --hosts clariden');
  await step('cat', [sshConfig], 'cat ~/.ssh/config');

  // The one change for the demo: the CSCS host names lead to the loopback sshd.
  const demoConfig = join(home, 'demo_ssh_config');
  writeFileSync(
    demoConfig,
    `Host sa-ela\n    HostName 127.0.0.1\n    Port ${ela.port}\n    StrictHostKeyChecking no\n    UserKnownHostsFile /dev/null\n    LogLevel ERROR\n` +
      `Host sa-clariden\n    HostName 127.0.0.1\n    Port ${clariden.port}\n    StrictHostKeyChecking no\n    UserKnownHostsFile /dev/null\n    LogLevel ERROR\n` +
      `Host *\nInclude ${sshConfig}\n`,
  );
  say('== Plain ssh through ProxyJump sa-ela (demo only: -F points ela.cscs.ch and clariden.alps.cscs.ch at 127.0.0.1)');
  await step('ssh', ['-F', demoConfig, 'sa-clariden', 'echo', 'hello from clariden, as $(whoami)'], "ssh sa-clariden 'echo hello from clariden, as $(whoami)'");

  say('== scp up and back, byte for byte');
  const data = join(home, 'results.bin');
  writeFileSync(data, randomBytes(2 * 1024 * 1024));
  await step('scp', ['-q', '-F', demoConfig, data, `sa-clariden:${join(home, 'remote.bin')}`], 'scp results.bin sa-clariden:remote.bin');
  await step('scp', ['-q', '-F', demoConfig, `sa-clariden:${join(home, 'remote.bin')}`, join(home, 'back.bin')], 'scp sa-clariden:remote.bin back.bin');
  await step('cmp', [data, join(home, 'back.bin')], 'cmp results.bin back.bin && echo identical');
  console.log('identical');

  say('== rsync a tree up');
  mkdirSync(join(home, 'project', 'src'), { recursive: true });
  for (const name of ['a.txt', 'b.txt', 'src/main.c']) writeFileSync(join(home, 'project', name), `${name}\n`);
  await step('rsync', ['-a', '--stats', '-e', `ssh -F ${demoConfig}`, `${join(home, 'project')}/`, `sa-clariden:${join(home, 'project-copy')}/`], 'rsync -a --stats project/ sa-clariden:project-copy/');

  say('== 8 ssh commands at once share the certificate in place: no extra gateway calls');
  const before = gateway.signCalls;
  await Promise.all(Array.from({ length: 8 }, () => execa('ssh', ['-F', demoConfig, 'sa-clariden', 'true'], { env, extendEnv: false })));
  console.log(`sign calls for 8 parallel ssh: ${gateway.signCalls - before}`);

  say('== What is in place now');
  await step('cscs-sa', ['status'], 'cscs-sa status');
  say(`== Done: ${gateway.signCalls} certificate(s) signed for ${gateway.tokenCalls} token(s) in the whole demo`);
} finally {
  await Promise.all([ela?.stop(), clariden?.stop()]);
  await gateway.stop();
  rmSync(home, { recursive: true, force: true });
}
