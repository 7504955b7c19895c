import { LocalFileError } from './errors.js';

/**
 * The environment for child processes (ssh-keygen, ssh-add, apiKeyCommand): ours minus the API
 * key, which none of them needs, so it does not show in /proc/<pid>/environ of any child.
 */
export function childEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const { CSCS_API_KEY: _omitted, ...rest } = env;
  return rest;
}

/**
 * Runs an OpenSSH tool (ssh-keygen, ssh-add) and returns its stdout. A failure is one line:
 * `${failure}: ` and the first line the tool printed on stderr.
 */
export async function runOpenSshTool(tool: string, args: string[], failure: string, signal?: AbortSignal): Promise<string> {
  // execa costs ~75 ms to load: only the rare paths that start a process pay for it.
  const { execa } = await import('execa');
  try {
    const { stdout } = await execa(tool, args, { env: childEnv(), extendEnv: false, stdin: 'ignore', cancelSignal: signal, forceKillAfterDelay: 100 });
    return stdout;
  } catch (err) {
    const e = err as { code?: string; stderr?: string; shortMessage?: string; isCanceled?: boolean };
    if (e.code === 'ENOENT') throw new LocalFileError(`${tool} not found: install the OpenSSH client`);
    if (e.isCanceled) throw new LocalFileError(`${failure}: ${tool} did not finish within the deadline`);
    throw new LocalFileError(`${failure}: ${(e.stderr || e.shortMessage || String(err)).trim().split('\n')[0]}`);
  }
}
