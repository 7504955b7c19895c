/**
 * Agent mode: the ProxyCommand loads the fresh certificate into ssh-agent before it relays the
 * first byte. ssh asks the agent for keys only after the key exchange, so this works even where
 * ssh read the certificate file before it was refreshed (OpenSSH up to 10.4 reads it right after
 * starting the ProxyCommand, without waiting for it). Each certificate is
 * added with a lifetime equal to its validity left, so the agent drops it when it expires; a
 * certificate without an end ("forever") or with more left than MAX_AGENT_SECONDS is added for
 * MAX_AGENT_SECONDS: the agent must drop it some day, and the next proxy adds it again.
 */
import type { Settings } from '../core/config.js';
import { runOpenSshTool } from '../base/child.js';
import { LocalFileError } from '../base/errors.js';
import { createLog } from '../base/log.js';
import { inspect, keyPaths } from '../core/store.js';

const log = createLog('agent');

/** The longest time a certificate stays in the agent (ssh-add -t needs a finite number). */
export const MAX_AGENT_SECONDS = 3600;

export async function loadIntoAgent(settings: Settings): Promise<void> {
  if (!process.env.SSH_AUTH_SOCK) {
    throw new LocalFileError('agent mode needs a running ssh-agent, and SSH_AUTH_SOCK is not set', { fix: 'start one with eval "$(ssh-agent)"' });
  }
  const paths = keyPaths(settings.key);
  let state = inspect(paths, settings.refreshMargin);
  if (state.status !== 'fresh') {
    const { refreshCertificate } = await import('./refresh.js');
    state = (await refreshCertificate(settings)).state;
  }
  const lifetime = Math.max(1, Math.floor(Math.min(state.secondsLeft ?? 0, MAX_AGENT_SECONDS)));
  // ssh-add takes KEY-cert.pub beside KEY along with the key.
  await runOpenSshTool('ssh-add', ['-q', '-t', String(lifetime), paths.key], `ssh-add could not load ${paths.key}`);
  log('loaded %s and its certificate into the agent for %d s', paths.key, lifetime);
}
