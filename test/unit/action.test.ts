/**
 * The GitHub Action's contract with its runner: action.yml declares exactly the inputs and
 * outputs the code uses (integration/singlefile.test.ts checks the committed bundle): an input the code never reads would be silently ignored, one it
 * reads but action.yml does not declare would always be empty.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { defaultLoaders } from 'cosmiconfig';
import { actionYml, ROOT, workflowCommands } from '../helpers/gh-runner.ts';
import { command, showVerbatim } from '../../src/action/runner.ts';

const SOURCES = join(ROOT, 'src', 'action');
const sources = () => readdirSync(SOURCES).map((name) => [name, readFileSync(join(SOURCES, name), 'utf8')] as const);
/** The first argument of every call to one of `functions`, in the action's sources. */
function namesPassedTo(functions: string[]): Set<string> {
  const call = new RegExp(`\\b(?:${functions.join('|')})\\('([^']+)'`, 'g');
  return new Set(sources().flatMap(([, text]) => [...text.matchAll(call)].map((m) => m[1]!)));
}

/** What `print` writes on stdout. */
function stdoutOf(print: () => void): string {
  const write = process.stdout.write;
  let text = '';
  process.stdout.write = ((chunk: string) => ((text += chunk), true)) as typeof process.stdout.write;
  try {
    print();
  } finally {
    process.stdout.write = write;
  }
  return text;
}

test('output shown verbatim (what cscs-sa printed) carries out no workflow command, and the action\'s own commands still work after it', () => {
  const text = stdoutOf(() => {
    showVerbatim('a line\n::add-mask::login\n::warning::injected');
    command('endgroup');
  });
  assert.match(text, /^a line\n::add-mask::login\n::warning::injected$/m);
  assert.equal(workflowCommands(text), ['endgroup ']);
});

test('action.yml declares exactly the inputs the code reads, and the code reads them only through input()', () => {
  assert.equal(Object.keys(actionYml().inputs).sort(), [...namesPassedTo(['input', 'booleanInput'])].sort());
  const elsewhere = sources().filter(([name, text]) => name !== 'runner.ts' && text.includes('INPUT_'));
  assert.equal(elsewhere.map(([name]) => name), []);
});

test('action.yml declares exactly the outputs the code sets', () => {
  assert.equal(Object.keys(actionYml().outputs).sort(), [...namesPassedTo(['setOutput'])].sort());
});

test('action.yml runs the bundle on a current runtime, with a post step that always runs', () => {
  const { runs } = actionYml();
  assert.equal(runs, { using: 'node24', main: 'dist-action/main.cjs', post: 'dist-action/post.cjs', 'post-if': 'always()' });
});

/** The steps of a workflow file's jobs. */
type Workflow = { jobs: Record<string, { steps: { uses?: string; with?: Record<string, unknown>; run?: string; if?: string }[] }> };

test('the GitHub Actions examples give the action only inputs it declares, every required one, and end with no step that can fail a good job', () => {
  const { inputs } = actionYml();
  const required = Object.keys(inputs).filter((name) => inputs[name]!.required);
  const files = readdirSync(join(ROOT, 'examples')).filter((name) => /^github-actions.*\.yml$/.test(name));
  assert.ok(files.length >= 2, files.join(' '));
  for (const file of files) {
    const path = join(ROOT, 'examples', file);
    const { jobs } = defaultLoaders['.yaml'](path, readFileSync(path, 'utf8')) as Workflow;
    const steps = Object.values(jobs).flatMap((job) => job.steps);
    const ours = steps.filter((step) => step.uses?.startsWith('OWNER/cscs-sa@'));
    assert.ok(ours.length >= 1, `${file} uses the action`);
    for (const step of ours) {
      const given = Object.keys(step.with ?? {});
      assert.equal(given.filter((name) => !Object.hasOwn(inputs, name)), [], `${file}: undeclared inputs`);
      assert.equal(required.filter((name) => !given.includes(name)), [], `${file}: required inputs missing`);
    }
    // cscs-sa status exits 1 once a certificate is no longer fresh, which is normal after a job.
    assert.not.ok(steps.some((step) => /cscs-sa status\b(?![^\n]*\|\| true)/.test(step.run ?? '')), `${file} runs cscs-sa status in a step that would fail the job`);
  }
});

test.run();
