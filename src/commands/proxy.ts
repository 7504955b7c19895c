import { flagSeconds, loadSettings } from '../core/config.js';
import { UsageError } from '../base/errors.js';
import { PROXY_OPTIONS } from '../core/fastpath.js';
import { relay } from '../ssh/relay.js';
import { parseCommandArgs } from './args.js';

export const usage = `Usage: cscs-sa proxy [--agent [--account NAME]] [--log FILE] [--connect-timeout S] HOST PORT

Connects to HOST:PORT (each address it resolves to in turn) and relays stdin and stdout, for
ssh_config:

    ProxyCommand cscs-sa proxy %h %p

Writes nothing but relayed bytes to stdout. Exits as soon as the server side closes; when ssh
closes its side, half-closes the connection and keeps relaying what the server still sends.

Options:
      --agent               first load the fresh certificate into ssh-agent, refreshing it if
                            needed (also "agent": true in the config): race-free where ssh read
                            the certificate file before it was refreshed
      --account NAME        whose certificate --agent loads (default sa)
      --log FILE            also append diagnostics to FILE (stderr is /dev/null under ControlPersist);
                            a symlink or another user's file is refused, and the relay goes on
      --connect-timeout S   seconds per address (default 5, or "connectTimeout" in the config)
  -h, --help                this text`;

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs('proxy', args, PROXY_OPTIONS, ['HOST', 'PORT']);
  if (values.help) return (process.stdout.write(`${usage}\n`), 0);
  const [host, portText] = positionals;
  if (!host || !portText) throw new UsageError('proxy takes HOST and PORT (ProxyCommand cscs-sa proxy %h %p)');
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port < 1 || port > 65535) throw new UsageError(`proxy: "${portText}" is not a TCP port`);
  const settings = await loadSettings({ account: values.account });
  if (values.agent || settings.agent) {
    const { loadIntoAgent } = await import('../refresh/agent.js');
    await loadIntoAgent(settings);
  }
  return relay(host, port, flagSeconds(values['connect-timeout'], 'connectTimeout', '--connect-timeout') ?? settings.connectTimeout, values.log);
}
