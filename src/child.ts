import { LocalFileError } from './errors.js';

/**
 * The environment for child processes (ssh-keygen, ssh-add, apiKeyCommand): ours minus the API
 * key, which none of them needs, so it does not show in /proc/<pid>/environ of any child.
 */
export function childEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const { CSCS_API_KEY: _omitted, ...rest } = env;
  return rest;
}

/** Runs FILE without our secrets and returns its stdout; a failure is execa's error. */
export async function runTool(file: string, args: string[]): Promise<string> {
  // execa costs ~75 ms to load: only the rare paths that start a process pay for it.
  const { execa } = await import('execa');
  const { stdout } = await execa(file, args, { env: childEnv(), extendEnv: false, stdin: 'ignore' });
  return stdout;
}

/**
 * Runs an OpenSSH tool (ssh-keygen, ssh-add) and returns its stdout. A failure is one line:
 * `${failure}: ` and the first line the tool printed on stderr.
 */
export async function runOpenSshTool(tool: string, args: string[], failure: string): Promise<string> {
  try {
    return await runTool(tool, args);
  } catch (err) {
    const e = err as { code?: string; stderr?: string; shortMessage?: string };
    if (e.code === 'ENOENT') throw new LocalFileError(`${tool} not found: install the OpenSSH client`);
    throw new LocalFileError(`${failure}: ${(e.stderr || e.shortMessage || String(err)).trim().split('\n')[0]}`);
  }
}
