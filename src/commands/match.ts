import { loadSettings } from '../core/config.js';
import type { CscsSaError } from '../base/errors.js';
import { createLog, redact } from '../base/log.js';
import { inspect, keyPaths } from '../core/store.js';
import { MATCH_OPTIONS, MATCH_POSITIONALS, waitedSince } from '../core/fastpath.js';
import { parseCommandArgs } from './args.js';

const log = createLog('match');

export const usage = `Usage: cscs-sa match [--account NAME] [-f KEY] [HOST]

Makes sure KEY-cert.pub is a certificate for KEY with enough validity left, fetching a new one
from the CSCS gateway when it is missing, for another key, expired or about to expire.
Made for ssh_config, where ssh runs it before it loads any key:

    Match originalhost sa-* exec "cscs-sa match %n"

With a fresh certificate it reads two small files and exits, without touching the network.
HOST is accepted for the Match line and only logged.

Options:
      --account NAME   the service account (default sa): key ~/.ssh/cscs-key-NAME, API key
                       CSCS_API_KEY_NAME (upper case) or accounts.NAME in the config
  -f, --key KEY   private key (default ~/.ssh/cscs-key-sa, or CSCS_SA_KEY, or "key" in the config)
      --env ENV   prod (default) or tds, the CSCS test environment's gateway
  -h, --help      this text

Exit status 0 when a usable certificate is in place; otherwise one line on stderr and the exit
codes listed by cscs-sa --help.`;

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs('match', args, MATCH_OPTIONS, MATCH_POSITIONALS);
  if (values.help) return (process.stdout.write(`${usage}\n`), 0);
  const settings = await loadSettings({ key: values.key, env: values.env, account: values.account });
  const state = inspect(keyPaths(settings.key), settings.refreshMargin, Date.now(), settings.user);
  if (state.status === 'fresh') return 0;
  // `ssh -G` connects nowhere: no certificate needed.
  if (await (await import('../ssh/parent.js')).startedBySshG()) return (log('host %j: ssh -G, no refresh', positionals[0] ?? ''), 0);
  // Only a refresh needs the gateway code: with a YAML or JS config file, a fresh certificate ends above.
  const { refreshForSsh } = await import('../refresh/refresh.js');
  const { isShownAbove } = await import('../refresh/memo.js');
  let outcome;
  try {
    outcome = await refreshForSsh(settings, state, waitedSince());
  } catch (err) {
    // A failure the user saw a moment ago from the ssh that started us (ProxyJump) is not printed twice.
    if (isShownAbove(err)) return (err as CscsSaError).exitCode;
    throw err;
  }
  const { refreshed, warning } = outcome;
  // A certificate still valid is used even when its refresh failed: ssh goes on, told why once.
  if (warning) process.stderr.write(`cscs-sa: ${redact(warning)}\n`);
  log('host %j: %s', positionals[0] ?? '', refreshed ? 'refreshed' : 'not refreshed by this process');
  return 0;
}
