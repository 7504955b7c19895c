/**
 * A GitHub Actions job as the runner runs it, for the action in this repository: each action
 * step is `node dist-action/main.cjs` (or post.cjs) with every input of action.yml as INPUT_<NAME>
 * (default filled in), fresh GITHUB_ENV, GITHUB_PATH, GITHUB_OUTPUT and GITHUB_STATE files that
 * are read back when the step ends, and STATE_<name> for the post step; each `run:` step is a
 * fresh bash with the job's environment plus what earlier steps added to GITHUB_ENV and
 * GITHUB_PATH, and nothing else. The log is what the steps printed, with workflow commands
 * applied as the runner shows them: ::add-mask:: lines hidden and masked values as ***.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defaultLoaders } from 'cosmiconfig';
import { execa, type ResultPromise } from 'execa';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const ACTION_YML = join(ROOT, 'action.yml');

interface ActionYml {
  inputs: Record<string, { required?: boolean; default?: string }>;
  outputs: Record<string, unknown>;
  runs: { using: string; main: string; post: string; 'post-if': string };
}

export function actionYml(): ActionYml {
  return defaultLoaders['.yaml'](ACTION_YML, readFileSync(ACTION_YML, 'utf8')) as ActionYml;
}

/**
 * The workflow commands the runner would carry out from a step's output, in order, as `name data`:
 * a line `::NAME [PROPERTIES]::DATA`, except between `::stop-commands::TOKEN` and `::TOKEN::`.
 */
export function workflowCommands(output: string): string[] {
  const done: string[] = [];
  let stopped: string | undefined;
  for (const line of output.split('\n')) {
    if (stopped !== undefined) {
      if (line === `::${stopped}::`) stopped = undefined;
      continue;
    }
    const command = /^::([A-Za-z-]+)(?: [^:]*)?::(.*)$/.exec(line);
    if (!command) continue;
    if (command[1] === 'stop-commands') stopped = command[2];
    else done.push(`${command[1]} ${command[2]}`);
  }
  return done;
}

/** A runner file command file: `name=value` lines or `name<<DELIMITER` ... `DELIMITER` blocks. */
export function parseFileCommands(text: string): Record<string, string> {
  const values: Record<string, string> = {};
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line === '') continue;
    const heredoc = /^([^=<]+)<<(.+)$/.exec(line);
    if (heredoc) {
      const end = lines.indexOf(heredoc[2]!, i + 1);
      if (end === -1) throw new Error(`no closing ${heredoc[2]} for ${heredoc[1]}`);
      values[heredoc[1]!] = lines.slice(i + 1, end).join('\n');
      i = end;
    } else {
      const at = line.indexOf('=');
      values[line.slice(0, at)] = line.slice(at + 1);
    }
  }
  return values;
}

export interface StepResult {
  exitCode: number | undefined;
  /** stdout as the process wrote it. */
  raw: string;
  stderr: string;
  outputs: Record<string, string>;
}

export class GitHubRunner {
  readonly temp: string;
  /** What GITHUB_ENV and GITHUB_PATH added for the next steps. */
  readonly env: Record<string, string> = {};
  readonly path: string[] = [];
  readonly state: Record<string, string> = {};
  /** Every step's stdout and stderr, in order, as written. */
  raw = '';
  private steps = 0;

  /** `machine`: the runner machine's environment (HOME, PATH, ...), which every step starts from. */
  constructor(
    readonly workDir: string,
    readonly machine: Record<string, string>,
  ) {
    this.temp = join(workDir, '_temp');
    mkdirSync(this.temp, { recursive: true, mode: 0o700 });
  }

  /** The environment of a step: the machine's, then GITHUB_ENV's, PATH with GITHUB_PATH's folders first. */
  stepEnv(): Record<string, string> {
    const env: Record<string, string> = { ...this.machine, ...this.env, RUNNER_TEMP: this.temp };
    env.PATH = [...[...this.path].reverse(), env.PATH].join(':');
    return env;
  }

  /** Starts the action's main or post step; `done` reads the file commands back. */
  startAction(entry: 'main' | 'post', inputs: Record<string, string>): { process: ResultPromise; done: () => Promise<StepResult> } {
    const yml = actionYml();
    const unknown = Object.keys(inputs).filter((name) => !Object.hasOwn(yml.inputs, name));
    if (unknown.length > 0) throw new Error(`action.yml declares no input ${unknown.join(', ')}`);
    const step = join(this.temp, `_runner_file_commands_${++this.steps}`);
    mkdirSync(step);
    const files = { GITHUB_ENV: join(step, 'env'), GITHUB_PATH: join(step, 'path'), GITHUB_OUTPUT: join(step, 'output'), GITHUB_STATE: join(step, 'state') };
    for (const file of Object.values(files)) writeFileSync(file, '');
    const env: Record<string, string> = { ...this.stepEnv(), ...files };
    for (const [name, spec] of Object.entries(yml.inputs)) env[`INPUT_${name.toUpperCase()}`] = inputs[name] ?? spec.default ?? '';
    for (const [name, value] of Object.entries(this.state)) env[`STATE_${name}`] = value;
    const script = join(ROOT, entry === 'main' ? yml.runs.main : yml.runs.post);
    const child = execa(process.execPath, [script], { env, extendEnv: false, reject: false, stdin: 'ignore', detached: true });
    const done = async (): Promise<StepResult> => {
      const r = await child;
      this.raw += `${r.stdout}\n${r.stderr}\n`;
      Object.assign(this.env, parseFileCommands(readFileSync(files.GITHUB_ENV, 'utf8')));
      this.path.push(...readFileSync(files.GITHUB_PATH, 'utf8').split('\n').filter(Boolean));
      Object.assign(this.state, parseFileCommands(readFileSync(files.GITHUB_STATE, 'utf8')));
      return { exitCode: r.exitCode, raw: String(r.stdout), stderr: String(r.stderr), outputs: parseFileCommands(readFileSync(files.GITHUB_OUTPUT, 'utf8')) };
    };
    return { process: child, done };
  }

  async action(entry: 'main' | 'post', inputs: Record<string, string> = {}): Promise<StepResult> {
    return this.startAction(entry, inputs).done();
  }

  /** A `run:` step: bash -e with the step environment. */
  async run(script: string): Promise<{ exitCode: number | undefined; stdout: string; stderr: string }> {
    const r = await execa('bash', ['--noprofile', '--norc', '-eo', 'pipefail', '-c', script], { env: this.stepEnv(), extendEnv: false, reject: false, stdin: 'ignore', cwd: this.workDir });
    this.raw += `${r.stdout}\n${r.stderr}\n`;
    return { exitCode: r.exitCode, stdout: String(r.stdout), stderr: String(r.stderr) };
  }

  /** The workflow commands the runner would carry out from the steps' output (workflowCommands). */
  get commands(): string[] {
    return workflowCommands(this.raw);
  }

  /** The log as the runner shows it: ::add-mask:: lines consumed, masked values as ***. */
  get log(): string {
    const masks: string[] = [];
    const shown: string[] = [];
    for (const line of this.raw.split('\n')) {
      const mask = /^::add-mask::(.*)$/.exec(line);
      if (mask) {
        masks.push(mask[1]!.replace(/%0A/g, '\n').replace(/%0D/g, '\r').replace(/%25/g, '%'));
        continue;
      }
      shown.push(masks.reduce((text, secret) => text.split(secret).join('***'), line));
    }
    return shown.join('\n');
  }
}
