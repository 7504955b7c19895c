/**
 * The layout of src/: folders by concern, and imports that point one way, down this list. A
 * module may import from its own folder and from folders below it, never from one above; the
 * hot-path entry may import only what `match` with a fresh certificate needs.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const SRC = fileURLToPath(new URL('../../src/', import.meta.url));

/** Top first. The purpose of each folder is the one line docs/development.md's Layout section gives. */
const LAYERS = ['.', 'action', 'commands', 'doctor', 'ssh', 'refresh', 'core', 'base'];

/** What the CommonJS entry may load before it decides that the full CLI is needed: a plain proxy relays from there. */
const HOT_PATH_ENTRY = 'entry.ts';
const HOT_PATH_ALLOWED = ['core', 'base', 'doctor/probe.ts', 'ssh/relay.ts'];

function sources(dir = SRC): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? (e.name === 'types' ? [] : sources(join(dir, e.name))) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

/** Relative imports of a file, static and dynamic, as paths under src/. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/(?:from|import\()\s*'(\.{1,2}\/[^']+)'/g)].map((m) => relative(SRC, resolve(dirname(file), m[1]!.replace(/\.js$/, '.ts'))));
}

const layerOf = (path: string): string => (path.includes('/') ? path.split('/')[0]! : '.');

test('every source file sits in a known folder', () => {
  for (const file of sources()) assert.ok(LAYERS.includes(layerOf(relative(SRC, file))), `${relative(SRC, file)} is in no known folder`);
});

test('imports point down the layers, never up', () => {
  const wrong: string[] = [];
  for (const file of sources()) {
    const from = relative(SRC, file);
    for (const to of importsOf(file)) {
      if (LAYERS.indexOf(layerOf(to)) < LAYERS.indexOf(layerOf(from))) wrong.push(`${from} -> ${to}`);
    }
  }
  assert.equal(wrong, []);
});

test('the hot-path entry and all it loads stay within core, base, the probe and the relay (the CLI only by dynamic import)', () => {
  const seen = new Set<string>();
  const visit = (path: string): void => {
    if (seen.has(path)) return;
    seen.add(path);
    const text = readFileSync(join(SRC, path), 'utf8');
    for (const m of text.matchAll(/from\s*'(\.{1,2}\/[^']+)'/g)) visit(relative(SRC, resolve(dirname(join(SRC, path)), m[1]!.replace(/\.js$/, '.ts'))));
  };
  visit(HOT_PATH_ENTRY);
  seen.delete(HOT_PATH_ENTRY);
  const outside = [...seen].filter((p) => !HOT_PATH_ALLOWED.some((a) => p === a || p.startsWith(`${a}/`)));
  assert.equal(outside, []);
});

test.run();
