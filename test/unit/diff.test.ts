/** setup --dry-run's diff: only what changes, with three lines of context, numbered as diff -u numbers them. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { unifiedDiff } from '../../src/base/diff.ts';

const lines = (n: number) => Array.from({ length: n }, (_, i) => `line ${i + 1}`);
const text = (l: string[]) => `${l.join('\n')}\n`;

test('one changed line in twenty: one hunk, the line and three of context each side', () => {
  const old = lines(20);
  const now = old.map((l) => (l === 'line 10' ? 'line ten' : l));
  assert.is(unifiedDiff('f', text(old), text(now)), `--- f\n+++ f\n@@ -7,7 +7,7 @@\n line 7\n line 8\n line 9\n-line 10\n+line ten\n line 11\n line 12\n line 13\n`);
});

test('changes far apart are two hunks; close ones share one', () => {
  const old = lines(30);
  const far = old.filter((l) => l !== 'line 2' && l !== 'line 25');
  assert.is(unifiedDiff('f', text(old), text(far)).match(/^@@/gm)?.length, 2);
  const near = old.filter((l) => l !== 'line 10' && l !== 'line 14');
  assert.is(unifiedDiff('f', text(old), text(near)).match(/^@@/gm)?.length, 1);
});

test('a new file is all additions from /dev/null; equal texts give nothing', () => {
  assert.is(unifiedDiff('f', undefined, 'a\nb\n'), '--- /dev/null\n+++ f\n@@ -0,0 +1,2 @@\n+a\n+b\n');
  assert.is(unifiedDiff('f', 'a\n', 'a\n'), '');
});

test('lines inserted at the top are numbered as diff -u numbers them', () => {
  assert.is(unifiedDiff('f', 'x\ny\n', 'new\nx\ny\n'), '--- f\n+++ f\n@@ -1,2 +1,3 @@\n+new\n x\n y\n');
});

test.run();
