/**
 * The Match line's command: a shell check that answers "the certificate is fresh" without Node,
 * and `cscs-sa match` whenever it cannot. ssh runs `$SHELL -c CMD` for every invocation (`ssh -G`,
 * each ProxyJump hop and each mux client included), so with a fresh certificate this is all that
 * runs: one `sh` and one `date`, instead of a Node start.
 *
 * What it trusts: the fresh window that the refresh writes into the certificate line's comment
 * (src/core/store.ts formatComment, from the same freshWindow that judge() decides by), in this
 * machine's clock, so no clock offset is needed here. It says fresh only when all of these hold,
 * and falls through to match otherwise:
 * - CSCS_SA_PROBE is unset: doctor's probe must see match run;
 * - the certificate line's comment carries `cscs-sa fresh=FROM..UNTIL..KEY` (a certificate put
 *   there by any other hand has no such word), KEY is the key of the `.pub` file now (a key pair
 *   replaced since is judged by match), and `date +%s` is within [FROM, UNTIL).
 * The window is written with the refresh margin of the refresh that wrote it; each account's line
 * names its own key pair, so another account's certificate is never read.
 *
 * Written for every shell ssh may run it with (bash, dash, zsh, fish): the check runs in `sh -c
 * '...'`, and the words around it mean the same in all four (single quotes without `'` or `\`
 * inside, `2>/dev/null`, `||`). Inside, no double quote (ssh's own lexer ends the Match word
 * there): `IFS=` and `set -f` stop splitting and globbing of the unquoted paths instead. ssh
 * expands `%` tokens in the whole line first, so every `%` of the script is written `%%`; the only
 * token is `%n`, which every OpenSSH since 7.4 expands in Match exec.
 */
import { FRESH_SEPARATOR, FRESH_WORD, keyPaths } from '../core/store.js';
import { shellWord, tokenLiteral } from './lex.js';

/**
 * POSIX sh, paths in $1 (certificate) and $2 (public key). `read` stops at the first newline,
 * which the refresh always writes; a test on an empty or malformed word fails (its complaint goes
 * to /dev/null with the rest), so anything odd means "not fresh".
 */
const SEP = FRESH_SEPARATOR;
const SCRIPT = [
  'set -f',
  'IFS=',
  [
    '[ -z ${CSCS_SA_PROBE:+x} ]',
    'read -r l < $1',
    'read -r k < $2',
    // The `.pub` line is `TYPE BASE64 [COMMENT]`: its second word.
    'k=${k#* }',
    'k=${k%% *}',
    `w=\${l#* cscs-sa ${FRESH_WORD}}`,
    'w=${w%% *}',
    `[ \${w#*${SEP}*${SEP}} = $k ]`,
    `w=\${w%${SEP}*}`,
    'n=$(date +%s)',
    `[ $n -ge \${w%${SEP}*} ]`,
    `[ $n -lt \${w#*${SEP}} ]`,
  ].join(' && '),
].join('; ');

/** The Match exec command for KEY's certificate: the shell check, else MATCH (already written for ssh). */
export function freshCheck(key: string, match: string): string {
  const paths = keyPaths(key);
  const args = [paths.certificate, paths.publicKey].map((path) => shellWord('the key', path));
  return `${tokenLiteral(`sh -c '${SCRIPT}' cscs-sa ${args.join(' ')}`)} 2>/dev/null || ${match}`;
}

/** The shell check alone, as ssh hands it to the shell (tokens expanded): exit 0 for fresh. For doctor. */
export function freshCheckAsShellRuns(key: string): string {
  return freshCheck(key, 'false').replaceAll('%%', '%');
}
