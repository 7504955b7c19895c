/**
 * Errors are values with a type, an exit code, one line for people and the fix as data.
 * The exit codes are public (README "Exit codes"): scripts and CI jobs branch on them.
 */
export const ExitCode = {
  ok: 0,
  failure: 1,
  usage: 2,
  config: 3,
  apiKey: 4,
  gatewayUnavailable: 5,
  gatewayResponse: 6,
  localFiles: 7,
  connect: 8,
} as const;

/** What an error carries besides its message: the fix as data (doctor shows it), and what caused it. */
export interface ErrorDetails {
  /** What to do about it, for people: printed after the message, shown by doctor as the fix. */
  fix?: string;
  cause?: unknown;
}

/** How an error line shows the control characters it escapes (C0, DEL, C1) that have a short form. */
const ESCAPES: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/**
 * Every error the program reports: `message` says what failed, `fix` what to do, `exitCode` is
 * public, `code` is stable for callers (like undici's `UND_ERR_*`). Callers read these fields and
 * never parse the message.
 */
export class CscsSaError extends Error {
  readonly exitCode: number = ExitCode.failure;
  readonly code: string = 'CSCS_SA_ERR';
  override name = 'CscsSaError';
  /** Not read-only: a caller that knows a way around the failure adds it (setup: --user). */
  fix?: string;

  constructor(message: string, details: ErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    if (details.fix !== undefined) this.fix = details.fix;
  }

  /** The one line for people: what failed, then what to do. */
  get line(): string {
    const line = this.fix ? `${this.message}: ${this.fix}` : this.message;
    // A quoted value (an argument, an input of the GitHub Action, a file's line) may hold a
    // newline or a terminal escape: shown escaped, the error stays one line and a CI log or
    // terminal carries out nothing it holds.
    return line.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => ESCAPES[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  }
}

/**
 * The base of one kind of error: its name, public exit code and stable code, so that each kind
 * is declared in one line.
 */
export function errorKind(name: string, exitCode: number, code: string) {
  return class extends CscsSaError {
    override readonly exitCode = exitCode;
    override readonly code = code;
    override name = name;
  };
}

/** Bad flags or arguments. */
export class UsageError extends errorKind('UsageError', ExitCode.usage, 'CSCS_SA_ERR_USAGE') {}

/** A configuration file or environment variable that cannot be used. */
export class ConfigError extends errorKind('ConfigError', ExitCode.config, 'CSCS_SA_ERR_CONFIG') {}

/** No API key, an API key that cannot be read, or one the gateway refuses. */
export class ApiKeyError extends errorKind('ApiKeyError', ExitCode.apiKey, 'CSCS_SA_ERR_API_KEY') {}

/** The gateway could not be reached or did not answer in time (worth retrying later). */
export class GatewayUnavailableError extends errorKind('GatewayUnavailableError', ExitCode.gatewayUnavailable, 'CSCS_SA_ERR_GATEWAY_UNAVAILABLE') {}

/** The gateway answered, but not with something usable. */
export class GatewayResponseError extends errorKind('GatewayResponseError', ExitCode.gatewayResponse, 'CSCS_SA_ERR_GATEWAY_RESPONSE') {
  /** The HTTP status, when there was one. */
  readonly status?: number;
  constructor(message: string, details: ErrorDetails & { status?: number } = {}) {
    super(message, details);
    if (details.status !== undefined) this.status = details.status;
  }
}

/** The key pair, the certificate file, the lock or their folder cannot be used. */
export class LocalFileError extends errorKind('LocalFileError', ExitCode.localFiles, 'CSCS_SA_ERR_LOCAL_FILES') {}

/** The proxy could not connect to the target host. */
export class ConnectError extends errorKind('ConnectError', ExitCode.connect, 'CSCS_SA_ERR_CONNECT') {}

/** The system error codes people meet, in words; any other is shown as its code. */
const ERRNO_WORDS: Record<string, string> = {
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  EROFS: 'read-only file system',
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  ENOENT: 'no such file or directory',
  EISDIR: 'is a directory',
  ENOTDIR: 'a parent is not a directory',
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  ETIMEDOUT: 'timed out',
  EHOSTUNREACH: 'network unreachable',
  ENETUNREACH: 'network unreachable',
};

/** Why a Node.js system call failed, in words: by its error code, else the error's message. */
export function errnoReason(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code) return Object.hasOwn(ERRNO_WORDS, code) ? ERRNO_WORDS[code]! : code;
  return err instanceof Error ? err.message : String(err);
}

/** One line for people from any Node.js file-system error, naming the path. */
export function describeFsError(err: unknown, action: string, path: string): string {
  return `cannot ${action} ${path}: ${errnoReason(err)}`;
}
