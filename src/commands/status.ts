import { existsSync } from 'node:fs';
import { loadSettings } from '../config.js';
import { FOREVER } from '../certificate.js';
import { inspect, keyPaths } from '../store.js';
import { parseCommandArgs } from './args.js';

export const usage = `Usage: cscs-sa status [-f KEY] [--json]

Shows the key pair and certificate as they are now: principals, validity, seconds left by the
gateway's clock, clock offset and last refresh. Touches no network.

Options:
  -f, --key KEY   private key (default ~/.ssh/cscs-key-sa)
      --json      one JSON object on stdout
  -h, --help      this text

Exit status 0 when the certificate is fresh, 1 when the next ssh would refresh it.`;

function isoOrForever(seconds: bigint): string {
  return seconds === FOREVER ? 'forever' : new Date(Number(seconds) * 1000).toISOString();
}

export async function run(args: string[]): Promise<number> {
  const { values } = parseCommandArgs('status', args, {
    key: { type: 'string', short: 'f' },
    json: { type: 'boolean' },
  }, []);
  if (values.help) return (process.stdout.write(`${usage}\n`), 0);
  const settings = await loadSettings({ key: values.key });
  const paths = keyPaths(settings.key);
  const state = inspect(paths, settings.refreshMargin);
  const cert = state.certificate;
  const report = {
    key: paths.key,
    keyExists: existsSync(paths.key),
    certificate: paths.certificate,
    status: state.status,
    detail: state.detail ?? null,
    principals: cert?.principals ?? [],
    serial: cert ? String(cert.serial) : null,
    keyId: cert?.keyId ?? null,
    validAfter: cert ? isoOrForever(cert.validAfter) : null,
    validBefore: cert ? isoOrForever(cert.validBefore) : null,
    secondsLeft: state.secondsLeft === undefined ? null : Number.isFinite(state.secondsLeft) ? Math.floor(state.secondsLeft) : 'forever',
    refreshMargin: settings.refreshMargin,
    clockOffsetMs: state.clockOffsetMs,
    lastRefresh: state.refreshedAt?.toISOString() ?? null,
    configFile: settings.configFile ?? null,
  };
  if (values.json) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  } else {
    const rows: [string, unknown][] = [
      ['key', `${report.key}${report.keyExists ? '' : ' (missing)'}`],
      ['certificate', report.certificate],
      ['status', report.detail ? `${report.status} (${report.detail})` : report.status],
      ['principals', report.principals.join(', ') || '-'],
      ['serial', report.serial ?? '-'],
      ['valid', cert ? `${report.validAfter} .. ${report.validBefore}` : '-'],
      ['seconds left', report.secondsLeft ?? '-'],
      ['clock offset', `${report.clockOffsetMs} ms (gateway minus local)`],
      ['last refresh', report.lastRefresh ?? '-'],
      ['config file', report.configFile ?? '-'],
    ];
    process.stdout.write(rows.map(([k, v]) => `${k.padEnd(13)}${v}\n`).join(''));
  }
  return state.status === 'fresh' ? 0 : 1;
}
