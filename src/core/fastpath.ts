/**
 * The hot path: what ssh runs for every invocation, answered synchronously by the CommonJS entry
 * without the ES module CLI, the config loader or the network. `cscs-sa match` with a fresh
 * certificate (when the Match line's shell check could not tell: src/ssh/freshcheck.ts) or one
 * that another process on this host is refreshing (a burst from a cold start), and `cscs-sa
 * proxy` for a plain relay. A JSON config file (the usual one, and the one with several
 * accounts) it reads and checks itself. Anything it does not handle (a refresh, --help, --agent, a
 * YAML or JS config file, a bad flag or file) goes to the full command, which looks again and
 * explains.
 */
import { lstatSync } from 'node:fs';
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { checkFileConfig, findConfigFile, openTrustedConfig, type Settings, type SettingsFlags, settingsFrom } from './config.js';
import { nearestSsh } from '../base/proc.js';
import { look, pollPauseMs, staleReason } from './lockfile.js';
import { type CertState, inspect, keyPaths } from './store.js';

/** match's flags; --env only matters to a refresh, but a bad one is refused here too, fresh certificate or not. */
export const MATCH_OPTIONS = { key: { type: 'string', short: 'f' }, env: { type: 'string' }, account: { type: 'string' } } as const;
/** match's arguments: more are refused (by the full command), fresh certificate or not. */
export const MATCH_POSITIONALS = ['HOST'];

export const PROXY_OPTIONS = { agent: { type: 'boolean' }, account: { type: 'string' }, log: { type: 'string' }, 'connect-timeout': { type: 'string' } } as const;

/** The settings as the full command loads them, when no config loader is needed; throws what it would. */
function fastSettings(flags: SettingsFlags, env: NodeJS.ProcessEnv): Settings | undefined {
  const configFile = findConfigFile(env);
  if (configFile && !configFile.endsWith('.json')) return undefined;
  // Trusted like the full path trusts it (owner, mode, folders), read from the checked descriptor.
  const file = configFile ? checkFileConfig(JSON.parse(openTrustedConfig(configFile).content), configFile) : {};
  return settingsFrom(flags, env, file, configFile);
}

/**
 * Whether the ssh that runs us may be `ssh -G`, which connects nowhere: the full command then
 * returns at once (src/ssh/parent.ts reads ssh's options exactly), where a wait here for another
 * process's refresh would hold up git and editors, which run it. "May be": an option word with a
 * G in it anywhere, or no /proc to read ssh's argv from.
 */
function maybeSshG(): boolean {
  if (process.platform !== 'linux') return true;
  return nearestSsh()?.args.slice(1).some((word) => word.startsWith('-') && word.includes('G')) ?? false;
}

/**
 * When this process's hot path first saw another's lock held, for the full command's deadline: in
 * the same process but another bundle (dist/entry.cjs and the ES module CLI), so kept on globalThis.
 */
const WAITED_SINCE = Symbol.for('cscs-sa.waitedSince');

/** When `match`'s hot path began to wait for another's refresh (ms since the epoch), if it did. */
export function waitedSince(): number | undefined {
  return (globalThis as Record<symbol, number | undefined>)[WAITED_SINCE];
}

/** What Atomics.wait sleeps on: nothing ever wakes it, so it sleeps its whole timeout. */
const pause = new Int32Array(new SharedArrayBuffer(4));

/**
 * True when `match ARGS` has nothing left to do: its certificate is fresh, or became fresh while
 * it waited here for another cscs-sa on this host that held the refresh lock. That wait makes a
 * burst of ssh from a cold start (xargs -P, parallel rsync, ProxyJump hops) cost each waiter a
 * bare Node start instead of the full command's. It waits only for a missing or unusable
 * certificate (a valid one inside the margin gets the full command's short try), only while a
 * live process on this host holds the lock, and no longer than the deadline counted from when it
 * first saw the lock held, which the full command goes on counting (waitedSince). The holder's
 * deadline began before it took the lock, so a waiter's never ends before it: the waiter sees the
 * holder's outcome, failure included, as the full command's waiters do. Anything else (no lock, one to take
 * over or report, a holder elsewhere, a refresh that failed, a failure memo beside the key, an
 * ssh that may be `ssh -G`) is false: the full command looks again, and refreshes, recalls the
 * failure, ends at once for -G or explains.
 */
export function matchIsDone(args: string[], env: NodeJS.ProcessEnv = process.env): boolean {
  try {
    const { values, positionals } = parseArgs({ args, options: MATCH_OPTIONS, allowPositionals: true, strict: true });
    if (positionals.length > MATCH_POSITIONALS.length) return false;
    const settings = fastSettings({ key: values.key, env: values.env, account: values.account }, env);
    if (!settings) return false;
    const paths = keyPaths(settings.key);
    const status = (): CertState['status'] => inspect(paths, settings.refreshMargin, Date.now(), settings.user).status;
    const first = status();
    if (first === 'fresh' || first === 'expiring') return first === 'fresh';
    // A failure memo (src/refresh/memo.ts) may say this wait is already lost (the holder kept the
    // lock past another waiter's deadline): the full command reads it, and fails at once.
    if (lstatSync(paths.failed, { throwIfNoEntry: false }) || maybeSshG()) return false;
    let until: number | undefined;
    for (;;) {
      const seen = look(paths.lock);
      const held = seen.kind === 'lock' && seen.owner?.host === hostname() && staleReason(seen, settings.timeout * 1000) === undefined;
      // The holder writes the certificate before it lets go.
      if (status() === 'fresh') return true;
      if (!held) return false;
      if (until === undefined) {
        // The wait begins once a holder is seen: a deadline counted from before it took the lock
        // could end before the holder's own.
        const since = Date.now();
        (globalThis as Record<symbol, number | undefined>)[WAITED_SINCE] = since;
        until = since + settings.timeout * 1000;
      }
      if (Date.now() >= until) return false;
      Atomics.wait(pause, 0, 0, pollPauseMs());
    }
  } catch {
    return false;
  }
}

export interface PlainRelay {
  host: string;
  port: number;
  timeoutSeconds: number;
  log?: string;
}

/**
 * What `proxy ARGS` relays when it is a plain relay: HOST and a valid PORT, no --agent (flag or
 * setting), no --connect-timeout flag, no --help; undefined for the full command otherwise.
 */
export function plainRelay(args: string[], env: NodeJS.ProcessEnv = process.env): PlainRelay | undefined {
  try {
    const { values, positionals } = parseArgs({ args, options: PROXY_OPTIONS, allowPositionals: true, strict: true });
    const [host, portText] = positionals;
    if (positionals.length !== 2 || !host || values.agent || values['connect-timeout'] !== undefined) return undefined;
    const port = Number(portText);
    if (!/^\d+$/.test(portText!) || port < 1 || port > 65535) return undefined;
    const settings = fastSettings({ account: values.account }, env);
    if (!settings || settings.agent) return undefined;
    return { host, port, timeoutSeconds: settings.connectTimeout, log: values.log };
  } catch {
    return undefined;
  }
}
