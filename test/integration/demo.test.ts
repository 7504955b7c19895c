/** `npm run demo` (the README's main job) runs in CI too, and shows what it says it shows. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execa } from 'execa';
import { fileURLToPath } from 'node:url';

test('the demo pins host keys, and ssh itself refreshes from no certificate and from an expired one', async () => {
  const script = fileURLToPath(new URL('../../scripts/demo.ts', import.meta.url));
  const r = await execa(process.execPath, ['--import', 'tsx', script], { reject: false, all: true, env: { ...process.env, CSCS_API_KEY: undefined } });
  const out = String(r.all);
  assert.is(r.exitCode, 0, out);
  assert.match(out, /^\$ cscs-sa setup --hosts clariden\nwrote ~\/\.ssh\/cscs-sa\.conf\nadded the Include for it to ~\/\.ssh\/config \(backup: ~\/\.ssh\/config\.cscs-sa\.bak\)\ncscs-sa: host keys are not pinned/m);
  // ssh after a setup that pinned no host key: firstcontact.test.ts leaves it to this one.
  assert.match(out, /^\$ ssh sa-clariden true\n[\s\S]*?Host key verification failed\.\r?$/m);
  assert.match(out, /^fetched  sa-ela  ela\.cscs\.ch  SHA256:\S+ \(ssh-ed25519\)\nfetched  sa-clariden  clariden\.alps\.cscs\.ch  SHA256:\S+ \(ssh-ed25519\)$/m);
  assert.match(out, /^\$ cscs-sa setup --hosts clariden --known-hosts cscs\.known_hosts\npinned 2 host key\(s\) in ~\/\.ssh\/cscs-sa\.known_hosts$/m);
  assert.match(out, /^\$ rm ~\/\.ssh\/cscs-key-sa-cert\.pub\n\$ ssh sa-clariden 'echo hello from clariden, as \$\(whoami\)'\nhello from clariden, as \S+\nsign calls made while ssh ran: 1$/m);
  assert.match(out, /^status {7}expired .*$(.*\n)*?\$ ssh sa-clariden 'echo hello again'\nhello again\nsign calls made while ssh ran: 1$/m);
  assert.match(out, /^\$ cmp results\.bin back\.bin && echo identical\nidentical$/m);
  assert.match(out, /^Number of regular files transferred: 3$/m);
  // 0 while the certificate from the steps above is fresh; 1 when a slow machine took it into the refresh margin.
  assert.match(out, /^sign calls for 8 parallel ssh: [01]$/m);
  assert.match(out, /^status {7}fresh$/m);
  assert.match(out, /^== Done: (\d+) certificate\(s\) signed for \1 token\(s\) in the whole demo$/m);
});

test.run();
