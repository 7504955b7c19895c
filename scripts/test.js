// Runs the uvu suite and ends with the plain line `N passed, N failed, N skipped`, which uvu does
// not print itself (its summary is "Total / Passed / Skipped") and which CI records for every run.
// The suite's own output passes through unchanged; the exit code is uvu's, or 1 when it died
// before its summary.
import { spawn } from 'node:child_process';

const child = spawn(process.execPath, ['--import', 'tsx', 'node_modules/uvu/bin.js', 'test', '(unit|integration)/.*\\.test\\.ts$'], { stdio: ['ignore', 'pipe', 'inherit'] });
let text = '';
child.stdout.on('data', (chunk) => {
  process.stdout.write(chunk);
  text += chunk.toString('utf8');
});
child.on('close', (code, signal) => {
  const plain = text.replace(/\x1b\[[0-9;]*m/g, '');
  const field = (name) => Number(new RegExp(`^\\s*${name}:\\s+(\\d+)`, 'm').exec(plain)?.[1]);
  let [total, passed, skipped] = [field('Total'), field('Passed'), field('Skipped')];
  let failed = total - passed;
  if (Number.isNaN(total)) {
    // No summary: a test file crashed the runner. Count what the suites reported, plus the crash.
    const suites = [...plain.matchAll(/\((\d+) \/ (\d+)\)/g)].map((m) => [Number(m[1]), Number(m[2])]);
    passed = suites.reduce((sum, [done]) => sum + done, 0);
    failed = suites.reduce((sum, [done, max]) => sum + max - done, 0) + 1;
    skipped = 0;
  }
  process.stdout.write(`\n${passed} passed, ${failed} failed, ${skipped} skipped\n`);
  process.exit(code === 0 && failed === 0 ? 0 : code || 1);
});
