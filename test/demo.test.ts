/** `npm run demo` (the README's main job) runs in CI too, and shows what it says it shows. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execa } from 'execa';
import { fileURLToPath } from 'node:url';

test('the demo sets up, connects, copies and reports one certificate for the whole run', async () => {
  const script = fileURLToPath(new URL('../scripts/demo.ts', import.meta.url));
  const r = await execa(process.execPath, ['--import', 'tsx', script], { reject: false, all: true, env: { ...process.env, CSCS_API_KEY: undefined } });
  const out = String(r.all);
  assert.is(r.exitCode, 0, out);
  assert.match(out, /^\$ cscs-sa setup --hosts clariden\nwrote ~\/\.ssh\/cscs-sa\.conf\nadded the Include for it to ~\/\.ssh\/config \(backup: ~\/\.ssh\/config\.cscs-sa\.bak\)$/m);
  assert.match(out, /^hello from clariden, as \S+$/m);
  assert.match(out, /^\$ cmp results\.bin back\.bin && echo identical\nidentical$/m);
  assert.match(out, /^Number of regular files transferred: 3$/m);
  assert.match(out, /^sign calls for 8 parallel ssh: 0$/m);
  assert.match(out, /^status {7}fresh$/m);
  assert.match(out, /^== Done: 1 certificate\(s\) signed for 1 token\(s\) in the whole demo$/m);
});

test.run();
