/** The ssh_config words setup writes, checked against what ssh's lexer would make of them. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { configWord, shellWord, sshCommand, unsafeReason } from '../../src/ssh/lex.ts';
import { UsageError } from '../../src/base/errors.ts';

test('plain paths stay as they are; spaces get double quotes; % is doubled only where ssh expands tokens', () => {
  assert.is(configWord('key', '/home/u/.ssh/cscs-key-sa'), '/home/u/.ssh/cscs-key-sa');
  assert.is(configWord('key', '/home/my user/.ssh/k'), '"/home/my user/.ssh/k"');
  assert.is(configWord('key', '/home/u/100%/k', { tokens: true }), '/home/u/100%%/k');
  assert.is(configWord('include', '/home/u/100%/k'), '/home/u/100%/k');
});

test('shell words: single quotes around anything the shell would split or expand', () => {
  assert.is(shellWord('node', '/usr/bin/node'), '/usr/bin/node');
  assert.is(shellWord('node', '/opt/my node/bin/node'), "'/opt/my node/bin/node'");
  assert.is(shellWord('node', '/opt/$HOME/node'), "'/opt/$HOME/node'");
  assert.is(sshCommand([{ what: 'c', value: '/a b/node' }, { what: 'c', value: '/x/100%/cli.cjs' }], 'match %n'), "'/a b/node' /x/100%%/cli.cjs match %n");
});

const REFUSED: [string, string, Parameters<typeof unsafeReason>[1]?][] = [
  ['/a\nProxyCommand evil', 'newline or another control character'],
  ['/a\tb', 'newline or another control character'],
  ['/a"b', 'quote or a backslash'],
  ["/a'b", 'quote or a backslash'],
  ['/a\\b', 'quote or a backslash'],
  ['/a #b', 'word starting with #'],
  ['/a/${HOME}/k', 'environment variable', { env: true }],
  ['/a/*.conf', 'pattern', { glob: true }],
  ['', 'empty'],
];

for (const [value, reason, expansion] of REFUSED) {
  test(`refuses ${JSON.stringify(value)}: ${reason}`, () => {
    assert.match(unsafeReason(value, expansion) ?? '', reason);
    assert.throws(() => configWord('the key', value, expansion), (err: unknown) => err instanceof UsageError && err.exitCode === 2);
  });
}

test('what ssh can carry passes: # inside a word, $ without {, spaces', () => {
  for (const value of ['/a/b#c', '/a/$b', '/a b/c d']) assert.is(unsafeReason(value, { tokens: true, env: true }), undefined, value);
});

test.run();
