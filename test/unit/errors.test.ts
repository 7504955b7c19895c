/** Errors for people: system error codes in words, and the one line of a typed error. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ApiKeyError, describeFsError, errnoReason, ExitCode } from '../../src/base/errors.ts';

const sysError = (code: string) => Object.assign(new Error(`${code}: raw text`), { code });

test('known codes in words, an unknown code as itself, no code as the message', () => {
  assert.is(errnoReason(sysError('EACCES')), 'permission denied');
  assert.is(errnoReason(sysError('ECONNREFUSED')), 'connection refused');
  assert.is(errnoReason(sysError('ELOOP')), 'ELOOP');
  assert.is(errnoReason(new Error('plain')), 'plain');
  assert.is(errnoReason('text'), 'text');
});

test('a file-system error names what was tried and where', () => {
  assert.is(describeFsError(sysError('ENOSPC'), 'write certificate', '/h/k-cert.pub'), 'cannot write certificate /h/k-cert.pub: no space left on device');
});

test('an error line is its message, then its fix; the cause and the public exit code are kept', () => {
  const cause = sysError('EACCES');
  const err = new ApiKeyError('API key rejected (401)', { fix: 'check CSCS_API_KEY', cause });
  assert.is(err.line, 'API key rejected (401): check CSCS_API_KEY');
  assert.is(err.cause, cause);
  assert.is(err.exitCode, ExitCode.apiKey);
  assert.is(new ApiKeyError('no API key').line, 'no API key');
  assert.is(new ApiKeyError('bad "a\nb\u001b\u009b"', { fix: 'x\ty' }).line, 'bad "a\\nb\\u001b\\u009b": x\\ty');
});

test.run();
