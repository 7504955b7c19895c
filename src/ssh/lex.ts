/**
 * Values for ssh_config, written so that ssh's lexer reads back exactly what was meant, or
 * refused. OpenSSH splits a config line with argv_split() (misc.c; strdelim() before 8.7):
 * whitespace ends a word unless inside "..." or '...'; a backslash escapes a quote, a backslash
 * or a space, and is kept before anything else; a word that starts with `#` ends the line.
 * Then some options expand `%x` tokens (`%%` is a literal %) and `${VAR}` (no escape exists),
 * and Match exec / ProxyCommand hand their command to `$SHELL -c`.
 *
 * So: control characters can never be carried; `"`, `'` and `\` mean different things to the
 * old and the new lexer and to the shell behind them, and are refused rather than escaped;
 * spaces are carried by double quotes (ssh) or single quotes (the shell).
 */
import { UsageError } from '../base/errors.js';

/** What ssh does to a value after splitting the line. */
export interface Expansion {
  /** `%x` tokens (IdentityFile, CertificateFile, UserKnownHostsFile, ControlPath, Match exec, ProxyCommand). */
  tokens?: boolean;
  /** `${VAR}` (the file options; not the commands, whose `$` belongs to the shell). */
  env?: boolean;
  /** Glob characters (Include). */
  glob?: boolean;
}

/** Why VALUE cannot be written into ssh_config, or undefined when it can. */
export function unsafeReason(value: string, expansion: Expansion = {}): string | undefined {
  if (value === '') return 'it is empty';
  if (/[\u0000-\u001f\u007f]/.test(value)) return 'it contains a newline or another control character';
  if (/["'\\]/.test(value)) return 'it contains a quote or a backslash, which ssh_config cannot carry the same way in every OpenSSH version';
  if (/(^|\s)#/.test(value)) return 'it has a word starting with #, which ssh reads as a comment';
  if (expansion.env && value.includes('${')) return 'it contains ${, which ssh expands as an environment variable';
  if (expansion.glob && /[*?[\]]/.test(value)) return 'it contains *, ? or [, which Include expands as a pattern';
  return undefined;
}

function check(what: string, value: string, expansion: Expansion): void {
  const reason = unsafeReason(value, expansion);
  if (reason) throw new UsageError(`setup: cannot write ${what} ${JSON.stringify(value)} into the ssh config: ${reason}`, { fix: 'use a path without it (nothing was changed)' });
}

/** VALUE for a place where ssh expands `%x` tokens: every `%` literal (`%%`). */
export const tokenLiteral = (value: string) => value.replace(/%/g, '%%');

const escapeTokens = (value: string, expansion: Expansion) => (expansion.tokens ? tokenLiteral(value) : value);

/**
 * One ssh_config word: a path or name, with `%` escaped where ssh expands tokens and double quotes
 * around spaces. `tokens` follow the value as ssh's own (`/%C`), inside the same quotes: before
 * 8.7, ssh's lexer ends a quoted word at its closing quote.
 */
export function configWord(what: string, value: string, expansion: Expansion = {}, tokens = ''): string {
  check(what, value, expansion);
  const word = escapeTokens(value, expansion) + tokens;
  return /\s/.test(word) ? `"${word}"` : word;
}

/** One word of a command that ssh hands to `$SHELL -c`: single quotes where the shell would split or expand it. */
export function shellWord(what: string, value: string): string {
  check(what, value, {});
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(value) ? value : `'${value}'`;
}

/**
 * A command for Match exec or ProxyCommand: `words` are shell-quoted (literal), `tokens` are
 * ssh's own (`%n`, `%h %p`) and stay as they are; `%` in the words is escaped.
 */
export function sshCommand(words: { what: string; value: string }[], tokens: string): string {
  return [...words.map((w) => tokenLiteral(shellWord(w.what, w.value))), tokens].join(' ');
}
