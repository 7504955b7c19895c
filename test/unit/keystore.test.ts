/**
 * The action's API key store (src/action/keystore.ts): one config file for every account the job
 * sets up, a 0600 key file per account in a 0700 folder, and each account's post step taking out
 * only its own entry, the last one everything.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { forgetApiKey, installCommand, keyStore, storeApiKey } from '../../src/action/keystore.ts';

test('two accounts share one config file; forgetting one keeps the other; the last takes the folder, config and command', () => {
  const temp = mkdtempSync(join(tmpdir(), 'cscs-sa-runner-temp-'));
  try {
    const sa = keyStore(temp, 'sa');
    const proj = keyStore(temp, 'proj');
    storeApiKey(sa, 'sa', 'key-of-sa');
    installCommand(sa, '/opt/node/bin/node', '/actions/cscs-sa/dist-action/cscs-sa.cjs');
    storeApiKey(proj, 'proj', 'key-of-proj');
    assert.is(sa.configFile, proj.configFile);
    const config = () => JSON.parse(readFileSync(sa.configFile, 'utf8'));
    assert.equal(config(), { apiKeyFile: sa.apiKeyFile, accounts: { proj: { apiKeyFile: proj.apiKeyFile } } });
    assert.is(readFileSync(sa.apiKeyFile, 'utf8'), 'key-of-sa\n');
    assert.is(statSync(sa.dir).mode & 0o777, 0o700);
    for (const file of [sa.apiKeyFile, proj.apiKeyFile, sa.configFile]) assert.is(statSync(file).mode & 0o777, 0o600, file);
    assert.is(readFileSync(join(sa.bin, 'cscs-sa'), 'utf8'), '#!/bin/sh\nexec /opt/node/bin/node /actions/cscs-sa/dist-action/cscs-sa.cjs "$@"\n');

    // Post steps run in reverse order: proj's first.
    assert.equal(forgetApiKey(proj, 'proj'), [proj.apiKeyFile]);
    assert.equal(config(), { apiKeyFile: sa.apiKeyFile });
    assert.equal(forgetApiKey(sa, 'sa'), [sa.apiKeyFile, sa.configFile, join(sa.bin, 'cscs-sa'), sa.bin, sa.dir]);
    assert.not.ok(existsSync(sa.dir));
    // A post step that runs again (or after the runner emptied its temporary folder) finds nothing to do.
    assert.equal(forgetApiKey(sa, 'sa'), []);
  } finally {
    rmSync(temp, { recursive: true, force: true });
  }
});

test.run();
