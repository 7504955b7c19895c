// A private network and mount namespace for the tests and the demo (`unshare`, as root): its own
// loopback, where 127.0.0.2 and 127.0.0.3 port 22 are free for the real CSCS host names; its own
// copy of /etc, where test/helpers/cscs-names.ts adds those names to /etc/hosts and
// test/helpers/users.ts adds a second local user, and host names resolve from files only; tmpfs
// on /home, /dev/shm and /run (sshd's privilege-separation folder /run/sshd). All of it goes
// with the namespace: the machine is never edited, and two runs never meet. Inside,
// CSCS_SA_TEST_NAMESPACE=1 says so.
import { spawnSync } from 'node:child_process';

export const NAMESPACE_VARIABLE = 'CSCS_SA_TEST_NAMESPACE';

const SETUP = [
  'set -e',
  'ip link set lo up',
  'mount -t tmpfs -o mode=755 cscs-sa-test /run',
  'mkdir -m 755 /run/sshd /run/cscs-sa-etc',
  'cp -a /etc /run/cscs-sa-etc/',
  'mount --bind /run/cscs-sa-etc/etc /etc',
  // Names from /etc/hosts only: an unknown name fails at once and always the same way ("no such
  // host"), instead of waiting for a DNS server the namespace cannot reach.
  "sed -i 's/^hosts:.*/hosts: files/' /etc/nsswitch.conf",
  'mount -t tmpfs -o mode=755 cscs-sa-test /home',
  // faketime keeps a semaphore and a shared memory segment in /dev/shm per process, named by pid,
  // and leaves them when it is killed: left on the machine, they made a later faketime with the
  // same pid fail ("sem_open: File exists").
  'mount -t tmpfs -o mode=1777 cscs-sa-test /dev/shm',
  // The test sshd log in as this user, and bash run by sshd reads ~/.bashrc: a machine's own
  // start-up (pyenv's rehash lock, here) must not print into what the tests compare.
  'h=$(getent passwd "$(id -u)" | cut -d: -f6); if [ -f "$h/.bashrc" ]; then mount --bind /dev/null "$h/.bashrc"; fi',
  'exec "$@"',
].join('\n');

/** `command` run inside a new namespace: the program and arguments to start instead. */
export function inNamespace(command) {
  return ['unshare', ['--net', '--mount', '--propagation', 'private', '--fork', 'sh', '-c', SETUP, 'sh', ...command]];
}

/** Why no namespace can be made here, or undefined when one can (tried once, with `true`). */
export function namespaceUnavailable() {
  if (process.getuid?.() !== 0) return 'not root';
  if (process.env.CSCS_SA_TEST_NO_NAMESPACE) return 'CSCS_SA_TEST_NO_NAMESPACE is set';
  const [cmd, args] = inNamespace(['true']);
  const r = spawnSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'] });
  if (r.error) return `${cmd}: ${r.error.message} (util-linux and iproute2 bring unshare and ip)`;
  return r.status === 0 ? undefined : `unshare --net --mount failed: ${r.stderr.trim().split('\n')[0]}`;
}

/**
 * For a script that wants the real host names (the demo, the benchmark): as root outside a
 * namespace, runs this same process again inside one and exits with its status; elsewhere returns
 * and the script goes on as it is.
 */
export function rerunInNamespace() {
  if (process.env[NAMESPACE_VARIABLE] || namespaceUnavailable()) return;
  const [cmd, args] = inNamespace([process.execPath, ...process.execArgv, ...process.argv.slice(1)]);
  const r = spawnSync(cmd, args, { stdio: 'inherit', env: { ...process.env, [NAMESPACE_VARIABLE]: '1' } });
  process.exit(r.status ?? 1);
}
