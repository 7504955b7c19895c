/** Who a remembered busy lock binds: a process that comes later and waits on it, no one else. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { recalledFailure, rememberFailure } from '../../src/refresh/memo.ts';
import { GatewayResponseError, GatewayUnavailableError } from '../../src/base/errors.ts';

const dir = mkdtempSync(join(tmpdir(), 'cscs-sa-memo-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

test('a busy lock binds a later process once it waits on the lock; not one that has not looked, nor one already waiting', () => {
  const path = join(dir, 'busy.failed');
  const before = Date.now() - 1;
  rememberFailure(path, 'm', new GatewayUnavailableError('cscs-sa pid 1 is still refreshing K after 3 s', { fix: 'try again later' }), false, true);
  const after = Date.now() + 1;
  assert.is(recalledFailure(path, 'm', false), undefined, 'before looking at the lock: it may be free or abandoned by now');
  assert.is(recalledFailure(path, 'm', false, before), undefined, 'already waiting when it was recorded: waits out its own deadline');
  const recalled = recalledFailure(path, 'm', false, after);
  assert.ok(recalled instanceof GatewayUnavailableError);
  assert.is(recalled.line, 'cscs-sa pid 1 is still refreshing K after 3 s: try again later');
});

test('any other failure binds every later attempt at once, waiting or not', () => {
  const path = join(dir, 'other.failed');
  rememberFailure(path, 'm', new GatewayResponseError('gateway sent a certificate that is valid forever'), false);
  assert.ok(recalledFailure(path, 'm', false) instanceof GatewayResponseError);
  assert.ok(recalledFailure(path, 'm', false, Date.now() - 60_000) instanceof GatewayResponseError);
  assert.is(recalledFailure(path, 'other material', false), undefined);
});

test.run();
