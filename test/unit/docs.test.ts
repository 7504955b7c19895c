/**
 * The documentation holds together: README.md stays short enough to read in five minutes, every
 * relative link in it and in docs/ reaches a file (and a heading, for #anchors, named as GitHub
 * names them), every page of docs/ is reachable from the README, and the test command the README
 * gives is the one CI runs, with the same system packages.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const README = join(ROOT, 'README.md');
const PAGES = [README, ...readdirSync(join(ROOT, 'docs')).filter((name) => name.endsWith('.md')).map((name) => join(ROOT, 'docs', name))];

/** What a newcomer reads in five minutes; the detail belongs in docs/. */
const README_MAX_BYTES = 16_000;

/** The text outside fenced code blocks and inline code, where a `[x](y)` is a link. */
function prose(markdown: string): string {
  return markdown.replace(/^```[\s\S]*?^```/gm, '').replace(/`[^`\n]*`/g, '');
}

/** Anchors of a page's headings, as GitHub makes them: lower case, punctuation dropped, spaces to hyphens, repeats numbered. */
function anchorsOf(file: string): Set<string> {
  const seen = new Map<string, number>();
  const anchors = new Set<string>();
  const text = readFileSync(file, 'utf8').replace(/^```[\s\S]*?^```/gm, '');
  for (const m of text.matchAll(/^#{1,6}\s+(.+?)\s*#*$/gm)) {
    const base = m[1]!.toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').trim().replace(/\s/g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    anchors.add(n === 0 ? base : `${base}-${n}`);
  }
  return anchors;
}

/** Relative link targets of a page: not http(s), not mailto. */
function linksOf(file: string): string[] {
  return [...prose(readFileSync(file, 'utf8')).matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]!).filter((target) => !/^[a-z]+:/i.test(target));
}

test(`README.md stays under ${README_MAX_BYTES} bytes`, () => {
  const size = statSync(README).size;
  assert.ok(size < README_MAX_BYTES, `README.md is ${size} bytes: move the detail into docs/`);
});

test('every relative link in README.md and docs/ reaches a file, and its #anchor a heading there', () => {
  const broken: string[] = [];
  for (const page of PAGES) {
    for (const link of linksOf(page)) {
      const [path, anchor] = link.split('#') as [string, string | undefined];
      const target = path === '' ? page : resolve(dirname(page), path);
      const where = `${relative(ROOT, page)}: ${link}`;
      if (!existsSync(target)) broken.push(`${where} (no such file)`);
      else if (anchor !== undefined && !(target.endsWith('.md') && anchorsOf(target).has(anchor))) broken.push(`${where} (no such heading)`);
    }
  }
  assert.equal(broken, []);
});

test('every page in docs/ is linked from the README', () => {
  const linked = new Set(linksOf(README).map((link) => resolve(ROOT, link.split('#')[0]!)));
  assert.equal(PAGES.slice(1).filter((page) => !linked.has(page)).map((page) => relative(ROOT, page)), []);
});

test("the README's test command is the one .ci/run runs, after installing the same packages", () => {
  const readme = readFileSync(README, 'utf8').split('\n');
  const ci = readFileSync(join(ROOT, '.ci/run'), 'utf8').trimEnd().split('\n');
  const at = readme.findIndex((line) => /\bnpm (run )?test\b/.test(line));
  assert.ok(at > 0, 'README.md gives no npm test command');
  assert.is(readme[at], ci.at(-1));
  const readmePackages = /^apt-get install -y (.+)$/.exec(readme[at - 1]!)?.[1]!.split(/\s+/).sort();
  const ciPackages = [...ci.join('\n').matchAll(/missing\+=\(([^)]+)\)/g)].map((m) => m[1]!).sort();
  assert.equal(readmePackages, ciPackages, 'the apt-get line above the README test command');
});

test.run();
