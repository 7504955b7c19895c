// The test runner: `npm test` runs the unit layer and the integration layer; `node scripts/test.js
// WORD...` runs the test files whose path contains one of the words.
//
// The unit layer runs in one process; each integration file runs as a process of its own, with a
// time limit: a file that hangs is stopped and named, and counts as failed. As root, each
// integration file runs in a namespace of its own (scripts/namespace.js): the suite never edits
// the machine, needs no network, and files that run at the same time do not meet. Elsewhere
// files run as they are, and the tests that need the namespace say SKIPPED.
//
// The test files are compiled first, each with the sources it imports, into one JavaScript file
// (compileTests): TypeScript through tsx's loader cost each file's process ~0.7 s of CPU.
//
// uvu prints "Total / Passed / Skipped" per file; this ends with the plain line `N passed, N
// failed, N skipped` that CI records. A test that cannot run registers nothing and prints a line
// starting with SKIPPED (test/helpers/suites.ts skipTest): those lines are the skipped count.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { constants, cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import { inNamespace, NAMESPACE_VARIABLE, namespaceUnavailable } from './namespace.js';

const LAYERS = ['test/unit', 'test/integration'];
/**
 * Files whose wall time is a long chain of runs in a row (load.test.ts: 300 ssh one after another
 * over three certificate lifetimes), not their CPU: they start first, beside the others, weighed
 * far above them (runFile), and the others take what the chain leaves. Without that, the chain's
 * every ssh waited for a core behind three other files: 0.94 s a run instead of ~0.4 s, and the
 * file alone took 400 s, longer than all the rest.
 */
const LONG_POLES = ['load'];
/** A long pole's weight against each other file's 1024: it gets a core whenever it asks. */
const LONG_POLE_SHARES = 16384;
/** Without cgroups: how much lower the other files' priority is (nice's scale). */
const OTHERS_NICE = 10;
/**
 * The other integration files that take longest, started first so that the rest fill the time
 * beside them instead of leaving one running alone at the end.
 */
const SLOWEST_FIRST = ['freshcheck', 'doctor', 'firstcontact', 'e2e', 'multiplex', 'oldssh', 'accounts'];
/** Generous: the slowest file (load.test.ts, 300 ssh runs in a row) took 550 s beside three others at load 40. */
const FILE_LIMIT_MS = Number(process.env.CSCS_SA_TEST_FILE_LIMIT ?? 900) * 1000;
/**
 * Files beside the long pole, two per core: each also waits (on sshd, timers, certificate
 * lifetimes), and two per core keep both cores busy (the suite ran at ~160% CPU).
 */
const PARALLEL = Math.max(1, Number(process.env.CSCS_SA_TEST_PARALLEL ?? Math.min(4, cpus().length * 2)));

function testFiles(words) {
  const all = LAYERS.flatMap((dir) => readdirSync(dir).filter((f) => f.endsWith('.test.ts')).sort().map((f) => `${dir}/${f}`));
  return words.length ? all.filter((f) => words.some((w) => f.includes(w))) : all;
}

/**
 * Compiles FILES into a new folder under node_modules/.cache (so that their imports of packages
 * resolve to this checkout's node_modules) and returns it; each file keeps its path inside. Each
 * is bundled with the sources it imports, packages left to node_modules; a source's
 * import.meta.url and import.meta.dirname become the literal values of the .ts file, so paths
 * found from them (bin/, examples/, helpers) are the same as from the source. The inline source
 * map puts the .ts lines into failures' stack traces.
 */
async function compileTests(files) {
  const cache = join('node_modules', '.cache');
  mkdirSync(cache, { recursive: true });
  const out = mkdtempSync(join(cache, 'cscs-sa-test-'));
  process.on('exit', () => rmSync(out, { recursive: true, force: true }));
  await build({
    entryPoints: files,
    outdir: out,
    outbase: '.',
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'node20.18',
    packages: 'external',
    sourcemap: 'inline',
    logLevel: 'warning',
    plugins: [
      {
        name: 'source-location',
        setup(b) {
          b.onLoad({ filter: /\.ts$/ }, ({ path }) => {
            const text = readFileSync(path, 'utf8')
              .replaceAll('import.meta.url', JSON.stringify(pathToFileURL(path).href))
              .replaceAll('import.meta.dirname', JSON.stringify(dirname(path)));
            return { contents: text, loader: 'ts' };
          });
        },
      },
    ],
  });
  return out;
}

/**
 * cgroup v1 groups of a file's own, where the machine has the hierarchies and lets us make groups
 * (as root): `cpuacct` counts the CPU time the file costs with all its processes (ssh, sshd, Node),
 * the number to keep down in a suite bound by CPU; `cpu` weighs the file against the others.
 */
const CGROUP = '/sys/fs/cgroup';
function makeGroup(hierarchy) {
  try {
    return mkdtempSync(join(CGROUP, hierarchy, 'cscs-sa-test-'));
  } catch {
    return undefined;
  }
}
function cpuSeconds(group) {
  try {
    return Number(readFileSync(join(group, 'cpuacct.usage'), 'utf8')) / 1e9;
  } catch {
    return undefined;
  }
}
/** `shares` for the cpu group (1024 is a process's own); undefined when there is none. */
function weighedGroup(shares) {
  const group = makeGroup('cpu');
  try {
    if (group) writeFileSync(join(group, 'cpu.shares'), String(shares));
    return group;
  } catch {
    rmdirSync(group);
    return undefined;
  }
}

/** The test files running now: each one's process group and cgroups. */
const running = new Set();

/** A cgroup goes once its processes have: they may take a moment to die. */
function removeGroup(group) {
  const until = Date.now() + 2000;
  for (;;) {
    try {
      rmdirSync(group);
      return;
    } catch {
      if (Date.now() > until) return;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
    }
  }
}

// Interrupted (Ctrl-C, a CI cancel): the files' processes (each in a group of its own, which the
// terminal's signal does not reach) and their cgroups go with the runner, and exiting the usual
// way removes the compiled tests too.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    for (const { pid } of running) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {}
    }
    for (const { groups } of running) groups.forEach(removeGroup);
    process.exit(128 + constants.signals[signal]);
  });
}

/**
 * Runs a test file. A long pole gets the CPU whenever it asks: CPU shares weigh groups, where
 * `nice` weighs single processes, and four files of many processes each outweighed one chain of
 * ssh at nice 0 (load.test.ts's 300 runs took 0.69 s each beside them, 0.37 s on a quiet machine).
 * Without a cpu group the others run under nice.
 */
function runFile(testArgs, namespace, longPole = false) {
  const weighed = weighedGroup(longPole ? LONG_POLE_SHARES : 1024);
  const nice = !longPole && !weighed ? ['nice', '-n', String(OTHERS_NICE)] : [];
  const node = [...nice, process.execPath, '--enable-source-maps', ...testArgs];
  const counted = makeGroup('cpuacct');
  const groups = [counted, weighed].filter(Boolean);
  // The file's first process joins the groups before it starts anything; its children inherit them.
  const joined = groups.length ? ['sh', '-c', 'while [ "$1" != -- ]; do echo $$ > "$1/cgroup.procs" || exit 1; shift; done; shift; exec "$@"', 'sh', ...groups, '--', ...node] : node;
  const [cmd, args] = namespace ? inNamespace(joined) : [joined[0], joined.slice(1)];
  const env = { ...process.env, FORCE_COLOR: '0', ...(namespace ? { [NAMESPACE_VARIABLE]: '1' } : {}) };
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const file = { pid: child.pid, groups };
    running.add(file);
    let out = '';
    child.stdout.on('data', (c) => (out += c));
    child.stderr.on('data', (c) => (out += c));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {}
    }, FILE_LIMIT_MS);
    child.on('close', (code) => {
      clearTimeout(timer);
      running.delete(file);
      const cpu = counted && cpuSeconds(counted);
      for (const group of groups) {
        try {
          rmdirSync(group);
        } catch {}
      }
      resolve({ code, out, timedOut, seconds: (Date.now() - started) / 1000, cpu });
    });
  });
}

function count(result) {
  const plain = result.out.replace(/\x1b\[[0-9;]*m/g, '');
  const field = (name) => Number(new RegExp(`^\\s*${name}:\\s+(\\d+)`, 'm').exec(plain)?.[1]);
  const skipped = (plain.match(/^\s*SKIPPED\b/gm) ?? []).length;
  const total = field('Total');
  const passed = field('Passed');
  if (result.timedOut || Number.isNaN(total)) {
    // Stopped, or died before its summary: what its suites reported, plus the file itself.
    const suites = [...plain.matchAll(/\((\d+) \/ (\d+)\)/g)].map((m) => [Number(m[1]), Number(m[2])]);
    return { passed: suites.reduce((s, [done]) => s + done, 0), failed: suites.reduce((s, [done, max]) => s + max - done, 0) + 1, skipped };
  }
  return { passed, failed: total - passed + (result.code === 0 ? 0 : total === passed ? 1 : 0), skipped };
}

const files = testFiles(process.argv.slice(2));
if (files.length === 0) {
  console.error(`scripts/test.js: no test file matches ${process.argv.slice(2).join(' ')}`);
  process.exit(2);
}
const noNamespace = namespaceUnavailable();
const namespace = !noNamespace;
console.log(
  namespace
    ? `Each test file runs in a private network and mount namespace (real host names on its own loopback); ${PARALLEL} at a time.`
    : `No private namespace here (${noNamespace}): tests that need the real host names or a second user say SKIPPED.`,
);

const compiled = await compileTests(files);
/** Where FILE's compiled form is. */
const built = (file) => join(compiled, file.replace(/\.ts$/, '.js'));

const totals = { passed: 0, failed: 0, skipped: 0 };
let cpuTotal = 0;
const failedFiles = [];
const started = Date.now();
/** One result into the totals, printed with a header line. */
function report(name, result) {
  const c = count(result);
  for (const k of Object.keys(totals)) totals[k] += c[k];
  if (c.failed) failedFiles.push(name);
  const status = result.timedOut ? `STOPPED after ${FILE_LIMIT_MS / 1000} s (hung)` : c.failed ? 'FAILED' : 'ok';
  cpuTotal += result.cpu ?? 0;
  const cpu = result.cpu === undefined ? '' : ` (cpu ${result.cpu.toFixed(1)} s)`;
  process.stdout.write(`\n== ${name}: ${status}, ${c.passed} passed, ${c.failed} failed, ${c.skipped} skipped, ${result.seconds.toFixed(1)} s${cpu}\n${result.out}`);
}

// The unit layer in one process (its files share nothing and start no ssh or sshd), beside the
// integration files: it needs ~1 s of CPU, but waits ~4 s (real retry delays and a slow gateway
// double), and it ends long before any integration file, so a broken rule still shows first.
const unit = files.filter((f) => f.startsWith('test/unit/'));
const unitLayer = unit.length
  ? runFile(['node_modules/uvu/bin.js', join(compiled, 'test/unit'), unit.map((f) => f.slice('test/unit/'.length, -'.ts'.length).replace(/[.]/g, '\\.')).join('|')], false).then((result) => report(`test/unit (${unit.length} files)`, result))
  : undefined;
const rank = (f) => {
  const i = SLOWEST_FIRST.findIndex((name) => f === `test/integration/${name}.test.ts`);
  return i === -1 ? SLOWEST_FIRST.length : i;
};
const longPole = (f) => LONG_POLES.some((name) => f === `test/integration/${name}.test.ts`);
const integration = files.filter((f) => f.startsWith('test/integration/'));
const queue = integration.filter((f) => !longPole(f)).sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
await Promise.all([
  unitLayer,
  ...integration.filter(longPole).map(async (file) => report(file, await runFile([built(file)], namespace, true))),
  ...Array.from({ length: PARALLEL }, async () => {
    for (let file; (file = queue.shift()); ) report(file, await runFile([built(file)], namespace));
  }),
]);
console.log(`\n${files.length} files in ${((Date.now() - started) / 1000).toFixed(0)} s${cpuTotal ? ` (cpu ${cpuTotal.toFixed(0)} s)` : ''}${failedFiles.length ? `; failed: ${failedFiles.join(' ')}` : ''}`);
console.log(`${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped`);
process.exit(totals.failed === 0 ? 0 : 1);
