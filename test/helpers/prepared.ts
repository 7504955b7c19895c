/**
 * The files a first refresh leaves in a HOME (key pair, certificate), made without the CLI: for
 * tests that start from them rather than test how they came to be. Each such run of the CLI cost
 * a Node start and a refresh (~0.45 s of CPU), and creating a key pair about 0.2 s of it.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { execaSync } from 'execa';
import { parseCertificate, parsePublicKey } from '../../src/core/certificate.ts';
import { certificateFileText } from '../../src/core/store.ts';
import type { Home } from './cli.ts';
import type { GatewayDouble } from './gateway-double.ts';

const pairs: string[] = [];

/**
 * Template key pair N (ed25519) of this test process, made by ssh-keygen as cscs-sa makes its own:
 * the first for most tests, another where two accounts side by side need pairs of their own.
 */
function template(n = 0): string {
  if (!pairs[n]) {
    const dir = mkdtempSync(join(tmpdir(), 'cscs-sa-pair-'));
    process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
    pairs[n] = join(dir, 'key');
    execaSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'cscs-sa@test', '-f', pairs[n]]);
  }
  return pairs[n];
}

/** A key pair at HOME's key path (private 0600), as a first refresh leaves it; `pair` picks the template (0). */
export function withKeyPair(home: Pick<Home, 'key' | 'pub'>, pair = 0): void {
  const from = template(pair);
  mkdirSync(dirname(home.key), { recursive: true, mode: 0o700 });
  writeFileSync(home.key, readFileSync(from), { mode: 0o600 });
  writeFileSync(home.pub, readFileSync(`${from}.pub`), { mode: 0o644 });
}

export interface InPlaceOptions {
  /** ssh-keygen -V interval of the certificate, in place of the double's usual one (e.g. '-60s:+5s'). */
  validity?: string;
  /** The principals it names, in place of the double's usual ones (another account's login name). */
  principals?: string[];
  /**
   * The fresh window for the Match line's shell check, written as a refresh with this margin
   * writes it (src/refresh/refresh.ts); without it, none, and the shell check leaves it to match.
   */
  fresh?: { marginSeconds: number };
  /** Which template key pair to put in place (withKeyPair); 'kept': sign the pair already there (setup's). */
  pair?: number | 'kept';
}

/**
 * A key pair and a certificate for it from the double, in the store's format with a refresh time
 * (which proves the pair checked: src/core/keypair.ts) and clock offset 0, and by default no fresh
 * window, so the Match line's shell check leaves it to `cscs-sa match` to judge. Returns the
 * certificate file's text.
 */
export async function certificateInPlace(home: Pick<Home, 'key' | 'pub' | 'cert'>, gw: GatewayDouble, { validity, principals, fresh, pair = 0 }: InPlaceOptions = {}): Promise<string> {
  if (pair !== 'kept') withKeyPair(home, pair);
  const pub = readFileSync(home.pub, 'utf8');
  const line = await gw.sign(pub, { validity, principals });
  const text = certificateFileText(
    line,
    0,
    new Date(),
    fresh ? { fresh: { certificate: parseCertificate(line), publicKey: parsePublicKey(pub), marginSeconds: fresh.marginSeconds } } : {},
  );
  writeFileSync(home.cert, text, { mode: 0o644 });
  return text;
}
