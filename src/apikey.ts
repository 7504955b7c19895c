/**
 * Where an account's API key comes from: its variable (CSCS_API_KEY for the default account, as
 * the official client; CSCS_API_KEY_NAME for account NAME), else its apiKeyFile (0600 or
 * stricter) or apiKeyCommand (run without a shell). Never another account's source: an API key
 * is only ever sent for its own account's key pair. There is deliberately no flag: argv is
 * visible to every user of the machine.
 */
import { readFileSync, statSync } from 'node:fs';
import { DEFAULT_ACCOUNT } from './account.js';
import { childEnv } from './child.js';
import type { Settings } from './config.js';
import { ApiKeyError, describeFsError } from './errors.js';
import { registerSecret } from './log.js';

export interface ApiKey {
  value: string;
  /** Where it came from, for messages: never the key itself. */
  source: string;
}

function accept(raw: string, source: string): ApiKey {
  const value = raw.trim();
  if (value === '') throw new ApiKeyError(`API key from ${source} is empty`);
  registerSecret(value);
  // A key with inner white space or control characters would be mangled or refused in a header.
  if (/[\s\x00-\x1f\x7f]/.test(value)) throw new ApiKeyError(`API key from ${source} contains spaces or control characters: check it`);
  // HTTP header values are bytes: undici refuses anything beyond Latin-1 (as a network error, exit 5),
  // and an API key is plain ASCII anyway.
  if (/[^\x21-\x7e]/.test(value)) {
    throw new ApiKeyError(`API key from ${source} contains characters that cannot be sent (only printable ASCII can)`, { fix: 'check it' });
  }
  return { value, source };
}

function fromFile(path: string): ApiKey {
  const source = `apiKeyFile ${path}`;
  let mode: number;
  try {
    mode = statSync(path).mode;
  } catch (err) {
    throw new ApiKeyError(describeFsError(err, 'read API key file', path));
  }
  if ((mode & 0o077) !== 0) {
    const shown = (mode & 0o777).toString(8).padStart(4, '0');
    throw new ApiKeyError(`API key file ${path} has permissions ${shown}, readable by others: run chmod 600 ${path}`);
  }
  try {
    return accept(readFileSync(path, 'utf8'), source);
  } catch (err) {
    if (err instanceof ApiKeyError) throw err;
    throw new ApiKeyError(describeFsError(err, 'read API key file', path));
  }
}

async function fromCommand(command: string | string[], timeoutSeconds: number): Promise<ApiKey> {
  const { execa, parseCommandString } = await import('execa');
  const [file, ...args] = typeof command === 'string' ? parseCommandString(command) : command;
  const source = `apiKeyCommand (${file})`;
  try {
    const { stdout } = await execa(file!, args, {
      env: childEnv(),
      extendEnv: false,
      stdin: 'ignore',
      stderr: 'inherit',
      timeout: timeoutSeconds * 1000,
      stripFinalNewline: true,
    });
    return accept(stdout, source);
  } catch (err) {
    if (err instanceof ApiKeyError) throw err;
    const e = err as { code?: string; timedOut?: boolean; exitCode?: number; signal?: string };
    const why = e.code === 'ENOENT' ? 'command not found' : e.timedOut ? `no answer in ${timeoutSeconds} s` : e.signal ? `killed by ${e.signal}` : `exit code ${e.exitCode}`;
    throw new ApiKeyError(`${source} failed: ${why}`);
  }
}

export async function readApiKey(settings: Settings, env: NodeJS.ProcessEnv = process.env): Promise<ApiKey> {
  const variable = settings.apiKeyVariable;
  if (env[variable]) return accept(env[variable], variable);
  if (settings.apiKeyFile) return fromFile(settings.apiKeyFile);
  if (settings.apiKeyCommand) return fromCommand(settings.apiKeyCommand, settings.timeout);
  const where = settings.account === DEFAULT_ACCOUNT ? 'in the config file' : `under accounts.${settings.account} in the config file`;
  const whose = settings.account === DEFAULT_ACCOUNT ? '' : ` for account ${settings.account}`;
  throw new ApiKeyError(`no API key${whose}`, { fix: `set ${variable}, or apiKeyFile or apiKeyCommand ${where}` });
}
