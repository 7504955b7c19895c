/**
 * The GitHub Action's contract with its runner: action.yml declares exactly the inputs and
 * outputs the code uses (integration/singlefile.test.ts checks the committed bundle): an input the code never reads would be silently ignored, one it
 * reads but action.yml does not declare would always be empty.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { actionYml, ROOT } from '../helpers/gh-runner.ts';

const SOURCES = join(ROOT, 'src', 'action');
const sources = () => readdirSync(SOURCES).map((name) => [name, readFileSync(join(SOURCES, name), 'utf8')] as const);
/** The first argument of every call to one of `functions`, in the action's sources. */
function namesPassedTo(functions: string[]): Set<string> {
  const call = new RegExp(`\\b(?:${functions.join('|')})\\('([^']+)'`, 'g');
  return new Set(sources().flatMap(([, text]) => [...text.matchAll(call)].map((m) => m[1]!)));
}

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

test.run();
