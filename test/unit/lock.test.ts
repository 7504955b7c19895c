/**
 * When a lock may be taken over: never while its holder lives on this host, at once when it is
 * gone (or its pid now names another process), after `staleMs` of silence from another host, after
 * a second for a lock nobody finished writing; and what is at the lock path that cscs-sa never
 * creates is refused at once.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { acquireLock, LockBusyError } from '../../src/refresh/lock.ts';
import { type Owner, staleReason } from '../../src/core/lockfile.ts';
import { Deadline } from '../../src/base/deadline.ts';
import { LocalFileError } from '../../src/base/errors.ts';
import { processIdentity } from '../../src/base/proc.ts';
import { skipTest } from '../helpers/suites.ts';

/** Above Linux's PID_MAX_LIMIT (4194304): no process ever has it. */
const NO_SUCH_PID = 4_194_305;
const here = (pid: number, identity?: string): Owner => ({ pid, host: hostname(), nonce: 'n', identity });
const elsewhere: Owner = { pid: process.pid, host: 'other-host.example', nonce: 'n' };

test('a live holder on this host is waited for, however old its heartbeat', () => {
  assert.is(staleReason({ owner: here(process.pid, processIdentity(process.pid)), ageMs: 3_600_000 }, 10_000), undefined);
});

test('a holder on this host whose pid is gone is taken over at once', () => {
  assert.match(staleReason({ owner: here(NO_SUCH_PID), ageMs: 0 }, 10_000) ?? '', `holder pid ${NO_SUCH_PID} is gone`);
});

const REUSED = 'a pid that now belongs to another process (start time differs) is no holder';
if (processIdentity(process.pid)) {
  test(REUSED, () => {
    assert.match(staleReason({ owner: here(process.pid, 'another-boot/123'), ageMs: 0 }, 10_000) ?? '', 'is gone');
  });
} else {
  skipTest(REUSED, 'no /proc here: the pid alone decides');
}

test('a lock from another host stands until its heartbeat is older than staleMs, by the lock own age', () => {
  assert.is(staleReason({ owner: elsewhere, ageMs: 10_000 }, 10_000), undefined);
  assert.match(staleReason({ owner: elsewhere, ageMs: 10_001 }, 10_000) ?? '', 'no heartbeat from other-host.example');
});

test('a lock without a readable owner is taken over only once it is more than a second old', () => {
  assert.is(staleReason({ ageMs: 1000 }, 60_000), undefined);
  assert.match(staleReason({ ageMs: 1001 }, 60_000) ?? '', 'not a finished lock');
});

let dir: string;
test.before(() => {
  dir = mkdtempSync(join(tmpdir(), 'cscs-sa-unit-lock-'));
});
test.after(() => rmSync(dir, { recursive: true, force: true }));

const lockText = (o: Owner) => `${o.pid}\n${o.host}\n${o.nonce}\n${o.identity ?? ''}\n`;

test('a dead holder lock file is replaced by ours, and released again', async () => {
  const path = join(dir, 'dead.lock');
  writeFileSync(path, lockText(here(NO_SUCH_PID)));
  const lock = await acquireLock(path, { deadline: new Deadline(5), staleMs: 60_000, pollMs: 10 });
  assert.ok(lock);
  assert.is(readFileSync(path, 'utf8').split('\n')[0], String(process.pid));
  lock!.release();
  assert.throws(() => readFileSync(path));
});

test('another host lock with a recent heartbeat holds the waiter off until its deadline', async () => {
  const path = join(dir, 'busy.lock');
  writeFileSync(path, lockText(elsewhere));
  const err = await acquireLock(path, { deadline: new Deadline(0.1), staleMs: 60_000, pollMs: 10 }).catch((e: unknown) => e);
  assert.instance(err, LockBusyError);
  assert.is((err as LockBusyError).holder, `cscs-sa pid ${process.pid} on other-host.example`);
  assert.is(readFileSync(path, 'utf8'), lockText(elsewhere));
});

test('another host lock silent for longer than staleMs is taken over', async () => {
  const path = join(dir, 'stale.lock');
  writeFileSync(path, lockText(elsewhere));
  const old = new Date(Date.now() - 120_000);
  utimesSync(path, old, old);
  const lock = await acquireLock(path, { deadline: new Deadline(5), staleMs: 60_000, pollMs: 10 });
  assert.is(readFileSync(path, 'utf8').split('\n')[1], hostname());
  lock!.release();
});

test('done() ends the wait without the lock: another process did the work', async () => {
  const path = join(dir, 'done.lock');
  writeFileSync(path, lockText(elsewhere));
  assert.is(await acquireLock(path, { deadline: new Deadline(5), staleMs: 60_000, pollMs: 10, done: () => true }), undefined);
});

test('a symbolic link or a folder at the lock path is refused at once, and left alone', async () => {
  const link = join(dir, 'link.lock');
  symlinkSync(join(dir, 'nowhere'), link);
  const folder = join(dir, 'folder.lock');
  mkdirSync(folder);
  for (const [path, what] of [[link, 'is a symbolic link'], [folder, 'is a directory']] as const) {
    const err = await acquireLock(path, { deadline: new Deadline(5), staleMs: 60_000 }).catch((e: unknown) => e);
    assert.instance(err, LocalFileError);
    assert.is((err as LocalFileError).line, `lock ${path} ${what}, which cscs-sa never creates: remove it (rm ${path})`);
  }
});

test.run();
