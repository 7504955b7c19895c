/**
 * The GitHub Actions runner's side of a JavaScript action, as the runner documents it (no
 * @actions/core: these few lines are the whole protocol): inputs arrive as INPUT_<NAME> variables,
 * workflow commands are lines on stdout, and the environment, PATH, outputs and state for later
 * steps are appended to the files GITHUB_ENV, GITHUB_PATH, GITHUB_OUTPUT and GITHUB_STATE name,
 * which the runner reads when the step ends (also when it was cancelled).
 */
import { appendFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { ConfigError } from '../base/errors.js';

/**
 * An input's value: INPUT_ and the name in upper case, spaces as underscores, dashes kept
 * (INPUT_API-KEY); the runner sets every declared input, to '' or its default when not given.
 * The only place the action reads an input (test/unit/action.test.ts checks action.yml against
 * the names passed here).
 */
export function input(name: string, env: NodeJS.ProcessEnv = process.env): string {
  return (env[`INPUT_${name.replace(/ /g, '_').toUpperCase()}`] ?? '').trim();
}

/** Whether an input's variable: they hold the API key, so no child process gets them. */
export function isInputVariable(name: string): boolean {
  return name.startsWith('INPUT_');
}

/** A boolean input as YAML 1.2's core schema spells one, which is what GitHub accepts. */
export function booleanInput(name: string, env: NodeJS.ProcessEnv = process.env): boolean {
  const value = input(name, env);
  if (['true', 'True', 'TRUE'].includes(value)) return true;
  if (['false', 'False', 'FALSE', ''].includes(value)) return false;
  throw new ConfigError(`input ${name} is "${value}", not true or false`, { fix: `set ${name}: true or ${name}: false` });
}

/** A workflow command's data, escaped as the runner unescapes it. */
function escapeData(text: string): string {
  return text.replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
}

function escapeProperty(text: string): string {
  return escapeData(text).replace(/:/g, '%3A').replace(/,/g, '%2C');
}

/** Emits a workflow command (::name props::data) on stdout. */
export function command(name: string, data = '', properties: Record<string, string> = {}): void {
  const props = Object.entries(properties)
    .map(([k, v]) => `${k}=${escapeProperty(v)}`)
    .join(',');
  process.stdout.write(`::${name}${props ? ` ${props}` : ''}::${escapeData(data)}\n`);
}

/**
 * Shows text that is not ours to trust (cscs-sa's output, which may quote an input or a
 * gateway's answer) in the log between ::stop-commands:: and its token, so that no line of it
 * is carried out as a workflow command (::add-mask::, ::error::...).
 */
export function showVerbatim(text: string): void {
  if (!text) return;
  const token = `cscs-sa-${randomBytes(12).toString('hex')}`;
  process.stdout.write(`::stop-commands::${token}\n${text}${text.endsWith('\n') ? '' : '\n'}::${token}::\n`);
}

/** From now on the runner shows `value` as *** in the log, wherever it appears. */
export function mask(value: string): void {
  command('add-mask', value);
}

/** Appends name=value to the runner file that `variable` names, in the multi-line form. */
function appendKeyValue(variable: string, name: string, value: string): void {
  const file = process.env[variable];
  if (!file) throw new ConfigError(`${variable} is not set: this runs only as a step of a GitHub Actions job`);
  const delimiter = `cscs-sa_${randomBytes(12).toString('hex')}`;
  appendFileSync(file, `${name}<<${delimiter}\n${value}\n${delimiter}\n`);
}

/** An environment variable for the later steps of the job. */
export const exportVariable = (name: string, value: string): void => appendKeyValue('GITHUB_ENV', name, value);
/** A step output. */
export const setOutput = (name: string, value: string): void => appendKeyValue('GITHUB_OUTPUT', name, value);
/** State for this action's post step, which reads it as STATE_<name>. */
export const saveState = (name: string, value: string): void => appendKeyValue('GITHUB_STATE', name, value);
export const readState = (name: string): string => process.env[`STATE_${name}`] ?? '';

/** A folder put in front of PATH for the later steps of the job. */
export function addPath(folder: string): void {
  const file = process.env.GITHUB_PATH;
  if (!file) throw new ConfigError('GITHUB_PATH is not set: this runs only as a step of a GitHub Actions job');
  appendFileSync(file, `${folder}\n`);
}
