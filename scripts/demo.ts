/**
 * npm run demo: cscs-sa end to end without a CSCS account. A local double of the CSCS gateway
 * (signing real certificates) and two loopback sshd stand in for ela and clariden; `cscs-sa setup`
 * runs into a temporary HOME exactly as for a user, and plain ssh, scp and rsync use what it wrote.
 * As root, it runs in a private network and mount namespace (scripts/namespace.js) where
 * ela.cscs.ch and clariden.alps.cscs.ch themselves lead to the two sshd (127.0.0.2 and 127.0.0.3
 * port 22, through that namespace's copy of /etc/hosts); otherwise the user's overrides file
 * (~/.ssh/cscs-sa.overrides) leads the two hosts to 127.0.0.1.
 *
 * It fails unless ssh itself made the refresh happen (sign calls counted at the double while ssh
 * ran), from no certificate and from an expired one.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { execa } from 'execa';
import { GatewayDouble } from '../test/helpers/gateway-double.ts';
import { Sshd } from '../test/helpers/sshd.ts';
import { BIN } from '../test/helpers/cli.ts';
import { ADDRESSES, addNames, unavailable } from '../test/helpers/cscs-names.ts';
import { rerunInNamespace } from './namespace.js';

rerunInNamespace();

const home = mkdtempSync(join(tmpdir(), 'cscs-sa-demo-'));
const gateway = new GatewayDouble({ apiKey: 'demo-api-key-not-a-real-one', principals: [userInfo().username] });
const say = (text: string) => process.stdout.write(`\n${text}\n`);

let ela: Sshd | undefined;
let clariden: Sshd | undefined;
let restoreHosts: (() => void) | undefined;
try {
  const why = await unavailable();
  say('== Starting a local double of the CSCS gateway and two loopback sshd (ela, clariden)');
  await gateway.start();
  if (!why) restoreHosts = addNames();
  const at = (name: keyof typeof ADDRESSES) => (why ? {} : { address: ADDRESSES[name].address, port: 22 });
  ela = await new Sshd('ela', gateway.caPublicKey, at('ela')).start();
  clariden = await new Sshd('clariden', gateway.caPublicKey, at('clariden')).start();
  console.log(`gateway ${gateway.url}, ela on ${ela.address} port ${ela.port}, clariden on ${clariden.address} port ${clariden.port}`);

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
  // What the user types, and what they see. ssh reads the config of the password database's
  // home, not $HOME: the demo passes -F, and shows the command as the user types it.
  const step = async (file: string, args: string[], shown = `${file} ${args.join(' ')}`, { fails = false, stdout }: { fails?: boolean; stdout?: string } = {}) => {
    process.stdout.write(`$ ${shown}\n`);
    const r = await execa(file, args, { env, extendEnv: false, reject: false, stdin: 'ignore', all: true, ...(stdout ? { stdout: { file: stdout } } : {}) });
    if (r.all) process.stdout.write(`${String(r.all).replace(new RegExp(home, 'g'), '~')}\n`);
    if ((r.exitCode !== 0) !== fails) throw new Error(`${shown} ${fails ? 'succeeded, but should have failed' : `failed with exit code ${r.exitCode}`}`);
  };
  const ssh = (args: string[], options = {}) => step('ssh', ['-F', sshConfig, ...args], `ssh ${args.map((a) => (/\s/.test(a) ? `'${a}'` : a)).join(' ')}`, options);
  /** Runs ssh and fails unless the certificate was refreshed while it ran: by ssh's Match exec. */
  const sshRefreshes = async (args: string[]) => {
    const before = gateway.signCalls;
    await ssh(args);
    const calls = gateway.signCalls - before;
    console.log(`sign calls made while ssh ran: ${calls}`);
    if (calls < 1) throw new Error('ssh did not run cscs-sa match (Match exec): the certificate was not refreshed');
  };

  say(`== A fresh HOME (${home}) with no key and an ssh config of its own`);
  await step('cat', [sshConfig], 'cat ~/.ssh/config');
  if (why) {
    // Your own settings for the sa- hosts live in the overrides file, which setup never writes.
    writeFileSync(
      join(home, '.ssh', 'cscs-sa.overrides'),
      `Host sa-ela\n    HostName 127.0.0.1\n    Port ${ela.port}\n    HostKeyAlias ${ADDRESSES.ela.hostName}\n` +
        `Host sa-clariden\n    HostName 127.0.0.1\n    Port ${clariden.port}\n    HostKeyAlias ${ADDRESSES.clariden.hostName}\n`,
      { mode: 0o600 },
    );
    say(`== Not root (${why}): the overrides file leads ela and clariden to 127.0.0.1`);
    await step('cat', [join(home, '.ssh', 'cscs-sa.overrides')], 'cat ~/.ssh/cscs-sa.overrides');
  } else {
    say("== As root: ela.cscs.ch and clariden.alps.cscs.ch lead to the two sshd (/etc/hosts of a private namespace: the machine's own is untouched)");
    await step('getent', ['hosts', ADDRESSES.ela.hostName, ADDRESSES.clariden.hostName]);
  }

  say('== cscs-sa setup: creates the key pair, learns the login name from a first certificate, writes the ssh config');
  await step('cscs-sa', ['setup', '--hosts', 'clariden', '--ssh-config', sshConfig], 'cscs-sa setup --hosts clariden');
  await step('cat', [sshConfig], 'cat ~/.ssh/config');

  say('== No host keys pinned yet: ssh refuses to guess');
  await ssh(['sa-clariden', 'true'], { fails: true });

  say('== Pin them once, from a trusted machine: fetched through the jump host, fingerprints to compare');
  const pins = join(home, 'cscs.known_hosts');
  await step('cscs-sa', ['known-hosts', '--hosts', 'clariden', '--ssh-config', sshConfig], 'cscs-sa known-hosts --hosts clariden > cscs.known_hosts', { stdout: pins });
  await step('cat', [pins], 'cat cscs.known_hosts');
  await step('cscs-sa', ['setup', '--hosts', 'clariden', '--ssh-config', sshConfig, '--known-hosts', pins], 'cscs-sa setup --hosts clariden --known-hosts cscs.known_hosts');

  say('== From no certificate: ssh itself fetches one (Match exec runs cscs-sa match)');
  const certificate = join(home, '.ssh', 'cscs-key-sa-cert.pub');
  await step('rm', [certificate], 'rm ~/.ssh/cscs-key-sa-cert.pub');
  await sshRefreshes(['sa-clariden', 'echo hello from clariden, as $(whoami)']);

  say('== From an expired certificate: ssh replaces it before it reads it');
  const expired = await gateway.sign(readFileSync(join(home, '.ssh', 'cscs-key-sa.pub'), 'utf8'), { validity: '-10m:-5m' });
  writeFileSync(certificate, `${expired}\n`);
  await step('cscs-sa', ['status'], 'cscs-sa status   # an expired certificate put in place (exit 1)', { fails: true });
  await sshRefreshes(['sa-clariden', 'echo hello again']);

  say('== scp up and back, byte for byte');
  const data = join(home, 'results.bin');
  writeFileSync(data, randomBytes(2 * 1024 * 1024));
  await step('scp', ['-q', '-F', sshConfig, data, `sa-clariden:${join(home, 'remote.bin')}`], 'scp results.bin sa-clariden:remote.bin');
  await step('scp', ['-q', '-F', sshConfig, `sa-clariden:${join(home, 'remote.bin')}`, join(home, 'back.bin')], 'scp sa-clariden:remote.bin back.bin');
  await step('cmp', [data, join(home, 'back.bin')], 'cmp results.bin back.bin && echo identical');
  console.log('identical');

  say('== rsync a tree up');
  mkdirSync(join(home, 'project', 'src'), { recursive: true });
  for (const name of ['a.txt', 'b.txt', 'src/main.c']) writeFileSync(join(home, 'project', name), `${name}\n`);
  await step('rsync', ['-a', '--stats', '-e', `ssh -F ${sshConfig}`, `${join(home, 'project')}/`, `sa-clariden:${join(home, 'project-copy')}/`], 'rsync -a --stats project/ sa-clariden:project-copy/');

  say('== 8 ssh commands at once share one certificate: no gateway call while it is fresh, one refresh for all when it is not');
  const before = gateway.signCalls;
  await Promise.all(Array.from({ length: 8 }, () => execa('ssh', ['-F', sshConfig, 'sa-clariden', 'true'], { env, extendEnv: false })));
  console.log(`sign calls for 8 parallel ssh: ${gateway.signCalls - before}`);

  say('== What is in place now (match first: on a slow machine the steps above may have outlived the certificate)');
  await step('cscs-sa', ['match'], 'cscs-sa match');
  await step('cscs-sa', ['status'], 'cscs-sa status');
  say(`== Done: ${gateway.signCalls} certificate(s) signed for ${gateway.tokenCalls} token(s) in the whole demo`);
} finally {
  await Promise.all([ela?.stop(), clariden?.stop()]);
  await gateway.stop();
  restoreHosts?.();
  rmSync(home, { recursive: true, force: true });
}
