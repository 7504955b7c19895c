/**
 * Where an account's API key comes from: its variable (CSCS_API_KEY for the default account, as
 * the official client; CSCS_API_KEY_NAME for account NAME), else its apiKeyFile (0600 or
 * stricter) or apiKeyCommand (run without a shell). Never another account's source: an API key
 * is only ever sent for its own account's key pair. There is deliberately no flag: argv is
 * visible to every user of the machine.
 */
import { closeSync, constants, fstatSync, openSync, readFileSync, statSync } from 'node:fs';
import { DEFAULT_ACCOUNT } from '../core/account.js';
import { runGroup } from '../base/child.js';
import { Deadline } from '../base/deadline.js';
import { type Settings, trustedOwner } from '../core/config.js';
import { ApiKeyError, describeFsError } from '../base/errors.js';
import { registerSecret } from '../base/log.js';

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
  if (/[\s\x00-\x1f\x7f]/.test(value)) throw new ApiKeyError(`API key from ${source} contains spaces or control characters`, { fix: 'check it' });
  // HTTP header values are bytes: undici refuses anything beyond Latin-1 (as a network error, exit 5),
  // and an API key is plain ASCII anyway.
  if (/[^\x21-\x7e]/.test(value)) {
    throw new ApiKeyError(`API key from ${source} contains characters that cannot be sent (only printable ASCII can)`, { fix: 'check it' });
  }
  return { value, source };
}

/**
 * The API key file, judged on the open file as ssh judges a private key (sshkey_perm_ok): a
 * regular file of ours (or root's) that no one else can read. Another user's file could hand us
 * a key of their choosing; a FIFO would block the refresh (O_NONBLOCK refuses it instead).
 */
function fromFile(path: string): ApiKey {
  const source = `apiKeyFile ${path}`;
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    throw new ApiKeyError(describeFsError(err, 'read API key file', path), { cause: err });
  }
  try {
    const stats = fstatSync(fd);
    if (!stats.isFile()) throw new ApiKeyError(`API key file ${path} is not a regular file`, { fix: 'point apiKeyFile at a file holding the key' });
    if (!trustedOwner(stats)) {
      throw new ApiKeyError(`API key file ${path} belongs to another user (uid ${stats.uid})`, { fix: 'keep the API key in a file of your own, mode 0600' });
    }
    if ((stats.mode & 0o077) !== 0) {
      const shown = (stats.mode & 0o777).toString(8).padStart(4, '0');
      throw new ApiKeyError(`API key file ${path} has permissions ${shown}, readable by others`, { fix: `run chmod 600 ${path}` });
    }
    return accept(readFileSync(fd, 'utf8'), source);
  } catch (err) {
    if (err instanceof ApiKeyError) throw err;
    throw new ApiKeyError(describeFsError(err, 'read API key file', path), { cause: err });
  } finally {
    closeSync(fd);
  }
}

/** What the key command may print: an API key is a line; anything much longer is not one. */
const MAX_COMMAND_OUTPUT = 64 * 1024;

/** The key command's output, within what is left of the deadline (its whole process group is stopped then). */
async function fromCommand(command: string | string[], deadline: Deadline): Promise<ApiKey> {
  const r = await runGroup(command, deadline.signal, MAX_COMMAND_OUTPUT);
  const source = `apiKeyCommand (${r.file})`;
  if (r.code === 0) return accept(r.stdout, source);
  const why = r.missing
    ? 'command not found'
    : r.timedOut
      ? `no answer within the ${deadline} deadline`
      : r.overflowed
        ? `printed more than ${MAX_COMMAND_OUTPUT / 1024} KiB`
        : r.signal
          ? `killed by ${r.signal}`
          : `exit code ${r.code}`;
  throw new ApiKeyError(`${source} failed: ${why}`);
}

/** Where the API key would come from, as data that changes when the key does (never shown or stored as is). */
export function apiKeyIdentity(settings: Settings, env: NodeJS.ProcessEnv = process.env): string {
  const variable = settings.apiKeyVariable;
  if (env[variable]) return `env\n${variable}\n${env[variable]}`;
  if (settings.apiKeyFile) {
    // Its mode, owner and kind too: a chmod 600 or chown fixes a refused file. Only a regular
    // file is read here: a FIFO would block (reading the key refuses it at once).
    let content = '';
    try {
      const stats = statSync(settings.apiKeyFile);
      content = `${stats.mode} ${stats.uid}\n${stats.isFile() ? readFileSync(settings.apiKeyFile, 'utf8') : ''}`;
    } catch {
      // Unreadable: reading the key will say so; the path alone keys the memo.
    }
    return `file\n${settings.apiKeyFile}\n${content}`;
  }
  // The command's output is not known without running it, which is the slow part the memo saves.
  if (settings.apiKeyCommand) return `command\n${JSON.stringify(settings.apiKeyCommand)}`;
  return 'none';
}

export async function readApiKey(settings: Settings, env: NodeJS.ProcessEnv = process.env, deadline = new Deadline(settings.timeout)): Promise<ApiKey> {
  const variable = settings.apiKeyVariable;
  if (env[variable]) return accept(env[variable], variable);
  if (settings.apiKeyFile) return fromFile(settings.apiKeyFile);
  if (settings.apiKeyCommand) return fromCommand(settings.apiKeyCommand, deadline);
  const where = settings.account === DEFAULT_ACCOUNT ? 'in the config file' : `under accounts.${settings.account} in the config file`;
  const whose = settings.account === DEFAULT_ACCOUNT ? '' : ` for account ${settings.account}`;
  throw new ApiKeyError(`no API key${whose}`, { fix: `set ${variable}, or apiKeyFile or apiKeyCommand ${where}` });
}
