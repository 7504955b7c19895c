// Builds dist/ from src/:
// - dist/entry.cjs, the program's entry: CommonJS, because an ES module entry costs ~6 ms more
//   start-up on the path that runs for every ssh invocation (src/entry.ts);
// - dist/cli.js and its chunks: the ES module CLI, each command and the refresh path split into
//   chunks loaded on demand.
//
// undici is bundled, and only its agent and request API (src/refresh/http.ts): they load in ~18 ms
// bundled against ~29 ms as ~60 separate CommonJS files and 70-100 ms through undici's index,
// and bundling freezes the undici internals we import at the version tested here. execa,
// cosmiconfig and debug stay external runtime dependencies, each imported only when used.
//
// undici is also a runtime dependency pinned to the exact version bundled, so that users' npm
// audit and Dependabot see it; the build refuses to bundle any other version, and writes the
// bundled one into the program (cscs-sa --version prints it).
import { build } from 'esbuild';
import { copyFileSync, readFileSync, rmSync } from 'node:fs';

const readJson = (path) => JSON.parse(readFileSync(new URL(path, import.meta.url), 'utf8'));
const pkg = readJson('../package.json');
const declared = pkg.dependencies.undici;
const bundled = readJson('../node_modules/undici/package.json').version;
if (declared !== bundled) {
  console.error(`build: package.json pins undici ${declared} but node_modules has ${bundled}: run npm ci`);
  process.exit(1);
}

const dist = new URL('../dist/', import.meta.url);
rmSync(dist, { recursive: true, force: true });
const common = {
  bundle: true,
  platform: 'node',
  target: 'node20.18',
  legalComments: 'none',
  logLevel: 'warning',
  define: { CSCS_SA_VERSION: JSON.stringify(pkg.version), CSCS_SA_UNDICI_VERSION: JSON.stringify(bundled) },
};
await build({
  ...common,
  entryPoints: ['src/cli.ts'],
  outdir: 'dist',
  splitting: true,
  format: 'esm',
  external: ['execa', 'cosmiconfig', 'debug'],
  // undici is CommonJS: its require() calls need a require in the ES module chunks.
  banner: { js: "import { createRequire as __cscsSaRequire } from 'node:module'; const require = __cscsSaRequire(import.meta.url);" },
  chunkNames: '[name]-[hash]',
});
await build({
  ...common,
  entryPoints: ['src/entry.ts'],
  outfile: 'dist/entry.cjs',
  format: 'cjs',
  // The relay's log loads debug with createRequire(import.meta.url), which CommonJS has not.
  define: { ...common.define, 'import.meta.url': '__cscsSaEntryUrl' },
  banner: { js: "const __cscsSaEntryUrl = require('node:url').pathToFileURL(__filename).href;" },
  // The ES module CLI stays a separate file, imported only when the hot path cannot answer.
  external: ['./cli.js'],
});
copyFileSync(new URL('../node_modules/undici/LICENSE', import.meta.url), new URL('undici.LICENSE', dist));
