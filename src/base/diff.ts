/** A minimal unified diff (as `diff -u` prints it) of two texts, for setup --dry-run. */

const CONTEXT = 3;

function lines(text: string | undefined): string[] {
  return text ? text.replace(/\r?\n$/, '').split(/\r?\n/) : [];
}

type Op = { kind: ' ' | '-' | '+'; line: string };

/**
 * The edit script: common lines at both ends are kept as they are, and the part between by a
 * longest common subsequence, which is small for the files setup edits (a block, an Include).
 */
function edits(a: string[], b: string[]): Op[] {
  let head = 0;
  while (head < a.length && head < b.length && a[head] === b[head]) head++;
  let tail = 0;
  while (tail < a.length - head && tail < b.length - head && a[a.length - 1 - tail] === b[b.length - 1 - tail]) tail++;
  const x = a.slice(head, a.length - tail);
  const y = b.slice(head, b.length - tail);
  // lcs[i][j]: the longest common subsequence of x[i..] and y[j..].
  const lcs = Array.from({ length: x.length + 1 }, () => new Array<number>(y.length + 1).fill(0));
  for (let i = x.length - 1; i >= 0; i--) {
    for (let j = y.length - 1; j >= 0; j--) lcs[i]![j] = x[i] === y[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
  }
  const middle: Op[] = [];
  let [i, j] = [0, 0];
  while (i < x.length || j < y.length) {
    if (i < x.length && j < y.length && x[i] === y[j]) middle.push({ kind: ' ', line: x[i++]! }), j++;
    // Removed lines before added ones, as diff -u shows a replaced line.
    else if (i < x.length && (j === y.length || lcs[i + 1]![j]! >= lcs[i]![j + 1]!)) middle.push({ kind: '-', line: x[i++]! });
    else middle.push({ kind: '+', line: y[j++]! });
  }
  const same = (l: string[]): Op[] => l.map((line) => ({ kind: ' ', line }));
  return [...same(a.slice(0, head)), ...middle, ...same(a.slice(a.length - tail))];
}

/** `--- PATH` / `+++ PATH` and the hunks that change OLD (undefined: no file) into NEW; '' when equal. */
export function unifiedDiff(path: string, oldText: string | undefined, newText: string): string {
  const ops = edits(lines(oldText), lines(newText));
  const changed = ops.flatMap((op, k) => (op.kind === ' ' ? [] : [k]));
  if (changed.length === 0) return '';
  let out = `--- ${oldText === undefined || oldText === '' ? '/dev/null' : path}\n+++ ${path}\n`;
  // Hunks: changed lines with CONTEXT lines around them, merged when their context touches.
  let k = 0;
  while (k < changed.length) {
    const start = Math.max(0, changed[k]! - CONTEXT);
    let end = changed[k]! + CONTEXT + 1;
    while (k + 1 < changed.length && changed[k + 1]! - CONTEXT <= end) end = changed[++k]! + CONTEXT + 1;
    k++;
    end = Math.min(end, ops.length);
    const before = ops.slice(0, start);
    const hunk = ops.slice(start, end);
    const oldStart = before.filter((op) => op.kind !== '+').length;
    const newStart = before.filter((op) => op.kind !== '-').length;
    const oldCount = hunk.filter((op) => op.kind !== '+').length;
    const newCount = hunk.filter((op) => op.kind !== '-').length;
    // diff -u numbers an empty range by the line before it.
    out += `@@ -${oldCount === 0 ? oldStart : oldStart + 1},${oldCount} +${newCount === 0 ? newStart : newStart + 1},${newCount} @@\n`;
    out += hunk.map((op) => `${op.kind}${op.line}\n`).join('');
  }
  return out;
}
