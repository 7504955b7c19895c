import { existsSync, readdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_ACCOUNT, defaultKey, hostPrefix, isAccountName, KEY_FILE_PREFIX } from '../core/account.js';
import { configuredAccounts, expandHome, type FileConfig, loadConfig, type Settings, settingsFrom } from '../core/config.js';
import { FOREVER, printable } from '../core/certificate.js';
import { caFingerprint } from '../core/signature.js';
import { inspect, keyPaths } from '../core/store.js';
import { parseCommandArgs } from './args.js';

export const usage = `Usage: cscs-sa status [--account NAME] [-f KEY] [--json]

Shows the key pair and certificate as they are now: principals, validity, seconds left by the
gateway's clock, clock offset and last refresh. Touches no network.

With several accounts and neither --account nor -f, one table with a line per account (with
--json, an array of objects): the default account sa, those under "accounts" in the config
file, and those with a key pair ~/.ssh/cscs-key-NAME.

Options:
      --account NAME   only this service account (default sa)
  -f, --key KEY   private key (default ~/.ssh/cscs-key-NAME: cscs-key-sa, cscs-key-proj...)
      --json      one JSON object on stdout
  -h, --help      this text

Exit status 0 when the certificate (every certificate listed) is fresh, 1 when the next ssh
would refresh one.`;

function isoOrForever(seconds: bigint): string {
  return seconds === FOREVER ? 'forever' : new Date(Number(seconds) * 1000).toISOString();
}

/**
 * The accounts in use: the default, those the config file names, and those with a key pair at
 * the default place (an account used on CI with only CSCS_API_KEY_NAME has no config, but its
 * first refresh made ~/.ssh/cscs-key-NAME). setup's ssh_config files are not asked: they live
 * beside whichever ssh config setup was given, and setup makes the key pair anyway.
 */
function knownAccounts(file: FileConfig): string[] {
  let names: string[] = [];
  try {
    names = readdirSync(join(homedir(), '.ssh'));
  } catch {
    // No ~/.ssh: no key pairs.
  }
  // A key pair that is already an account's (CSCS_SA_KEY=~/.ssh/cscs-key-ci, a "key" setting) is that account.
  const configured = [DEFAULT_ACCOUNT, ...configuredAccounts(file)];
  const taken = configured.map((account) => settingsFrom({ account }, process.env, file).key);
  const fromKeys = names
    .filter((n) => n.startsWith(KEY_FILE_PREFIX))
    .map((n) => n.slice(KEY_FILE_PREFIX.length))
    .filter((n) => isAccountName(n) && !taken.includes(expandHome(defaultKey(n))));
  const others = new Set([...configured, ...fromKeys]);
  others.delete(DEFAULT_ACCOUNT);
  return [DEFAULT_ACCOUNT, ...[...others].sort()];
}

function describe(settings: Settings) {
  const paths = keyPaths(settings.key);
  const state = inspect(paths, settings.refreshMargin, Date.now(), settings.user);
  const cert = state.certificate;
  return {
    account: settings.account,
    key: paths.key,
    keyExists: existsSync(paths.key),
    certificate: paths.certificate,
    status: state.status,
    detail: state.detail ?? null,
    principals: cert?.principals ?? [],
    serial: cert ? String(cert.serial) : null,
    keyId: cert?.keyId ?? null,
    ca: cert ? caFingerprint(cert) : null,
    caChangedAt: state.caChange?.at.toISOString() ?? null,
    caWas: state.caChange?.was ?? null,
    validAfter: cert ? isoOrForever(cert.validAfter) : null,
    validBefore: cert ? isoOrForever(cert.validBefore) : null,
    secondsLeft: state.secondsLeft === undefined ? null : Number.isFinite(state.secondsLeft) ? Math.floor(state.secondsLeft) : 'forever',
    refreshMargin: settings.refreshMargin,
    clockOffsetMs: state.clockOffsetMs,
    lastRefresh: state.refreshedAt?.toISOString() ?? null,
    configFile: settings.configFile ?? null,
  };
}

type Report = ReturnType<typeof describe>;

function detail(report: Report): string {
  const rows: [string, unknown][] = [
    ['key', `${report.key}${report.keyExists ? '' : ' (missing)'}`],
    ['certificate', report.certificate],
    ['status', report.detail ? `${report.status} (${report.detail})` : report.status],
    ['principals', report.principals.map(printable).join(', ') || '-'],
    ['serial', report.serial ?? '-'],
    ['CA', report.ca ? `${report.ca}${report.caChangedAt ? ` (since ${report.caChangedAt}; was ${report.caWas})` : ''}` : '-'],
    ['valid', report.validAfter ? `${report.validAfter} .. ${report.validBefore}` : '-'],
    ['seconds left', report.secondsLeft ?? '-'],
    ['clock offset', `${report.clockOffsetMs} ms (gateway minus local)`],
    ['last refresh', report.lastRefresh ?? '-'],
    ['config file', report.configFile ?? '-'],
  ];
  return rows.map(([k, v]) => `${k.padEnd(13)}${v}\n`).join('');
}

function table(reports: Report[]): string {
  const rows = [
    ['account', 'hosts', 'status', 'principals', 'left', 'last refresh', 'key'],
    ...reports.map((r) => [
      r.account,
      `${hostPrefix(r.account)}*`,
      r.status,
      r.principals.map(printable).join(',') || '-',
      r.secondsLeft === null ? '-' : `${r.secondsLeft}${r.secondsLeft === 'forever' ? '' : ' s'}`,
      r.lastRefresh ?? '-',
      `${r.key}${r.keyExists ? '' : ' (missing)'}`,
    ]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  return rows.map((row) => `${row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]! + 2))).join('')}\n`).join('');
}

export async function run(args: string[]): Promise<number> {
  const { values } = parseCommandArgs('status', args, {
    account: { type: 'string' },
    key: { type: 'string', short: 'f' },
    json: { type: 'boolean' },
  }, []);
  if (values.help) return (process.stdout.write(`${usage}\n`), 0);
  const { file, configFile } = await loadConfig();
  const one = values.account !== undefined || values.key !== undefined;
  const accounts = one ? [values.account] : knownAccounts(file);
  const reports = accounts.map((account) => describe(settingsFrom({ key: values.key, account }, process.env, file, configFile)));
  if (reports.length === 1) {
    process.stdout.write(values.json ? `${JSON.stringify(reports[0], null, 2)}\n` : detail(reports[0]!));
  } else {
    process.stdout.write(values.json ? `${JSON.stringify(reports, null, 2)}\n` : table(reports));
  }
  return reports.every((r) => r.status === 'fresh') ? 0 : 1;
}
