/** doctor --connect: which line of a failed `ssh -v` explains the failure, and the fix it shows. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { explainSshFailure } from '../../src/doctor/checks.ts';

const debug = ['OpenSSH_9.6p1 Ubuntu-3ubuntu13, OpenSSL 3.0.13 30 Jan 2024', 'debug1: Reading configuration data /h/u/.ssh/config', 'debug1: Connection refused by the debug line itself'];

test('a cscs-sa line wins over what ssh says afterwards: match and proxy run inside ssh', () => {
  const r = explainSshFailure([...debug, 'cscs-sa: no API key: set CSCS_API_KEY', 'kex_exchange_identification: Connection closed by remote host', 'Connection closed by UNKNOWN port 65535'].join('\n'));
  assert.equal(r, { line: 'cscs-sa: no API key: set CSCS_API_KEY', fix: 'do what the cscs-sa line says (match and proxy run inside ssh)' });
});

test('the jump host reason, printed early, beats the outer ssh last line', () => {
  const r = explainSshFailure(['ssh: connect to host ela.cscs.ch port 22: Connection refused', 'Connection closed by UNKNOWN port 65535'].join('\r\n'));
  assert.is(r.line, 'ssh: connect to host ela.cscs.ch port 22: Connection refused');
  assert.match(r.fix, 'check HostName and Port');
});

test('a changed host key is told apart from a missing one', () => {
  assert.match(explainSshFailure('@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\nHost key verification failed.').fix, 'the host key differs from the pinned one');
  assert.match(explainSshFailure('No ED25519 host key is known for ela.cscs.ch and you have requested strict checking.\nHost key verification failed.').fix, 'cscs-sa known-hosts');
});

test('refused logins, too many keys, DNS and time-outs each get their own fix', () => {
  const fix = (line: string) => explainSshFailure(line).fix;
  assert.match(fix('svc@clariden.alps.cscs.ch: Permission denied (publickey).'), 'User must be a principal of the certificate');
  assert.match(fix('Received disconnect from 10.0.0.1 port 22:2: Too many authentication failures'), 'IdentitiesOnly yes');
  assert.match(fix('ssh: Could not resolve hostname ela.cscs.ch: Name or service not known'), 'does not resolve');
  assert.match(fix('ssh: connect to host ela.cscs.ch port 22: Connection timed out'), 'no answer');
});

test('debug lines never explain anything; with nothing else, the last plain line, or "no message"', () => {
  assert.equal(explainSshFailure([...debug, 'something odd happened', 'and then this'].join('\n')), { line: 'and then this', fix: 'run ssh -v HOST true to see more' });
  assert.equal(explainSshFailure(debug.join('\n')), { line: 'no message', fix: 'run ssh -v HOST true to see more' });
});

test.run();
