import { printable } from '../core/certificate.js';
import { loadSettings } from '../core/config.js';
import { refreshCertificate } from '../refresh/refresh.js';
import { keyPaths } from '../core/store.js';
import { parseCommandArgs } from './args.js';

export const usage = `Usage: cscs-sa sign [--account NAME] [-f KEY] [--force]

Refreshes KEY-cert.pub if it is missing or near expiry (always with --force) and prints one line:
certificate path, principals, serial and seconds left.

Options:
      --account NAME   the service account (default sa)
  -f, --key KEY   private key (default ~/.ssh/cscs-key-sa, for account NAME ~/.ssh/cscs-key-NAME)
      --env ENV   prod (default) or tds, the CSCS test environment's gateway
      --force     fetch a new certificate even if the current one is fresh
  -h, --help      this text`;

export async function run(args: string[]): Promise<number> {
  const { values } = parseCommandArgs('sign', args, {
    account: { type: 'string' },
    key: { type: 'string', short: 'f' },
    env: { type: 'string' },
    force: { type: 'boolean' },
  }, []);
  if (values.help) return (process.stdout.write(`${usage}\n`), 0);
  const settings = await loadSettings({ key: values.key, env: values.env, account: values.account });
  const { state, refreshed, createdKey } = await refreshCertificate(settings, { force: values.force });
  if (createdKey) process.stderr.write(`cscs-sa: no key pair at ${settings.key}: created a new one (${settings.key}.pub)\n`);
  const cert = state.certificate!;
  const left = Math.floor(state.secondsLeft ?? 0);
  process.stdout.write(
    `${keyPaths(settings.key).certificate} principals=${cert.principals.map(printable).join(',')} serial=${cert.serial} ${left}s left${refreshed ? '' : ' (already fresh)'}\n`,
  );
  return 0;
}
