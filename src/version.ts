import { readFileSync } from 'node:fs';

/** The package version; read on demand so the hot path does not pay for it. */
export function version(): string {
  // Both src/ and dist/ sit one level below the package root.
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** Set by scripts/build.js to the undici version bundled into dist/. */
declare const CSCS_SA_UNDICI_VERSION: string | undefined;

/** The undici version bundled into the program (undefined when run from source, unbundled). */
export function bundledUndiciVersion(): string | undefined {
  return typeof CSCS_SA_UNDICI_VERSION === 'string' ? CSCS_SA_UNDICI_VERSION : undefined;
}
