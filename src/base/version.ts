import { readFileSync } from 'node:fs';

/** Set by scripts/build.js: the package version and the undici version bundled into dist/. */
declare const CSCS_SA_VERSION: string | undefined;
declare const CSCS_SA_UNDICI_VERSION: string | undefined;

/**
 * The package version. Built in, so that a bundle copied away from package.json (the single-file
 * build, the GitHub Action) still knows it; read from package.json when run from source.
 */
export function version(): string {
  if (typeof CSCS_SA_VERSION === 'string') return CSCS_SA_VERSION;
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** The undici version bundled into the program (undefined when run from source, unbundled). */
export function bundledUndiciVersion(): string | undefined {
  return typeof CSCS_SA_UNDICI_VERSION === 'string' ? CSCS_SA_UNDICI_VERSION : undefined;
}
