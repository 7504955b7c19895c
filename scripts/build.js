// Builds dist/ from src/:
// - dist/entry.cjs, the program's entry: CommonJS, because an ES module entry costs ~6 ms more
//   start-up on the path that runs for every ssh invocation (src/entry.ts);
// - dist/cli.js and its chunks: the ES module CLI, each command and the refresh path split into
//   chunks loaded on demand.
//
// undici and execa are bundled. undici, only its agent and request API (src/refresh/http.ts):
// they load in ~18 ms bundled against ~29 ms as ~60 separate CommonJS files and 70-100 ms through
// undici's index, and bundling freezes the undici internals we import at the version tested here.
// execa: as its ~100 ES modules it added ~0.15 s of CPU to every command that starts a process
// (setup, doctor, a refresh that makes the key pair), one file ~0.05 s; most of the difference is
// Node resolving and linking the modules. cosmiconfig and debug stay external runtime
// dependencies, each imported only when used.
//
// The bundled packages are also runtime dependencies pinned to the exact versions bundled, so that
// users' npm audit and Dependabot see them; the build refuses to bundle any other version, and
// writes undici's into the program (cscs-sa --version prints it). dist/licenses.txt carries the
// license texts of everything bundled.
//
// `node scripts/build.js --action [DIR]` builds the GitHub Action's bundle instead (default
// dist-action/, which is committed: a runner runs an action from its repository as it is, with no
// npm install), see buildAction below.
import { build } from 'esbuild';
import { chmodSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const readJson = (path) => JSON.parse(readFileSync(new URL(path, import.meta.url), 'utf8'));
const pkg = readJson('../package.json');
/** Packages bundled into dist/, each pinned in package.json to the version in node_modules. */
const BUNDLED = ['undici', 'execa'];
for (const name of BUNDLED) {
  const declared = pkg.dependencies[name];
  const present = readJson(`../node_modules/${name}/package.json`).version;
  if (declared !== present) {
    console.error(`build: package.json pins ${name} ${declared} but node_modules has ${present}: run npm ci`);
    process.exit(1);
  }
}
const bundled = pkg.dependencies.undici;

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const common = {
  // Paths in the output's comments are relative to this: the same bytes from any working folder.
  absWorkingDir: ROOT,
  bundle: true,
  platform: 'node',
  target: 'node20.18',
  legalComments: 'none',
  logLevel: 'warning',
  define: { CSCS_SA_VERSION: JSON.stringify(pkg.version), CSCS_SA_UNDICI_VERSION: JSON.stringify(bundled) },
};
/** dist/: the npm package's program, its dependencies but undici and execa left to npm. */
async function buildDist() {
  rmSync(join(ROOT, 'dist'), { recursive: true, force: true });
  const cli = await build({
    ...common,
    entryPoints: ['src/cli.ts'],
    outdir: 'dist',
    splitting: true,
    format: 'esm',
    external: ['cosmiconfig', 'debug'],
    // undici and execa's cross-spawn are CommonJS: their require() calls need a require in the ES
    // module chunks.
    banner: { js: "import { createRequire as __cscsSaRequire } from 'node:module'; const require = __cscsSaRequire(import.meta.url);" },
    chunkNames: '[name]-[hash]',
    metafile: true,
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
  writeFileSync(join(ROOT, 'dist/licenses.txt'), `Bundled into dist/ besides cscs-sa itself (MIT, see LICENSE):\n\n${licenses(cli.metafile)}`);
}

/**
 * The single-file build: the whole program and every dependency in one CommonJS file that runs
 * with nothing but node (no node_modules), for the GitHub Action, the GitLab component and the
 * release. CommonJS, like dist/entry.cjs: the CLI is evaluated only when the hot path cannot
 * answer (esbuild wraps what entry.ts imports dynamically in a function run on first import).
 */
const SINGLE_FILE = {
  ...common,
  entryPoints: ['src/entry.ts'],
  format: 'cjs',
  // cosmiconfig requires typescript only to load a config.ts, a name cscs-sa never searches.
  external: ['typescript'],
  define: { ...common.define, 'import.meta.url': '__cscsSaFileUrl' },
  banner: { js: "#!/usr/bin/env node\nconst __cscsSaFileUrl = require('node:url').pathToFileURL(__filename).href;" },
  plugins: [
    {
      // src/base/log.ts loads debug with createRequire, which keeps it out of the ES module
      // chunks' start-up; a bundler cannot follow that call, so here it becomes a plain require.
      name: 'bundle-debug',
      setup(b) {
        b.onLoad({ filter: /src[\\/]base[\\/]log\.ts$/ }, ({ path }) => {
          const text = readFileSync(path, 'utf8');
          const lazy = "createRequire(import.meta.url)('debug')";
          if (!text.includes(lazy)) throw new Error(`${path} no longer loads debug with ${lazy}: update the bundle-debug plugin`);
          return { contents: text.replace(lazy, "require('debug')"), loader: 'ts' };
        });
      },
    },
  ],
  metafile: true,
};

/** The license texts of the packages bundled into `metafile`'s outputs, for the bundle's notices. */
function licenses(metafile) {
  const packages = new Set();
  for (const output of Object.values(metafile.outputs)) {
    for (const input of Object.keys(output.inputs)) {
      const m = /^(.*node_modules\/(?:@[^/]+\/)?[^/]+)\//.exec(input);
      if (m) packages.add(m[1]);
    }
  }
  return [...packages].sort().map((dir) => {
    const { name, version, license } = JSON.parse(readFileSync(join(ROOT, dir, 'package.json'), 'utf8'));
    const file = readdirSync(join(ROOT, dir)).find((f) => /^(licen[cs]e|copying)/i.test(f));
    const text = file ? readFileSync(join(ROOT, dir, file), 'utf8').trim() : `(${license}; no license file in the package)`;
    return `${name} ${version}\n\n${text}\n`;
  }).join(`\n${'-'.repeat(72)}\n\n`);
}

/**
 * The GitHub Action's bundle in `out`: main.cjs and post.cjs (action.yml's entry points, with no
 * dependencies left to install) and cscs-sa.cjs, the single-file build, which the action runs
 * and puts on PATH; licenses.txt for what they bundle. Written byte for byte the same from the
 * same sources, so that CI can compare the committed bundle with a fresh one.
 */
async function buildAction(out) {
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  const results = await Promise.all([
    build({ ...SINGLE_FILE, outfile: join(out, 'cscs-sa.cjs') }),
    build({ ...common, entryPoints: ['src/action/main.ts', 'src/action/post.ts'], outdir: out, outExtension: { '.js': '.cjs' }, format: 'cjs', metafile: true }),
  ]);
  chmodSync(join(out, 'cscs-sa.cjs'), 0o755);
  const merged = { outputs: Object.assign({}, ...results.map((r) => r.metafile.outputs)) };
  writeFileSync(join(out, 'licenses.txt'), `Bundled into this folder's files besides cscs-sa itself (MIT, see LICENSE):\n\n${licenses(merged)}`);
}

const at = process.argv.indexOf('--action');
if (at === -1) await buildDist();
else await buildAction(resolve(process.argv[at + 1] ?? join(ROOT, 'dist-action')));
