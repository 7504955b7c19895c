/**
 * A small benchmark harness: commands run interleaved (A B C A B C ...) so that the machine's
 * drift hits all of them alike, and only medians and ratios of one run are reported.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';

export interface Command {
  name: string;
  file: string;
  args: string[];
  env?: Record<string, string>;
  /** Runs before each timed run, untimed (e.g. put an expired certificate back). */
  before?: () => void | Promise<void>;
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

async function runOnce(command: Command, file = command.file, args = command.args): Promise<number> {
  await command.before?.();
  const started = process.hrtime.bigint();
  const r = await execa(file, args, { env: command.env, extendEnv: command.env === undefined, reject: false, stdin: 'ignore' });
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  if (r.exitCode !== 0) throw new Error(`${command.name} failed (${r.exitCode}): ${String(r.stderr).slice(0, 500)}`);
  return ms;
}

/** Median wall time in ms of each command over `rounds` interleaved rounds, after `warmup` rounds. */
export async function compareTimes(commands: Command[], rounds: number, warmup = 2): Promise<Map<string, number>> {
  const times = new Map<string, number[]>(commands.map((c) => [c.name, []]));
  for (let round = 0; round < warmup + rounds; round++) {
    for (const command of commands) {
      const ms = await runOnce(command);
      if (round >= warmup) times.get(command.name)!.push(ms);
    }
  }
  return new Map([...times].map(([name, values]) => [name, median(values)]));
}

/** Median peak resident memory in KiB of each command, read by GNU time from wait4's rusage. */
export async function comparePeakMemory(commands: Command[], rounds: number): Promise<Map<string, number>> {
  const dir = mkdtempSync(join(tmpdir(), 'cscs-sa-bench-'));
  const out = join(dir, 'time');
  const peaks = new Map<string, number[]>(commands.map((c) => [c.name, []]));
  try {
    for (let round = 0; round < rounds; round++) {
      for (const command of commands) {
        await runOnce(command, '/usr/bin/time', ['-f', '%M', '-o', out, command.file, ...command.args]);
        peaks.get(command.name)!.push(Number(readFileSync(out, 'utf8').trim()));
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return new Map([...peaks].map(([name, values]) => [name, median(values)]));
}
