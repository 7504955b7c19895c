/** "Did you mean": the known name a mistyped one most likely meant. */

/** Edits between a and b, a swap of two neighbours counting as one ("stauts" is one from "status"). */
function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1);
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * The candidates closest to `typed`, if close enough to be a typo (one edit for short names, two
 * from five characters on), quoted for a message: `"--hosts"`, or `"--host" or "--hosts"` when
 * two are equally close (`--hots`), since picking one of them would be a guess.
 */
export function didYouMean(typed: string, candidates: readonly string[]): string | undefined {
  const limit = typed.length < 5 ? 1 : 2;
  const scored = candidates.map((name) => ({ name, d: distance(typed.toLowerCase(), name.toLowerCase()) })).filter(({ d }) => d <= limit);
  const best = Math.min(...scored.map(({ d }) => d));
  const closest = scored.filter(({ d }) => d === best).map(({ name }) => `"${name}"`);
  if (closest.length === 0 || closest.length > 2) return undefined;
  return closest.sort().join(' or ');
}
