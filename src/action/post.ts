/**
 * The GitHub Action's post step (action.yml, post-if: always()): after the job's last step, also
 * when the job failed or was cancelled, it takes away what main made, so that a self-hosted
 * runner keeps nothing: burst mode's masters closed, the account's Include and ssh_config file
 * out, the key pair, certificate, pinned host keys and sockets folder deleted when main created
 * them, the API key file and its config entry deleted. Each part is tried even when another fails.
 */
import { lstatSync, readFileSync, rmdirSync, rmSync } from 'node:fs';
import { CscsSaError } from '../base/errors.js';
import { controlDir, sshConfigPath } from '../ssh/multiplex.js';
import { cscsSa, failure, PLAN_STATE, type Plan, sshConfigArgs } from './job.js';
import { forgetApiKey } from './keystore.js';
import { command, readState, showVerbatim } from './runner.js';

function post(plan: Plan): string[] {
  const problems: string[] = [];
  const attempt = (part: () => void) => {
    try {
      part();
    } catch (err) {
      problems.push(err instanceof CscsSaError ? err.line : err instanceof Error ? err.message : String(err));
    }
  };
  const accountArgs = plan.account === 'sa' ? [] : ['--account', plan.account];
  const sshConfig = sshConfigPath(plan.sshConfigFlag || undefined);
  // setup --remove says that the key pair stays: not so when main created it, as below shows.
  const keyCreated = plan.created.includes(plan.key);
  const show = (r: { stdout: string; stderr: string }) =>
    showVerbatim((r.stdout + r.stderr).split('\n').filter((line) => !(keyCreated && /^the key pair .* stays/.test(line))).join('\n'));
  attempt(() => {
    if (!lstatSync(controlDir(sshConfig), { throwIfNoEntry: false })) return;
    const r = cscsSa(plan, ['close', ...sshConfigArgs(plan)]);
    show(r);
    if (r.code !== 0) throw failure('close failed', r);
  });
  // An account file that was there before main belongs to whoever set it up on this runner.
  if (plan.created.includes(plan.conf)) {
    attempt(() => {
      const r = cscsSa(plan, ['setup', '--remove', ...accountArgs, ...sshConfigArgs(plan)]);
      show(r);
      if (r.code !== 0) throw failure('setup --remove failed', r);
    });
  }
  // Deepest first: files, then the folders that held them.
  for (const path of [...plan.created].reverse()) {
    attempt(() => {
      const stats = lstatSync(path, { throwIfNoEntry: false });
      if (!stats) return;
      // The ssh config main created holds nothing but what setup --remove left (blank lines, if
      // anything); a folder only what main put there, unless a step added files of its own.
      if (path === sshConfig && readFileSync(path, 'utf8').trim() !== '') return;
      if (stats.isDirectory()) {
        try {
          rmdirSync(path);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOTEMPTY') return void process.stdout.write(`kept ${path}: a later step put files there\n`);
          throw err;
        }
      } else {
        rmSync(path);
      }
      process.stdout.write(`removed ${path}\n`);
    });
  }
  attempt(() => {
    for (const path of forgetApiKey(plan.store, plan.account)) process.stdout.write(`removed ${path}\n`);
  });
  return problems;
}

const text = readState(PLAN_STATE);
// No plan: main stopped before it changed anything.
if (text) {
  const plan = JSON.parse(text) as Plan;
  command('group', `cscs-sa: cleaning up account ${plan.account}`);
  const problems = post(plan);
  command('endgroup');
  for (const problem of problems) command('error', problem, { title: 'cscs-sa cleanup' });
  if (problems.length > 0) process.exitCode = 1;
}
