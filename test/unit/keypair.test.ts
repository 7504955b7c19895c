/**
 * The private key as ssh judges it before use (src/core/keypair.ts openPrivateKey): by the file it
 * opens, so a symbolic link by its target. doctor shows this error as its line and fix
 * (test/integration/doctor.test.ts: "a private key readable by others").
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openPrivateKey } from '../../src/core/keypair.ts';
import { CscsSaError } from '../../src/base/errors.ts';

const test = suite<{ dir: string }>('private key');
test.before.each((ctx) => {
  ctx.dir = mkdtempSync(join(tmpdir(), 'cscs-sa-keypair-'));
});
test.after.each(({ dir }) => rmSync(dir, { recursive: true, force: true }));

function refusal(path: string): { message: string; fix?: string } {
  try {
    openPrivateKey(path);
  } catch (err) {
    assert.instance(err, CscsSaError);
    return { message: (err as CscsSaError).message, fix: (err as CscsSaError).fix };
  }
  throw new Error(`${path} was not refused`);
}

test('a symbolic link to a key file readable by others: judged by its target, named by the path given', ({ dir }) => {
  const target = join(dir, 'key-target');
  const key = join(dir, 'key');
  writeFileSync(target, 'x', { mode: 0o644 });
  symlinkSync(target, key);
  assert.equal(refusal(key), { message: `key ${key} has permissions 0644, which ssh refuses`, fix: `run chmod 600 ${key}` });
});

test('a symbolic link to a 0600 key file is the key; a link to nothing is refused, not taken for no key', ({ dir }) => {
  const target = join(dir, 'key-target');
  const key = join(dir, 'key');
  writeFileSync(target, 'x', { mode: 0o600 });
  symlinkSync(target, key);
  assert.ok(openPrivateKey(key)?.isFile());
  rmSync(target);
  assert.equal(refusal(key), { message: `key ${key} is a symbolic link to nothing`, fix: 'restore its target or remove the link' });
  assert.is(openPrivateKey(join(dir, 'absent')), undefined);
});

test.run();
