/**
 * What ssh does for a host, asked of ssh itself: `ssh -G` with doctor's probe (src/doctor/probe.ts) says
 * which options ssh will use and which `cscs-sa match` it runs, and the same for every jump host,
 * under the arguments ssh gives its ProxyJump child (`-l USER -p PORT -J REST`, and `-F` when given).
 */
import { childEnv, runTool } from '../base/child.js';
import { PROBE_ENV, type Probe } from './probe.js';

export interface Hop {
  /** The name ssh is given for this hop (what `%n` is). */
  name: string;
  /** ssh -G's answer: option (lower case, as ssh prints it) → each line's value. */
  options: Map<string, string[]>;
  /** The arguments of every `cscs-sa match` ssh ran for this hop. */
  matches: string[][];
  /** What ssh printed that is not a debug line (a shell's "not found", a helper's message). */
  messages: string[];
  /** ssh's debug lines about Match lines, to explain one that did not fire. */
  debug: string[];
  /** ssh -G itself failed: its last line. */
  failed?: string;
  /** The jump host ssh connects through first. */
  jump?: Hop;
}

/** Hops deeper than this are a loop in the config, not a route. */
const MAX_HOPS = 8;

export function option(hop: Hop, name: string): string | undefined {
  return hop.options.get(name)?.[0];
}

/** One ProxyJump entry: `[ssh://][user@]host[:port]`, the host possibly in brackets. */
function parseJump(spec: string): { user?: string; host: string; port?: string } {
  const m = /^(?:ssh:\/\/)?(?:(.*)@)?(\[[^\]]*\]|[^:@]*)(?::(\d+))?$/.exec(spec.trim());
  if (!m) return { host: spec };
  return { user: m[1], host: m[2]!.replace(/^\[|\]$/g, ''), port: m[3] };
}

async function resolveHop(probe: Probe, config: string[], name: string, extra: string[], depth: number): Promise<Hop> {
  const file = probe.file();
  // -vvv only adds lines on stderr about how ssh read its config; the verdict is the probe's.
  const r = await runTool('ssh', [...config, ...extra, '-vvv', '-G', name], { ...childEnv(), [PROBE_ENV]: file });
  // ssh ends its log lines with CR LF.
  const lines = r.stderr.split(/\r?\n/).filter(Boolean);
  const options = new Map<string, string[]>();
  for (const line of r.stdout.split('\n')) {
    const space = line.indexOf(' ');
    if (space <= 0) continue;
    const key = line.slice(0, space);
    options.set(key, [...(options.get(key) ?? []), line.slice(space + 1)]);
  }
  const hop: Hop = {
    name,
    options,
    matches: probe.read(file),
    messages: lines.filter((l) => !/^(debug\d|OpenSSH_|Pseudo-terminal)/.test(l)),
    debug: lines.filter((l) => /^debug\d: (checking match|.* line \d+: (not )?matched|.* line \d+: skipped|command returned|Executing command)/.test(l)),
  };
  if (r.missing) hop.failed = 'ssh not found';
  // A bad config line comes before ssh's "terminating" line: the first names what to fix.
  else if (r.code !== 0) hop.failed = hop.messages.find((l) => / line \d+: /.test(l)) ?? hop.messages.at(-1) ?? `exit code ${r.code}`;
  const jumps = option(hop, 'proxyjump');
  if (!hop.failed && jumps && jumps !== 'none' && depth < MAX_HOPS) {
    // ssh jumps to the last entry first, through the ones before it (ssh.c builds this command).
    const list = jumps.split(',');
    const next = parseJump(list.pop()!);
    const args = [...(next.user ? ['-l', next.user] : []), ...(next.port ? ['-p', next.port] : []), ...(list.length ? ['-J', list.join(',')] : [])];
    hop.jump = await resolveHop(probe, config, next.host, args, depth + 1);
  }
  return hop;
}

/** The route ssh takes to `host` with `config` (`-F FILE` or nothing), the target first. */
export async function resolveRoute(probe: Probe, config: string[], host: string): Promise<Hop> {
  return resolveHop(probe, config, host, [], 0);
}
