/**
 * Which host key lines setup pins (CSCS_SA_KNOWN_HOSTS, --known-hosts), in process: every refusal
 * names the line and why. test/integration/firstcontact.test.ts runs setup end to end with a
 * refused text (exit 2, nothing written) and with the real keys.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { generateKeyPairSync } from 'node:crypto';
import { UsageError } from '../../src/base/errors.ts';
import { parseKnownHosts } from '../../src/ssh/knownhosts.ts';

const test = suite('known hosts lines');

/** A fresh ed25519 public key as a known_hosts line carries it: `ssh-ed25519 BASE64`. */
function hostKey(): string {
  const raw = generateKeyPairSync('ed25519').publicKey.export({ format: 'der', type: 'spki' }).subarray(-32);
  const field = (b: Buffer) => Buffer.concat([Buffer.from([0, 0, 0, b.length]), b]);
  return `ssh-ed25519 ${Buffer.concat([field(Buffer.from('ssh-ed25519')), field(raw)]).toString('base64')}`;
}
const KEY = hostKey();
const ALLOWED = ['ela.cscs.ch', 'clariden.alps.cscs.ch'];

/** The refusal's message for TEXT, or the names of the lines it pins. */
function verdict(text: string): string {
  try {
    return parseKnownHosts(text, ALLOWED, 'CSCS_SA_KNOWN_HOSTS').map((l) => l.names.join(',')).join(' ');
  } catch (err) {
    assert.instance(err, UsageError);
    assert.is((err as UsageError).fix, 'pin the lines cscs-sa known-hosts prints (nothing was changed)');
    return (err as Error).message;
  }
}

test('the lines known-hosts prints are pinned, under their names', () => {
  assert.is(verdict(`ela.cscs.ch ${KEY}\n# a comment\n\nclariden.alps.cscs.ch ${KEY} comment\n`), 'ela.cscs.ch clariden.alps.cscs.ch');
});

test('garbage, a broken key, a marker, a pattern or another host: refused, naming the line', () => {
  assert.match(verdict('not a key line at all\n'), /^setup: line 1 of CSCS_SA_KNOWN_HOSTS is not a known_hosts line \(.*\)$/);
  assert.match(verdict(`ela.cscs.ch ssh-ed25519 AAAAC3NzaC1yc2EAAAADAQABAAABAQ\n`), /^setup: line 1 of CSCS_SA_KNOWN_HOSTS is not a known_hosts line \(.*\)$/);
  assert.is(verdict(`@cert-authority *.cscs.ch ${KEY}\n`), 'setup: line 1 of CSCS_SA_KNOWN_HOSTS has a @cert-authority marker: only plain host key lines can be pinned');
  assert.is(verdict(`ela.cscs.ch,*.cscs.ch ${KEY}\n`), 'setup: line 1 of CSCS_SA_KNOWN_HOSTS has the pattern "*.cscs.ch": only host names can be pinned');
  assert.match(verdict(`ela.cscs.ch ${KEY}\nclariden.alps.cscs.ch ${KEY}\ngithub.com ${KEY}\n`), /^setup: line 3 of CSCS_SA_KNOWN_HOSTS is for "github\.com", which is neither a CSCS host/);
  assert.is(verdict('# only a comment\n'), 'setup: CSCS_SA_KNOWN_HOSTS holds no host key lines');
});

test.run();
