// Bundles src/ into dist/: one small entry module for the hot path (match with a fresh
// certificate), with each command and the refresh path split into chunks loaded on demand.
// Dependencies stay external: they are installed beside the package and imported only when used.
import { build } from 'esbuild';
import { rmSync } from 'node:fs';

rmSync(new URL('../dist', import.meta.url), { recursive: true, force: true });
await build({
  entryPoints: ['src/cli.ts'],
  outdir: 'dist',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20.18',
  packages: 'external',
  // Chunks sit beside cli.js, one level below the package root like src/, so version.ts finds package.json.
  chunkNames: '[name]-[hash]',
  legalComments: 'none',
  logLevel: 'warning',
});
