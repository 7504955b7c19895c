/**
 * Entry point: dispatches to one command module, each loaded only when named, and turns errors
 * into one line on stderr and a documented exit code.
 */
import { ExitCode, UsageError } from './base/errors.js';
import { exitOnSignals, runToExit } from './base/report.js';
import { didYouMean } from './base/suggest.js';

interface Command {
  usage: string;
  run(args: string[]): Promise<number>;
}

const COMMANDS: Record<string, { summary: string; load: () => Promise<Command> }> = {
  match: { summary: 'refresh the certificate if needed (for ssh_config Match exec)', load: () => import('./commands/match.js') },
  proxy: { summary: 'relay a connection (for ssh_config ProxyCommand)', load: () => import('./commands/proxy.js') },
  sign: { summary: 'refresh the certificate now and print it', load: () => import('./commands/sign.js') },
  status: { summary: 'show the key pair and certificate (no network)', load: () => import('./commands/status.js') },
  setup: { summary: 'create the key pair, write the cscs-sa block and Include it in ~/.ssh/config', load: () => import('./commands/setup.js') },
  doctor: { summary: 'check the whole chain and say what to fix', load: () => import('./commands/doctor.js') },
  'known-hosts': { summary: 'fetch the CSCS host keys once, to pin them (setup --known-hosts)', load: () => import('./commands/knownhosts.js') },
  close: { summary: 'end the open connections of burst mode (setup --multiplex)', load: () => import('./commands/close.js') },
};

export const usage = `Usage: cscs-sa COMMAND [options]

Makes plain ssh, scp, sftp, rsync and git work with CSCS service accounts, whose SSH
certificates are valid for one minute. In ~/.ssh/config:

    Host sa-ela
        ProxyCommand cscs-sa proxy %h %p
    Host sa-*
        IdentityFile ~/.ssh/cscs-key-sa
    Match originalhost sa-* exec "cscs-sa match %n"

Commands:
${Object.entries(COMMANDS)
  .map(([name, { summary }]) => `  ${name.padEnd(12)}${summary}`)
  .join('\n')}

The API key comes from CSCS_API_KEY, or apiKeyFile / apiKeyCommand in
$XDG_CONFIG_HOME/cscs-sa/config.json (else ~/.config/cscs-sa/config.json).
More service accounts: --account NAME (hosts NAME-*, key ~/.ssh/cscs-key-NAME, API key
CSCS_API_KEY_NAME in upper case, or accounts.NAME in the config file).
DEBUG=cscs-sa:* prints diagnostics (secrets redacted).

Exit status:
  0 ok                    4 API key missing or refused   7 key or certificate files
  1 unexpected failure    5 gateway unreachable or busy  8 proxy cannot connect
  2 usage                 6 gateway answer unusable
  3 configuration

Run cscs-sa COMMAND --help for a command's options; cscs-sa -v for the version.`;

async function main(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  if (name === '--version' || name === '-V' || name === '-v') {
    const { bundledUndiciVersion, version } = await import('./base/version.js');
    const undici = bundledUndiciVersion();
    process.stdout.write(`${version()}${undici ? ` (undici ${undici})` : ''}\n`);
    return 0;
  }
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`${usage}\n`);
    return name === undefined ? ExitCode.usage : 0;
  }
  const command = COMMANDS[name];
  if (!command) {
    const meant = didYouMean(name, [...Object.keys(COMMANDS), '--help', '--version']);
    if (meant) throw new UsageError(`unknown command "${name}"`, { fix: `did you mean ${meant}? (see cscs-sa --help)` });
    throw new UsageError(`unknown command "${name}" (commands: ${Object.keys(COMMANDS).join(', ')}; see cscs-sa --help)`);
  }
  return (await command.load()).run(args);
}

exitOnSignals();
runToExit(main(process.argv.slice(2)));
