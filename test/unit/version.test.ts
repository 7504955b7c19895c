/**
 * What each OpenSSH version understands (src/ssh/version.ts), and that the block setup writes
 * holds nothing the oldest supported client would stop at.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { sshArgsHaveG } from '../../src/ssh/parent.ts';
import { renderBlock } from '../../src/ssh/sshconfig.ts';
import { OLDEST, parseSshVersion, sshOptionString, unknownTokens } from '../../src/ssh/version.ts';

const v = (text: string) => parseSshVersion(`OpenSSH_${text}, OpenSSL 3.0.19 27 Jan 2026`)!;

test('ssh -V: the version, or undefined for another client', () => {
  assert.equal(v('8.2p1'), { major: 8, minor: 2, text: '8.2p1' });
  assert.equal(parseSshVersion('OpenSSH_for_Windows_9.5p1, LibreSSL 3.8.2'), undefined);
  assert.equal(parseSshVersion('dropbear v2022.83'), undefined);
});

test('Match exec tokens: %C only since 8.3; %% is a literal', () => {
  assert.equal(unknownTokens('ssh -S dir/%C -O check _ || cscs-sa match %n', v('8.2p1')), ['%C']);
  assert.equal(unknownTokens('ssh -S dir/%C -O check _ || cscs-sa match %n', v('8.3p1')), []);
  assert.equal(unknownTokens('date +%%s; %i', v('9.9p1')), ['%i']);
});

test('-P takes an argument only since 9.4, so -P -G is -G before it', () => {
  assert.ok(sshArgsHaveG(['-P', '-G', 'h'], sshOptionString(v('8.2p1'))));
  assert.ok(sshArgsHaveG(['-PG', 'h'], sshOptionString(v('9.3p1'))));
  assert.not.ok(sshArgsHaveG(['-P', '-G', 'h'], sshOptionString(v('9.4p1'))));
  assert.not.ok(sshArgsHaveG(['-P', '-G', 'h']));
});

test('every Match exec setup writes (plain, burst mode, another account, --env) holds only tokens OpenSSH 7.3 expands', () => {
  const base = { prefix: 'sa-', user: 'svc', key: '/home/u/.ssh/cscs-key-sa', clusters: ['clariden'], command: ['cscs-sa'], knownHosts: '/home/u/.ssh/k' };
  const blocks = [
    renderBlock(base),
    renderBlock({ ...base, multiplex: '/home/u/.ssh/cscs-sa-cm' }),
    renderBlock({ ...base, prefix: 'proj-', key: '/home/u/50% keys/cscs-key-proj', matchArgs: ['--account', 'proj', '--env', 'tds'] }),
  ];
  for (const block of blocks) {
    const commands = [...block.matchAll(/^Match .* exec "(.*)"$/gm)].map((m) => m[1]!);
    assert.is(commands.length, 1);
    assert.equal(unknownTokens(commands[0]!, OLDEST), []);
  }
});

test.run();
