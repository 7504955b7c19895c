/**
 * Errors are values with a type, an exit code and one line for people.
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

export class CscsSaError extends Error {
  readonly exitCode: number = ExitCode.failure;
  override name = 'CscsSaError';
}

/** Bad flags or arguments. */
export class UsageError extends CscsSaError {
  override readonly exitCode = ExitCode.usage;
  override name = 'UsageError';
}

/** A configuration file or environment variable that cannot be used. */
export class ConfigError extends CscsSaError {
  override readonly exitCode = ExitCode.config;
  override name = 'ConfigError';
}

/** No API key, an API key that cannot be read, or one the gateway refuses. */
export class ApiKeyError extends CscsSaError {
  override readonly exitCode = ExitCode.apiKey;
  override name = 'ApiKeyError';
}

/** The gateway could not be reached or did not answer in time (worth retrying later). */
export class GatewayUnavailableError extends CscsSaError {
  override readonly exitCode = ExitCode.gatewayUnavailable;
  override name = 'GatewayUnavailableError';
}

/** The gateway answered, but not with something usable. */
export class GatewayResponseError extends CscsSaError {
  override readonly exitCode = ExitCode.gatewayResponse;
  override name = 'GatewayResponseError';
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

/** The key pair, the certificate file, the lock or their folder cannot be used. */
export class LocalFileError extends CscsSaError {
  override readonly exitCode = ExitCode.localFiles;
  override name = 'LocalFileError';
}

/** The proxy could not connect to the target host. */
export class ConnectError extends CscsSaError {
  override readonly exitCode = ExitCode.connect;
  override name = 'ConnectError';
}

/** One line for people from any Node.js file-system error, naming the path. */
export function describeFsError(err: unknown, action: string, path: string): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const reason =
    code === 'EACCES' || code === 'EPERM'
      ? 'permission denied'
      : code === 'EROFS'
        ? 'read-only file system'
        : code === 'ENOSPC'
          ? 'no space left on device'
          : code === 'EDQUOT'
            ? 'disk quota exceeded'
            : code === 'ENOENT'
              ? 'no such file or directory'
              : code === 'EISDIR'
                ? 'is a directory'
                : code === 'ENOTDIR'
                  ? 'a parent is not a directory'
                  : code ?? (err instanceof Error ? err.message : String(err));
  return `cannot ${action} ${path}: ${reason}`;
}
