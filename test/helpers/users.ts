/** Local users for tests where a certificate principal must equal another login name. */
import { execaSync } from 'execa';

/** A second local user for a second account. */
export const SECOND_USER = 'cscssa2';

/**
 * Creates SECOND_USER when missing, in the copy of /etc of the namespace scripts/test.js gives
 * each file as root (it goes with the namespace); false elsewhere, where no user is ever added.
 */
export function secondUser(): boolean {
  if (process.getuid?.() !== 0 || !process.env.CSCS_SA_TEST_NAMESPACE) return false;
  if (execaSync('id', [SECOND_USER], { reject: false }).exitCode !== 0) {
    execaSync('useradd', ['-m', '-s', '/bin/sh', SECOND_USER]);
    // Without PAM, sshd refuses a locked password field ("!"), even for certificate logins.
    execaSync('usermod', ['-p', '*', SECOND_USER]);
  }
  return true;
}
