/**
 * The files a first refresh leaves in a HOME (key pair, certificate), made without the CLI: for
 * tests that start from them rather than test how they came to be. Each such run of the CLI cost
 * a Node start and a refresh (~0.45 s of CPU), and creating a key pair about 0.2 s of it.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { execaSync } from 'execa';
import { certificateFileText } from '../../src/core/store.ts';
import type { Home } from './cli.ts';
import type { GatewayDouble } from './gateway-double.ts';

let pair: string | undefined;

/** One ed25519 key pair per test process, made by ssh-keygen as cscs-sa makes its own. */
function template(): string {
  if (!pair) {
    const dir = mkdtempSync(join(tmpdir(), 'cscs-sa-pair-'));
    process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
    pair = join(dir, 'key');
    execaSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'cscs-sa@test', '-f', pair]);
  }
  return pair;
}

/** A key pair at HOME's key path (private 0600), as a first refresh leaves it. */
export function withKeyPair(home: Pick<Home, 'key' | 'pub'>): void {
  const from = template();
  mkdirSync(dirname(home.key), { recursive: true, mode: 0o700 });
  writeFileSync(home.key, readFileSync(from), { mode: 0o600 });
  writeFileSync(home.pub, readFileSync(`${from}.pub`), { mode: 0o644 });
}

/**
 * A key pair and a certificate for it from the double, in the store's format with a refresh time
 * (which proves the pair checked: src/core/keypair.ts) but no fresh window, so the Match line's
 * shell check leaves it to `cscs-sa match` to judge. Returns the certificate file's text.
 */
export async function certificateInPlace(home: Pick<Home, 'key' | 'pub' | 'cert'>, gw: GatewayDouble): Promise<string> {
  withKeyPair(home);
  const line = await gw.sign(readFileSync(home.pub, 'utf8'));
  const text = certificateFileText(line, 0, new Date());
  writeFileSync(home.cert, text, { mode: 0o644 });
  return text;
}
