import { lstatSync, realpathSync } from 'node:fs';
import { userInfo } from 'node:os';
import { execa } from 'execa';
import { readApiKey } from '../apikey.js';
import { childEnv } from '../child.js';
import { loadSettings, type Settings } from '../config.js';
import { checkPrivateKey } from '../keypair.js';
import { probeGateway } from '../gateway.js';
import { gatewayOptions, refreshCertificate } from '../refresh.js';
import { inspect, keyPaths } from '../store.js';
import { parseCommandArgs } from './args.js';

export const usage = `Usage: cscs-sa doctor [HOST] [-f KEY] [--ssh-config FILE] [--sign] [--connect]

Checks the whole chain, one line each with what to do about a failure: OpenSSH, the shell ssh
runs helpers with, what ssh_config makes of HOST (default sa-ela), the key pair, the API key
source (never printed), the gateway (DNS, TLS, clock), and on request a test sign and a real
connection. Without --connect it touches no remote host beyond the gateway.

Options:
  -f, --key KEY   private key (default ~/.ssh/cscs-key-sa)
      --env ENV   prod (default) or tds
      --ssh-config FILE   check this ssh config instead of ssh's default (ssh -F FILE)
      --sign      fetch a certificate now (one gateway call)
      --connect   run \`ssh HOST true\`
  -h, --help      this text

Exit status 0 when every check passes, 1 when any fails.`;

interface Result {
  ok: boolean;
  line: string;
  fix?: string;
}

const pass = (line: string): Result => ({ ok: true, line });
const fail = (line: string, fix: string): Result => ({ ok: false, line, fix });

async function runTool(file: string, args: string[], env: NodeJS.ProcessEnv = childEnv()) {
  const r = await execa(file, args, { env, extendEnv: false, reject: false, stdin: 'ignore', timeout: 30_000 });
  return { code: r.exitCode, stdout: String(r.stdout), stderr: String(r.stderr), missing: (r as { code?: string }).code === 'ENOENT' };
}

async function checkOpenSsh(): Promise<Result> {
  const r = await runTool('ssh', ['-V']);
  if (r.missing) return fail('OpenSSH client not found', 'install it (apt-get install openssh-client)');
  const m = /OpenSSH_(\d+)\.(\d+)(p\d+)?/.exec(r.stderr);
  if (!m) return fail(`ssh -V says "${r.stderr.trim()}"`, 'cscs-sa needs the OpenSSH client');
  const [major, minor] = [Number(m[1]), Number(m[2])];
  // Include and ProxyJump arrived in 7.3; Match exec in 6.5.
  if (major < 7 || (major === 7 && minor < 3)) return fail(`OpenSSH ${m[0]!.slice(8)} is too old`, 'cscs-sa needs OpenSSH 7.3 or newer (Include, ProxyJump)');
  return pass(`OpenSSH ${m[0]!.slice(8)}`);
}

async function checkShell(): Promise<Result> {
  const shell = process.env.SHELL || '/bin/sh';
  const r = await runTool(shell, ['-c', 'command -v cscs-sa']);
  if (r.missing) return fail(`SHELL=${shell} does not exist`, 'ssh runs Match exec and ProxyCommand with $SHELL -c: set SHELL to a working shell');
  if (r.code !== 0) return pass(`$SHELL (${shell}) does not find cscs-sa on its PATH: the ssh config must name it by absolute path (cscs-sa setup does)`);
  return pass(`$SHELL (${shell}) finds cscs-sa at ${r.stdout.trim()}`);
}

function resolved(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}

async function checkSshConfig(ssh: string[], host: string, settings: Settings): Promise<Result[]> {
  const r = await runTool('ssh', [...ssh, '-G', host], process.env);
  const refreshLine = r.stderr.split('\n').find((l) => l.startsWith('cscs-sa:'));
  if (r.code !== 0) return [fail(`ssh -G ${host} failed: ${r.stderr.trim().split('\n').pop()}`, 'fix the ssh config it names')];
  const get = (key: string) => r.stdout.split('\n').filter((l) => l.startsWith(`${key} `)).map((l) => l.slice(key.length + 1));
  const results: Result[] = [];
  if (/not found/.test(r.stderr)) {
    results.push(fail(`ssh's Match exec cannot start cscs-sa: ${r.stderr.trim().split('\n')[0]}`, 'run cscs-sa setup, which writes absolute paths'));
  } else if (refreshLine) {
    results.push(fail(`the refresh ssh ran for ${host} failed: ${refreshLine.slice(9)}`, 'see the message; cscs-sa sign shows the same'));
  }
  const identities = get('identityfile').map(resolved);
  if (!identities.includes(resolved(settings.key))) {
    results.push(fail(`ssh uses ${identities.join(', ') || 'no IdentityFile'} for ${host}, not ${settings.key}`, `add "IdentityFile ${settings.key}" to Host sa-* (cscs-sa setup)`));
  }
  const proxy = [...get('proxycommand'), ...get('proxyjump')].join(' ');
  if (!/cscs-sa|proxy|sa-/.test(proxy)) {
    results.push(fail(`${host} has neither ProxyCommand cscs-sa proxy nor a ProxyJump`, 'add "ProxyCommand cscs-sa proxy %h %p" to Host sa-* (cscs-sa setup)'));
  }
  const user = get('user')[0] ?? '';
  const principals = inspect(keyPaths(settings.key), 0).certificate?.principals;
  if (principals && principals.length > 0 && !principals.includes(user)) {
    results.push(fail(`ssh logs in to ${host} as "${user}", which the certificate does not name (principals: ${principals.join(', ')})`, `set "User ${principals[0]}" in Host sa-*`));
  } else if (!principals && user === userInfo().username) {
    results.push(fail(`ssh logs in to ${host} as "${user}", your local name`, 'set User to the service account\'s login name in Host sa-* (cscs-sa setup)'));
  }
  if (results.length === 0) results.push(pass(`ssh config: ${host} → ${get('hostname')[0]} as ${user}, key ${settings.key}, via ${proxy}`));
  return results;
}

function checkKeyPair(settings: Settings): Result {
  const paths = keyPaths(settings.key);
  const stats = lstatSync(paths.key, { throwIfNoEntry: false });
  if (!stats) return fail(`no key pair at ${paths.key}`, 'cscs-sa sign (or the first ssh) creates it; cscs-sa setup too');
  try {
    checkPrivateKey(paths.key, stats);
  } catch (err) {
    const [what, fix] = (err as Error).message.split(': run ');
    return fail(what!, fix ? `run ${fix}` : 'fix the key path');
  }
  if (!lstatSync(paths.publicKey, { throwIfNoEntry: false })) return fail(`no public key ${paths.publicKey}`, 'cscs-sa sign derives it from the private key');
  return pass(`key pair ${paths.key} (0600)`);
}

async function checkApiKey(settings: Settings): Promise<Result> {
  try {
    const key = await readApiKey(settings);
    return pass(`API key from ${key.source}`);
  } catch (err) {
    return fail((err as Error).message.split(': ')[0]!, (err as Error).message.split(': ').slice(1).join(': ') || 'set CSCS_API_KEY');
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
    return [fail((err as Error).message, 'check the network, DNS and HTTPS_PROXY')];
  }
}

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs('doctor', args, {
    key: { type: 'string', short: 'f' },
    env: { type: 'string' },
    'ssh-config': { type: 'string' },
    sign: { type: 'boolean' },
    connect: { type: 'boolean' },
  }, ['HOST']);
  if (values.help) return (process.stdout.write(`${usage}\n`), 0);
  const settings = await loadSettings({ key: values.key, env: values.env });
  const host = positionals[0] ?? 'sa-ela';
  const ssh = values['ssh-config'] ? ['-F', values['ssh-config']] : [];

  const results: Result[] = [await checkOpenSsh(), await checkShell(), checkKeyPair(settings), await checkApiKey(settings), ...(await checkGateway(settings))];
  if (values.sign) {
    try {
      const { state } = await refreshCertificate(settings, { force: true });
      results.push(pass(`test sign: certificate for ${state.certificate!.principals.join(', ')}, ${Math.floor(state.secondsLeft!)} s left`));
    } catch (err) {
      results.push(fail(`test sign failed: ${(err as Error).message}`, 'see the message'));
    }
  }
  results.push(...(await checkSshConfig(ssh, host, settings)));
  if (values.connect) {
    const r = await runTool('ssh', [...ssh, '-o', 'BatchMode=yes', host, 'true'], process.env);
    results.push(r.code === 0 ? pass(`ssh ${host} true: connected`) : fail(`ssh ${host} true failed: ${r.stderr.trim().split('\n').pop()}`, 'the lines above say why'));
  }

  const colour = process.stdout.isTTY && !process.env.NO_COLOR;
  const paint = (code: number, text: string) => (colour ? `\x1b[${code}m${text}\x1b[0m` : text);
  for (const r of results) {
    process.stdout.write(r.ok ? `${paint(32, '✔')} ${r.line}\n` : `${paint(31, '✘')} ${r.line}\n  → ${r.fix}\n`);
  }
  return results.every((r) => r.ok) ? 0 : 1;
}
