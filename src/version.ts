import { readFileSync } from 'node:fs';

/** The package version; read on demand so the hot path does not pay for it. */
export function version(): string {
  // Both src/ and dist/ sit one level below the package root.
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}
