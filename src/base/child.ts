/**
 * The one place that starts processes: OpenSSH's tools (runOpenSshTool, runTool), the API key
 * command (runGroup) and the shell lookup (foundByShell), each without our secrets in its
 * environment (childEnv) and bounded in time.
 */
import { LocalFileError } from './errors.js';

/**
 * Every account's API key variable starts with this (CSCS_API_KEY, CSCS_API_KEY_NAME): named here,
 * below the accounts, because no child process may see any of them.
 */
export const API_KEY_VARIABLE_PREFIX = 'CSCS_API_KEY';

/** Any account's API key variable: kept out of every child process's environment. */
export function isApiKeyVariable(name: string): boolean {
  return name.startsWith(API_KEY_VARIABLE_PREFIX);
}

/**
 * The environment for child processes (ssh-keygen, ssh-add, apiKeyCommand): ours minus every
 * account's API key, which none of them needs, so none shows in /proc/<pid>/environ of a child
 * (and one account's apiKeyCommand never sees another account's key).
 */
export function childEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([name]) => !isApiKeyVariable(name)));
}

/**
 * Runs an OpenSSH tool (ssh-keygen, ssh-add) and returns its stdout. A failure is one line:
 * `${failure}: ` and the first line the tool printed on stderr.
 */
export async function runOpenSshTool(tool: string, args: string[], failure: string, signal?: AbortSignal): Promise<string> {
  const r = await runTool(tool, args, childEnv(), 30_000, signal);
  if (r.missing) throw new LocalFileError(`${tool} not found`, { fix: 'install the OpenSSH client' });
  if (r.canceled) throw new LocalFileError(`${failure}: ${tool} did not finish within the deadline`);
  if (r.code !== 0) throw new LocalFileError(`${failure}: ${(r.stderr.trim() || `exit code ${r.code ?? 'none (timed out)'}`).split('\n')[0]}`);
  return r.stdout;
}

export interface ToolRun {
  code: number | undefined;
  stdout: string;
  stderr: string;
  /** The program was not found. */
  missing: boolean;
  /** `signal` aborted it (the refresh's deadline ran out). */
  canceled: boolean;
}

/** What `$SHELL -c 'command -v NAME'` finds: ssh starts Match exec and ProxyCommand that way. */
export async function foundByShell(name: string): Promise<{ shell: string; missing: boolean; path?: string }> {
  const shell = process.env.SHELL || '/bin/sh';
  const r = await runTool(shell, ['-c', `command -v ${name}`]);
  return { shell, missing: r.missing, path: r.code === 0 ? r.stdout.trim() : undefined };
}

/** What a command started by runGroup did. */
export interface GroupRun {
  /** The program the command names, for messages. */
  file: string;
  stdout: string;
  /** Its exit code; 0 when it succeeded. */
  code: number | undefined;
  /** The signal that ended it, if one did. */
  signal: string | undefined;
  missing: boolean;
  /** `signal` stopped it (the refresh's deadline ran out). */
  timedOut: boolean;
  /** It printed more than `maxOutput` bytes. */
  overflowed: boolean;
}

/** After the command exits, how long a child of it may keep its stdout open before it is stopped. */
const LINGER_MS = 200;

/**
 * Runs a command (a string split as execa splits it, or an argv) without a shell and without our
 * secrets in its environment, its stderr on ours, and returns its stdout: never throws. It runs
 * in a process group of its own (detached) so that the whole group can be killed: a wrapper
 * script's children (`sh -c "sleep 25; echo key"`) hold its stdout open after the script itself
 * is signalled, and a kill of the script alone would leave us waiting for them. The group is
 * killed when `signal` aborts, when we exit, and shortly after the command itself exits with a child
 * still holding its stdout.
 */
export async function runGroup(command: string | string[], signal: AbortSignal, maxOutput: number): Promise<GroupRun> {
  const { execa, parseCommandString } = await import('execa');
  const [file = '', ...args] = typeof command === 'string' ? parseCommandString(command) : command;
  let timedOut = false;
  let subprocess: ReturnType<typeof execa> | undefined;
  const killGroup = () => {
    try {
      if (subprocess?.pid) process.kill(-subprocess.pid, 'SIGKILL');
    } catch {
      // The group is gone already.
    }
  };
  const stop = () => {
    timedOut = true;
    killGroup();
  };
  signal.addEventListener('abort', stop, { once: true });
  process.once('exit', killGroup);
  try {
    subprocess = execa(file, args, {
      env: childEnv(),
      extendEnv: false,
      stdin: 'ignore',
      stderr: 'inherit',
      detached: true,
      maxBuffer: maxOutput,
      stripFinalNewline: true,
    });
    // Aborted while execa loaded: the listener above had no process to stop.
    if (signal.aborted) stop();
    let ended = false;
    subprocess.stdout?.once('end', () => (ended = true));
    subprocess.once('exit', () => {
      if (!ended) setTimeout(killGroup, LINGER_MS).unref();
    });
    const { stdout } = await subprocess;
    return { file, stdout: String(stdout), code: 0, signal: undefined, missing: false, timedOut: false, overflowed: false };
  } catch (err) {
    const e = err as { code?: string; exitCode?: number; signal?: string; isMaxBuffer?: boolean };
    return { file, stdout: '', code: e.exitCode, signal: e.signal, missing: e.code === 'ENOENT', timedOut, overflowed: e.isMaxBuffer === true };
  } finally {
    signal.removeEventListener('abort', stop);
    process.off('exit', killGroup);
    if (subprocess?.exitCode === null) killGroup();
  }
}

/**
 * Runs a program without our secrets in its environment and returns its answer: never throws,
 * bounded by `timeoutMs` and `signal`. execa costs ~75 ms to load: only the rare paths that start
 * a process pay.
 */
export async function runTool(file: string, args: string[], env: NodeJS.ProcessEnv = childEnv(), timeoutMs = 30_000, signal?: AbortSignal): Promise<ToolRun> {
  const { execa } = await import('execa');
  const r = await execa(file, args, { env, extendEnv: false, reject: false, stdin: 'ignore', timeout: timeoutMs, cancelSignal: signal, forceKillAfterDelay: 100 });
  return { code: r.exitCode, stdout: String(r.stdout), stderr: String(r.stderr), missing: (r as { code?: string }).code === 'ENOENT', canceled: r.isCanceled };
}
