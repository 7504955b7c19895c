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
