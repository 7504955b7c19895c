/** Local users for tests where a certificate principal must equal another login name. */
import { execaSync } from 'execa';

/** A second local user for a second account. */
export const SECOND_USER = 'cscssa2';

/** Creates SECOND_USER when missing; only root can, so false when not root. */
export function secondUser(): boolean {
  if (process.getuid?.() !== 0) return false;
  if (execaSync('id', [SECOND_USER], { reject: false }).exitCode !== 0) {
    execaSync('useradd', ['-m', '-s', '/bin/sh', SECOND_USER]);
    // Without PAM, sshd refuses a locked password field ("!"), even for certificate logins.
    execaSync('usermod', ['-p', '*', SECOND_USER]);
  }
  return true;
}
