/**
 * The trust module's rules, in process: what a file must be (type, owner, mode, size) on its open
 * descriptor, and the walk of a path as given (each folder and symbolic link on the way).
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, chownSync, lchownSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../../src/base/errors.ts';
import { type FileRules, readTrusted, walkPath } from '../../src/base/trust.ts';

const test = suite<{ dir: string }>('trust');
const isRoot = process.getuid?.() === 0;
const OTHER_UID = 4242;
const RULES: FileRules = { what: 'file', error: ConfigError, maxBytes: 16, walk: true };

test.before.each((ctx) => {
  // HOME is this folder: the walk trusts the folders above it (/tmp), as safe_path stops at home.
  ctx.dir = mkdtempSync(join(tmpdir(), 'cscs-sa-unit-trust-'));
  process.env.HOME = ctx.dir;
});
test.after.each((ctx) => rmSync(ctx.dir, { recursive: true, force: true }));

/** The refusal's line, or 'ok'. */
function verdict(path: string, rules = RULES): string {
  try {
    return readTrusted(path, rules) === undefined ? 'none' : 'ok';
  } catch (err) {
    assert.instance(err, ConfigError);
    return (err as ConfigError).line;
  }
}

test('a small regular file of ours, in folders of ours: read', ({ dir }) => {
  mkdirSync(join(dir, 'a'), { mode: 0o755 });
  writeFileSync(join(dir, 'a', 'f'), 'hello', { mode: 0o644 });
  assert.is(readTrusted(join(dir, 'a', 'f'), RULES)?.text, 'hello');
  assert.is(verdict(join(dir, 'a', 'missing')), 'none');
});

test('type, mode and size are judged on the open file', ({ dir }) => {
  const file = join(dir, 'f');
  writeFileSync(file, 'x'.repeat(17), { mode: 0o644 });
  assert.is(verdict(file), `file ${file} is 17 bytes, more than such a file holds (16): check that ${file} is the right file`);
  writeFileSync(file, 'x');
  chmodSync(file, 0o664);
  assert.is(verdict(file), `file ${file} is writable by others: chmod go-w ${file}`);
  chmodSync(file, 0o640);
  assert.is(verdict(file, { ...RULES, mode: 'secret' }), `file ${file} has permissions 0640, readable by others: run chmod 600 ${file}`);
  assert.is(verdict(dir), `file ${dir} is a directory: point it at a file, or remove what is at ${dir}`);
  assert.is(verdict('/dev/zero', { ...RULES, walk: false }), 'file /dev/zero is not a regular file: point it at a file, or remove what is at /dev/zero');
});

test('the walk: a folder others can write, anywhere on the path as given, even behind a symlink', ({ dir }) => {
  const open = join(dir, 'open');
  mkdirSync(open, { mode: 0o755 });
  chmodSync(open, 0o777);
  const real = join(dir, 'real');
  mkdirSync(real, { mode: 0o755 });
  writeFileSync(join(real, 'f'), 'x', { mode: 0o644 });
  // The file is fine, and so are the folders above it: only the link's folder is open.
  symlinkSync(join(real, 'f'), join(open, 'link'));
  const path = join(open, 'link');
  assert.is(verdict(path), `file ${path} is in folder ${open}, which others can write: chmod go-w ${open}, or move the file to a folder only you can write`);
  // A link to the open folder, from a good one: the walk goes through the link's target too.
  writeFileSync(join(open, 'g'), 'x', { mode: 0o644 });
  symlinkSync(open, join(real, 'via'));
  const through = join(real, 'via', 'g');
  assert.is(verdict(through), `file ${through} is in folder ${open}, which others can write: chmod go-w ${open}, or move the file to a folder only you can write`);
  // `..` is taken from the folder the kernel is in (the link's target, here dir), not from the text (which would give real/real/f).
  assert.is(walkPath(`${real}/via/../real/f`, RULES), join(real, 'f'));
});

if (isRoot) {
  test('the walk: a folder or a symbolic link of another user on the way', ({ dir }) => {
    const theirs = join(dir, 'theirs');
    mkdirSync(theirs, { mode: 0o755 });
    writeFileSync(join(theirs, 'f'), 'x', { mode: 0o644 });
    chownSync(theirs, OTHER_UID, OTHER_UID);
    const path = join(theirs, 'f');
    assert.is(verdict(path), `file ${path} is in folder ${theirs}, which belongs to another user (uid ${OTHER_UID}): move the file to a folder of your own`);
    writeFileSync(join(dir, 'f'), 'x', { mode: 0o644 });
    const link = join(dir, 'link');
    symlinkSync(join(dir, 'f'), link);
    lchownSync(link, OTHER_UID, OTHER_UID);
    assert.is(verdict(link), `file ${link} is reached through symbolic link ${link}, which belongs to another user (uid ${OTHER_UID}): point it at the file itself, or remove ${link}`);
    chownSync(join(dir, 'f'), OTHER_UID, OTHER_UID);
    assert.is(verdict(join(dir, 'f')), `file ${join(dir, 'f')} belongs to another user (uid ${OTHER_UID}): remove it, or replace it with a file of your own`);
  });
}

test('a symlink loop ends with one line', ({ dir }) => {
  symlinkSync(join(dir, 'b'), join(dir, 'a'));
  symlinkSync(join(dir, 'a'), join(dir, 'b'));
  assert.match(verdict(join(dir, 'a')), /^cannot read file .*\/a: ELOOP$/);
});

test.run();
