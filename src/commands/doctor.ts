import { printable, secondsLeft } from '../core/certificate.js';
import { lstatSync } from 'node:fs';
import { readApiKey } from '../refresh/apikey.js';
import { foundByShell, runTool } from '../base/child.js';
import { accountName, checkEnvironment, loadSettings, type Settings } from '../core/config.js';
import { DEFAULT_ACCOUNT, hostPrefix } from '../core/account.js';
import { blockFile, readIfExists } from '../ssh/choices.js';
import { CRON_PATH } from '../ssh/helper.js';
import { ApiKeyError, CscsSaError } from '../base/errors.js';
import { openPrivateKey } from '../core/keypair.js';
import { JUMP_HOST } from '../ssh/sshconfig.js';
import { checkApiKey as checkApiKeyWithGateway, probeGateway } from '../refresh/gateway.js';
import { gatewayOptions, refreshCertificate } from '../refresh/refresh.js';
import { Probe } from '../doctor/probe.js';
import { explainSshFailure, checkRoute, fail, pass, type Result, warn } from '../doctor/checks.js';
import { resolveRoute } from '../doctor/route.js';
import { type CertState, inspect, keyPaths } from '../core/store.js';
import { caFingerprint } from '../core/signature.js';
import { freshCheckAsShellRuns } from '../ssh/freshcheck.js';
import { atLeast, OLDEST, parseSshVersion } from '../ssh/version.js';
import { parseCommandArgs } from './args.js';

export const usage = `Usage: cscs-sa doctor [HOST] [--account NAME] [-f KEY] [--ssh-config FILE] [--sign] [--connect]

Checks the whole chain, one line each with what to do about a failure: OpenSSH, the shell ssh
runs helpers with, the settings, the key pair, the API key source (never printed), the gateway
(DNS, TLS, clock), and what ssh itself does for HOST (default ACCOUNT-ela: sa-ela) and its jump hosts: that it
runs cscs-sa match (asked of ssh -G, which then runs match in a probe mode that refreshes
nothing), with which key, User, proxy, known host key and ControlPath folder. On request a test
sign, and a real connection whose failure is explained by the line of ssh -v that says why.
Without --connect it touches no remote host beyond the gateway.

Options:
      --account NAME   the service account to check (default sa)
  -f, --key KEY   private key (default ~/.ssh/cscs-key-NAME: cscs-key-sa, cscs-key-proj...)
      --env ENV   prod (default) or tds
      --ssh-config FILE   check this ssh config instead of ssh's default (ssh -F FILE)
      --sign      fetch a certificate now (one gateway call)
      --connect   run \`ssh -v HOST true\` and explain a failure
  -h, --help      this text

Exit status 0 when every check passes, 1 when any fails.`;

/** A thrown error as a failed check: its message, and its own fix when it carries one. */
function failure(err: unknown, fallback: string): Result {
  if (err instanceof CscsSaError) return fail(err.message, err.fix ?? fallback);
  return fail(err instanceof Error ? err.message : String(err), fallback);
}

async function checkOpenSsh(): Promise<Result> {
  const r = await runTool('ssh', ['-V']);
  if (r.missing) return fail('OpenSSH client not found', 'install it (apt-get install openssh-client)');
  const version = parseSshVersion(r.stderr);
  if (!version) return fail(`ssh -V says "${r.stderr.trim()}"`, 'cscs-sa needs the OpenSSH client');
  if (!atLeast(version, OLDEST.major, OLDEST.minor)) return fail(`OpenSSH ${version.text} is too old`, `cscs-sa needs OpenSSH ${OLDEST.text} or newer (Include, ProxyJump)`);
  return pass(`OpenSSH ${version.text}`);
}

/**
 * The Match line's shell check for the account's key, run as ssh runs it ($SHELL -c), against
 * what match decides: it may say fresh only when match would, and should when match would.
 */
async function checkFreshCheck(settings: Settings, state: CertState): Promise<Result> {
  const shell = process.env.SHELL || '/bin/sh';
  const r = await runTool(shell, ['-c', freshCheckAsShellRuns(settings.key)]);
  const fresh = r.code === 0;
  if (state.status === 'fresh' && fresh) return pass(`the Match line tells a fresh certificate in $SHELL (${shell}) alone, without starting Node`);
  // The window was written with the refresh margin of the last refresh: a larger one set since
  // (CSCS_SA_REFRESH_MARGIN, refreshMargin) is the one way this happens.
  if (state.status !== 'fresh' && fresh) return fail(`the Match line's shell check says fresh, but match says ${state.status}`, 'run cscs-sa sign --force, which writes the window with the refresh margin set now');
  if (state.status !== 'fresh') return pass(`the certificate is ${state.status}: the next ssh runs cscs-sa match`);
  return fail(`the Match line's shell check does not tell the fresh certificate in $SHELL (${shell}): every ssh starts Node`, 'run cscs-sa sign --force (the refresh writes what the check reads), and check that sh and date run in that shell');
}

/**
 * A margin as long as a certificate lives when it arrives (by its last refresh) leaves it no fresh
 * window: each ssh fetches a new one, works, and costs a gateway call, so nothing else tells.
 */
function checkMargin(settings: Settings, { certificate, refreshedAt, clockOffsetMs }: CertState): Result[] {
  if (!certificate || !refreshedAt) return [];
  const onArrival = Math.floor(secondsLeft(certificate, (refreshedAt.getTime() + clockOffsetMs) / 1000));
  if (onArrival > settings.refreshMargin) return [];
  return [fail(`refresh margin ${settings.refreshMargin} s is not shorter than the ${onArrival} s a certificate has when it arrives: every ssh fetches a new one`, `set refreshMargin (CSCS_SA_REFRESH_MARGIN) well below ${onArrival} s`)];
}

async function checkShell(): Promise<Result> {
  const { shell, missing, path } = await foundByShell('cscs-sa');
  if (missing) return fail(`SHELL=${shell} does not exist`, 'ssh runs Match exec and ProxyCommand with $SHELL -c: set SHELL to a working shell');
  if (path === undefined) return pass(`$SHELL (${shell}) does not find cscs-sa on its PATH: the ssh config must name it by absolute path (cscs-sa setup does)`);
  return pass(`$SHELL (${shell}) finds cscs-sa at ${path}`);
}

/** A Match exec or ProxyCommand that starts cscs-sa by name, not by path. */
const BY_NAME = /(?:^|[\s"|&;(])cscs-sa (?:match|proxy)\b/m;

/**
 * Whether the account's block starts cscs-sa in a way that works under any PATH ssh may be
 * started with: cron's /usr/bin:/bin, a systemd unit's, an IDE's.
 */
async function checkCommandPath(account: string, sshConfigFlag: string | undefined): Promise<Result | undefined> {
  const file = blockFile(account, sshConfigFlag);
  const block = readIfExists(file);
  if (block === undefined) return undefined;
  // Comments may name the command in prose ("... runs cscs-sa match"): only directives count.
  const directives = block.split('\n').filter((line) => !line.trimStart().startsWith('#')).join('\n');
  if (!BY_NAME.test(directives)) return pass(`${file} starts cscs-sa by absolute path, which works under any PATH (cron's too)`);
  if ((await foundByShell('cscs-sa', CRON_PATH)).path) return pass(`${file} starts cscs-sa by name, which cron's PATH (${CRON_PATH}) finds too`);
  return fail(
    `${file} starts cscs-sa by name, which ssh under cron's PATH (${CRON_PATH}) or a systemd unit's does not find ("cscs-sa: command not found")`,
    `run cscs-sa setup${account === DEFAULT_ACCOUNT ? '' : ` --account ${account}`} again: it names cscs-sa and node by absolute path when a short PATH would not find them`,
  );
}

function checkKeyPair(settings: Settings): Result {
  const paths = keyPaths(settings.key);
  let stats;
  try {
    stats = openPrivateKey(paths.key);
  } catch (err) {
    return failure(err, 'fix the key path');
  }
  if (!stats) return fail(`no key pair at ${paths.key}`, 'cscs-sa sign (or the first ssh) creates it; cscs-sa setup too');
  if (!lstatSync(paths.publicKey, { throwIfNoEntry: false })) return fail(`no public key ${paths.publicKey}`, 'cscs-sa sign derives it from the private key');
  return pass(`key pair ${paths.key} (0600)`);
}

/** A change of the certificate's CA, if the last refreshes saw one: worth knowing when sshd starts refusing. */
function checkCa({ certificate, caChange }: CertState): Result[] {
  if (!certificate || !caChange) return [];
  return [warn(`certificate signed by another CA since ${caChange.at.toISOString()}: ${caFingerprint(certificate)}, was ${caChange.was}`, 'if sshd refuses it, ask CSCS whether their CA changed')];
}

/**
 * The API key source, and whether the gateway takes its key: one token request (no certificate
 * signed). A key the gateway rejects is named here, not later as a failed login.
 */
async function checkApiKey(settings: Settings): Promise<Result> {
  let key;
  try {
    key = await readApiKey(settings);
  } catch (err) {
    return failure(err, 'set CSCS_API_KEY');
  }
  try {
    await checkApiKeyWithGateway(key, gatewayOptions(settings));
    return pass(`API key from ${key.source}: the gateway takes it`);
  } catch (err) {
    if (err instanceof ApiKeyError) return failure(err, `check ${key.source}`);
    // The gateway did not answer the question: the key is neither good nor bad, and the gateway check says why.
    return warn(`API key from ${key.source}, not checked: the gateway did not answer`, 'see the gateway check below');
  }
}

async function checkGateway(settings: Settings): Promise<Result[]> {
  try {
    const { clockOffsetMs } = await probeGateway(gatewayOptions(settings));
    const results = [pass(`gateway ${settings.authxUrl} answers`)];
    if (clockOffsetMs === undefined) return results;
    const seconds = Math.round(clockOffsetMs / 1000);
    if (Math.abs(seconds) > 30) {
      results.push(fail(`local clock is ${Math.abs(seconds)} s ${seconds > 0 ? 'behind' : 'ahead of'} the gateway (cscs-sa compensates, other tools will not)`, 'synchronise the clock (timedatectl set-ntp true, or chrony)'));
    } else {
      results.push(pass(`local clock within ${Math.abs(seconds)} s of the gateway`));
    }
    return results;
  } catch (err) {
    return [failure(err, 'check the network, DNS and HTTPS_PROXY')];
  }
}

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs('doctor', args, {
    account: { type: 'string' },
    key: { type: 'string', short: 'f' },
    env: { type: 'string' },
    'ssh-config': { type: 'string' },
    sign: { type: 'boolean' },
    connect: { type: 'boolean' },
  }, ['HOST']);
  if (values.help) return (process.stdout.write(`${usage}\n`), 0);
  // A name that is no account's is a mistake in the command, not a failed check of a host named after it.
  const account = accountName(values.account);
  // So is an environment that does not exist: refused as on every command, not shown as a failed check.
  if (values.env !== undefined) checkEnvironment(values.env, '--env', 'flag');
  const host = positionals[0] ?? `${hostPrefix(account)}${JUMP_HOST.name}`;
  const ssh = values['ssh-config'] ? ['-F', values['ssh-config']] : [];

  const commandPath = await checkCommandPath(account, values['ssh-config']);
  const results: Result[] = [await checkOpenSsh(), await checkShell(), ...(commandPath ? [commandPath] : [])];
  // Settings that cannot be loaded are one failed check: what ssh does can still be checked.
  let settings: Settings | undefined;
  try {
    settings = await loadSettings({ key: values.key, env: values.env, account: values.account });
    results.push(pass(settings.configFile ? `settings from ${settings.configFile} and the environment` : 'settings from the environment (no config file)'));
  } catch (err) {
    results.push(failure(err, 'fix the setting it names'));
  }
  if (settings) {
    // The certificate beside the key, read once for the checks that judge it.
    const state = inspect(keyPaths(settings.key), settings.refreshMargin);
    results.push(checkKeyPair(settings), ...checkCa(state), await checkFreshCheck(settings, state), ...checkMargin(settings, state), await checkApiKey(settings), ...(await checkGateway(settings)));
  }
  if (settings && values.sign) {
    try {
      const { state } = await refreshCertificate(settings, { force: true });
      results.push(pass(`test sign: certificate for ${state.certificate!.principals.map(printable).join(', ')}, ${Math.floor(state.secondsLeft!)} s left`));
    } catch (err) {
      const r = failure(err, 'see the message');
      results.push({ ...r, line: `test sign failed: ${r.line}` });
    }
  }
  const probe = new Probe();
  try {
    results.push(...(await checkRoute(await resolveRoute(probe, ssh, host))));
  } finally {
    probe.remove();
  }
  if (values.connect) {
    // -v: the line that explains a failure may come from a jump host's ssh, long before the last one.
    const r = await runTool('ssh', [...ssh, '-v', '-o', 'BatchMode=yes', host, 'true'], process.env, 60_000);
    if (r.code === 0) results.push(pass(`ssh ${host} true: connected`));
    else {
      const { line, fix } = explainSshFailure(r.stderr);
      results.push(fail(`ssh ${host} true failed: ${line}`, fix));
    }
  }

  const colour = process.stdout.isTTY && !process.env.NO_COLOR;
  const paint = (code: number, text: string) => (colour ? `\x1b[${code}m${text}\x1b[0m` : text);
  for (const r of results) {
    const mark = !r.ok ? paint(31, '✘') : r.warn ? paint(33, '!') : paint(32, '✔');
    process.stdout.write(r.fix ? `${mark} ${r.line}\n  → ${r.fix}\n` : `${mark} ${r.line}\n`);
  }
  return results.every((r) => r.ok) ? 0 : 1;
}
