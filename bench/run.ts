/**
 * npm run bench: every comparison of the performance issue, side by side in one run, on this
 * machine, against the gateway double and a loopback sshd. Prints a Markdown table of medians
 * and ratios (and writes it to bench/results/latest.md).
 *
 * BENCH_ROUNDS (default 3) sets the rounds of the 1 GiB transfers and of the bursts (goal 7); BENCH_SCALE (default 5) how
 * much faster than real time the 3-minute gateway-call run goes (1 = real 60 s certificates).
 */
import { execaSync, execa } from 'execa';
import { cpus, tmpdir, totalmem } from 'node:os';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { API_KEY, World } from '../test/helpers/world.ts';
import { ADDRESSES, addNames, hostFlags, unavailable } from '../test/helpers/cscs-names.ts';
import { recordNodeStarts } from '../test/helpers/node-starts.ts';
import { Sshd } from '../test/helpers/sshd.ts';
import type { Target } from '../src/ssh/sshconfig.ts';
import { compareTimes, comparePeakMemory, median, type Command } from './harness.ts';
import { startDelayRelay } from './wan.ts';
import { rerunInNamespace } from '../scripts/namespace.js';

// As root, in a private network and mount namespace: the real host names on its own loopback,
// and the machine's /etc/hosts untouched.
rerunInNamespace();

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
/** BENCH_GOALS=3,5 runs only those comparisons. */
const wanted = (goal: number) => !process.env.BENCH_GOALS || process.env.BENCH_GOALS.split(',').includes(String(goal));
const SCALE = Number(process.env.BENCH_SCALE ?? 5);

for (const tool of ['/usr/sbin/sshd', '/usr/bin/time', 'nc', 'rsync', 'curl', 'jq']) {
  if (execaSync('sh', ['-c', `command -v ${tool}`], { reject: false }).exitCode !== 0) {
    console.error(`bench: needs ${tool}: apt-get install -y openssh-server time netcat-openbsd rsync curl jq`);
    process.exit(1);
  }
}

const rows: string[][] = [];
const row = (...cells: (string | number)[]) => {
  rows.push(cells.map(String));
  console.log(cells.join(' | '));
};
const ms = (v: number) => `${v.toFixed(1)} ms`;
const ratio = (a: number, b: number) => `${(a / b).toFixed(2)} ×`;
const verdict = (ok: boolean) => (ok ? 'yes' : '**no**');

const world = await new World().start();
const work = mkdtempSync(join(tmpdir(), 'cscs-sa-bench-'));
try {
  world.freshHome();
  const env = world.env;
  // The baseline hosts have no Match exec: keep the certificate fresh for them, untimed.
  const refresh = async () => {
    const r = await execa('cscs-sa', ['match'], { env: world.env, extendEnv: false, reject: false });
    if (r.exitCode !== 0) throw new Error(`cscs-sa match: exit ${r.exitCode}: ${r.stderr}`);
  };
  await refresh();

  // An ssh_config with the same key and certificate and no helper, plus the nc and cscs-sa proxies.
  const plainConfig = join(work, 'plain_config');
  const proxyLog = join(work, 'proxy-usage');
  const common = `    HostName 127.0.0.1\n    Port ${world.ela.port}\n    User ${world.user}\n    IdentityFile ${world.home.key}\n    IdentitiesOnly yes\n    BatchMode yes\n    StrictHostKeyChecking no\n    UserKnownHostsFile /dev/null\n    LogLevel ERROR\n`;
  writeFileSync(
    plainConfig,
    `Host direct\n${common}\nHost nc\n    ProxyCommand nc %h %p\n${common}\nHost cscs\n    ProxyCommand cscs-sa proxy --log ${proxyLog} %h %p\n${common}`,
  );

  // The documented helper (goals 4 and 5) gets a key pair of its own and writes KEY-cert.pub
  // beside it, as the docs do.
  const helperKey = join(work, 'helper-key');
  execaSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', helperKey]);
  const helper = join(work, 'sa_ssh');
  writeFileSync(helper, documentedHelper(world.gateway.url, `${helperKey}.pub`, `${helperKey}-cert.pub`, plainConfig), { mode: 0o755 });
  writeFileSync(
    plainConfig,
    `${readFileSync(plainConfig, 'utf8')}\nHost helper\n    HostName 127.0.0.1\n    Port ${world.ela.port}\n    User ${world.user}\n    IdentityFile ${helperKey}\n    IdentitiesOnly yes\n    BatchMode yes\n    StrictHostKeyChecking no\n    UserKnownHostsFile /dev/null\n    LogLevel ERROR\n`,
  );

  // 1. The fresh-certificate path of match against bare node.
  if (wanted(1)) {
    console.log('\n# 1. match, fresh certificate');
    await refresh();
    const fast: Command[] = [
      { name: 'node -e 0', file: process.execPath, args: ['-e', '0'], env },
      { name: 'cscs-sa match', file: 'cscs-sa', args: ['match', 'sa-clariden'], env },
    ];
    const fastTimes = await compareTimes(fast, 40, 5);
    const fastMem = await comparePeakMemory(fast, 10);
    const [nodeT, matchT] = [fastTimes.get('node -e 0')!, fastTimes.get('cscs-sa match')!];
    const [nodeM, matchM] = [fastMem.get('node -e 0')!, fastMem.get('cscs-sa match')!];
    row('1', '`cscs-sa match`, fresh certificate: wall', `${ms(matchT)} vs \`node -e 0\` ${ms(nodeT)}`, ratio(matchT, nodeT), '≤ 1.3 ×', verdict(matchT / nodeT <= 1.3));
    row('1', '`cscs-sa match`, fresh certificate: peak RSS', `${(matchM / 1024).toFixed(1)} MiB vs ${(nodeM / 1024).toFixed(1)} MiB`, ratio(matchM, nodeM), '≤ 1.5 ×', verdict(matchM / nodeM <= 1.5));
  }

  // 6. The fresh match of a non-default account, with accounts in a JSON config file: the fast
  // path reads the file itself instead of giving up for the config loader.
  if (wanted(6)) {
    console.log('\n# 6. match --account, fresh certificate, accounts in the config file');
    world.freshHome({ env: { CSCS_API_KEY_PROJ: API_KEY } });
    const configDir = join(world.home.dir, '.config', 'cscs-sa');
    mkdirSync(configDir, { recursive: true });
    writeFileSync(join(configDir, 'config.json'), JSON.stringify({ refreshMargin: 20, accounts: { proj: { env: 'prod' }, other: {} } }));
    const account = ['match', '--account', 'proj', 'proj-clariden'];
    const first = await execa('cscs-sa', account, { env: world.env, extendEnv: false, reject: false });
    if (first.exitCode !== 0) throw new Error(`cscs-sa match --account proj: exit ${first.exitCode}: ${first.stderr}`);
    const times = await compareTimes(
      [
        { name: 'node -e 0', file: process.execPath, args: ['-e', '0'], env: world.env },
        { name: 'match --account', file: 'cscs-sa', args: account, env: world.env },
      ],
      40,
      5,
    );
    const [nodeT, matchT] = [times.get('node -e 0')!, times.get('match --account')!];
    row('6', '`cscs-sa match --account proj`, fresh certificate, accounts in config.json: wall', `${ms(matchT)} vs \`node -e 0\` ${ms(nodeT)}`, ratio(matchT, nodeT), '≤ 1.3 ×', verdict(matchT / nodeT <= 1.3));
    world.freshHome();
  }

  // 2. A whole ssh command through the full config against plain ssh.
  if (wanted(2)) {
    console.log('\n# 2. ssh true, full config');
    await refresh();
    const sshTimes = await compareTimes(
      [
        { name: 'plain', file: 'ssh', args: ['-F', plainConfig, 'direct', 'true'], env },
        { name: 'full', file: 'ssh', args: ['-F', world.sshConfig, 'sa-ela', 'true'], env },
        { name: 'floor', file: 'sh', args: ['-c', `node -e 0; node -e 0; ssh -F ${plainConfig} direct true`], env },
      ],
      20,
    );
    const [plainT, fullT, floorT] = ['plain', 'full', 'floor'].map((n) => sshTimes.get(n)!) as [number, number, number];
    row('2', '`ssh sa-ela true`, Match exec + ProxyCommand, fresh certificate', `${ms(fullT)} vs plain ssh ${ms(plainT)}`, ratio(fullT, plainT), '≤ 1.25 ×', verdict(fullT / plainT <= 1.25));
    row('2', '… the floor for any two Node.js helpers: plain ssh + 2 × `node -e 0`', ms(floorT), ratio(floorT, plainT), '(reference)', '');
  }

  // 3. Bulk transfers, 1 GiB each way, scp and rsync, three ways of connecting.
  if (wanted(3)) {
    console.log(`\n# 3. 1 GiB each way (${ROUNDS} rounds)`);
    const local = join(work, 'local.bin');
    const remote = join(work, 'remote.bin');
    const back = join(work, 'back.bin');
    const out = execaSync('sh', ['-c', `head -c 1073741824 /dev/urandom > ${local}`]);
    if (out.exitCode !== 0) throw new Error('could not write the 1 GiB file');
    writeFileSync(remote, ''); // replaced by each upload
    for (const tool of ['scp', 'rsync'] as const) {
      for (const direction of ['up', 'down'] as const) {
        const transfer = (host: string): Command => {
          const [from, to] = direction === 'up' ? [local, `${host}:${remote}`] : [`${host}:${local}`, back];
          const target = direction === 'up' ? remote : back;
          const args = tool === 'scp' ? ['-q', '-F', plainConfig, from, to] : ['-W', '-e', `ssh -F ${plainConfig}`, from, to];
          return {
            name: host,
            file: tool,
            args,
            env,
            before: async () => {
              rmSync(target, { force: true });
              await refresh();
            },
          };
        };
        rmSync(proxyLog, { force: true });
        await refresh();
        const t = await compareTimes([transfer('direct'), transfer('nc'), transfer('cscs')], ROUNDS, 0);
        const intact = execaSync('cmp', [local, direction === 'up' ? remote : back], { reject: false }).exitCode === 0;
        // The proxy logs its own CPU time and peak RSS at exit (GNU time cannot: ssh's SIGHUP ends it first).
        const usage = [...readFileSync(proxyLog, 'utf8').matchAll(/exit: (\d+) ms user CPU, (\d+) ms system CPU, peak RSS (\d+) KiB/g)].map((m) => m.slice(1).map(Number));
        const cpu = median(usage.map(([u, s]) => (u! + s!) / 1000));
        const rss = median(usage.map(([, , m]) => m!)) / 1024;
        const [direct, nc, cscs] = ['direct', 'nc', 'cscs'].map((n) => t.get(n)!) as [number, number, number];
        const mibs = (v: number) => `${(1024 / (v / 1000)).toFixed(0)} MiB/s`;
        row('3', `${tool} 1 GiB ${direction === 'up' ? 'upload' : 'download'}${intact ? '' : ' (**corrupt**)'}`, `cscs-sa ${mibs(cscs)}, nc ${mibs(nc)}, direct ${mibs(direct)}`, `${ratio(cscs, nc)} nc, ${ratio(cscs, direct)} direct`, '≤ 1.0 × nc (± 2 % noise)', verdict(cscs <= nc * 1.02));
        row('3', `… proxy CPU and peak RSS (${tool} ${direction})`, `${cpu.toFixed(2)} s CPU, ${rss.toFixed(1)} MiB`, '', '≤ 64 MiB', verdict(rss <= 64));
      }
  }
  rmSync(local, { force: true });
  rmSync(remote, { force: true });
  rmSync(back, { force: true });

  }

  // 4. Gateway calls over "3 minutes" of ssh commands, against the documented helper.
  if (wanted(4)) {
    const lifetime = 60 / SCALE;
    const margin = 20 / SCALE;
    const duration = 180 / SCALE;
    console.log(`\n# 4. gateway calls over ${duration} s (time scale 1/${SCALE})`);
    world.gateway.options.validity = `-5s:+${lifetime}s`;
    world.freshHome({ env: { CSCS_SA_REFRESH_MARGIN: String(margin) } });
    const started = Date.now();
    let commands = 0;
    while (Date.now() - started < duration * 1000) {
      const tick = Date.now();
      const pair: [string, string[]][] = [
        ['ssh', ['-F', world.sshConfig, 'sa-ela', 'true']],
        [helper, ['helper', 'true']],
      ];
      for (const [file, args] of pair) {
        const r = await execa(file, args, { env: world.env, extendEnv: false, reject: false });
        if (r.exitCode !== 0) throw new Error(`${file}: ${r.stderr}`);
      }
      commands++;
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, 1000 / (SCALE / 5) - (Date.now() - tick))));
  }
  const elapsed = (Date.now() - started) / 1000;
  const signs = world.gateway.requests.filter((r) => r.path.endsWith('/sign'));
  const ours = signs.filter((r) => String(r.headers['user-agent']).startsWith('cscs-sa/')).length;
  const theirs = signs.length - ours;
  const ideal = Math.ceil(elapsed / (lifetime - margin));
  row('4', `sign calls, ${commands} ssh commands over ${elapsed.toFixed(0)} s (= ${((elapsed * SCALE) / 60).toFixed(1)} min at real scale)`, `cscs-sa ${ours}, documented helper ${theirs}`, `ideal ${ideal}`, 'within 1 of ideal', verdict(Math.abs(ours - ideal) <= 1));
  world.gateway.options.validity = undefined;

  }

  // 5. The refresh path: match with an expired certificate against the documented two-curl flow.
  if (wanted(5)) {
    console.log('\n# 5. refresh path');
    world.freshHome();
    await refresh();
    const expired = `${await world.gateway.sign(readFileSync(world.home.pub, 'utf8'), { validity: '-10m:-5m' })}\n`;
    const refreshTimes = await compareTimes(
      [
        { name: 'curl', file: helper, args: ['--certificate-only'], env: world.env },
        { name: 'match', file: 'cscs-sa', args: ['match', 'sa-ela'], env: world.env, before: () => writeFileSync(world.home.cert, expired) },
      ],
      20,
    );
    const [curlT, refreshT] = [refreshTimes.get('curl')!, refreshTimes.get('match')!];
    row('5', '`cscs-sa match`, expired certificate (token + sign + checks + atomic write)', `${ms(refreshT)} vs two-curl flow ${ms(curlT)}`, ratio(refreshT, curlT), '≤ 1.1 ×', verdict(refreshT / curlT <= 1.1));
  }

  // 7. Burst mode: 20 commands with and without multiplexing and by the documented helper, on
  // loopback and through an emulated WAN (a relay delaying each way in front of the jump host).
  // 8. The hot path as a user meets it: the block setup writes, under the real host names when
  // this machine can have them (else led to the loopback sshd by setup --host), against plain ssh
  // through the same two hops with the same key and certificate; the extra time counted in
  // `node -e 0` starts of the same run, and the Node processes one command starts.
  if (wanted(8)) {
    console.log('\n# 8. ssh sa-clariden true: the block setup writes vs plain ssh, fresh certificate');
    world.freshHome();
    const env = world.env;
    await refresh();
    const why = await unavailable();
    let restoreHosts: (() => void) | undefined;
    const real: Sshd[] = [];
    try {
      let targets: Record<string, Target>;
      if (why) {
        console.log(`(real host names unavailable: ${why}; setup --host leads them to 127.0.0.1)`);
        targets = { ela: { hostName: '127.0.0.1', port: world.ela.port }, clariden: { hostName: '127.0.0.1', port: world.clariden.port } };
      } else {
        restoreHosts = addNames();
        for (const name of ['ela', 'clariden'] as const) real.push(await new Sshd(name, world.gateway.caPublicKey, { address: ADDRESSES[name].address, port: 22 }).start());
        targets = { ela: { hostName: ADDRESSES.ela.hostName }, clariden: { hostName: ADDRESSES.clariden.hostName } };
      }
      const dir = join(work, 'hot');
      mkdirSync(dir);
      const config = join(dir, 'config');
      const setup = await execa('cscs-sa', ['setup', '--user', world.user, '--key', world.home.key, '--hosts', 'clariden', '--ssh-config', config, ...(why ? hostFlags(targets) : [])], { env, extendEnv: false, reject: false });
      if (setup.exitCode !== 0) throw new Error(`cscs-sa setup: ${setup.stderr}`);
      // Host keys are not what is measured: the user's own lines in front skip their check for both.
      const unchecked = '    StrictHostKeyChecking no\n    UserKnownHostsFile /dev/null\n    LogLevel ERROR\n';
      writeFileSync(config, `Host sa-*\n${unchecked}Host *\nInclude ${join(dir, 'cscs-sa.conf')}\n`);
      const hop = (name: string, t: Target) => `Host p-${name}\n    HostName ${t.hostName}\n    Port ${t.port ?? 22}\n    User ${world.user}\n    IdentityFile ${world.home.key}\n    IdentitiesOnly yes\n    BatchMode yes\n${unchecked}`;
      const plain = join(dir, 'plain_config');
      writeFileSync(plain, `${hop('clariden', targets.clariden!)}    ProxyJump p-ela\n${hop('ela', targets.ela!)}`);
      // The Match line's command as ssh hands it to $SHELL (tokens expanded), alone.
      const check = /^Match .* exec "(.*)"$/m.exec(readFileSync(join(dir, 'cscs-sa.conf'), 'utf8'))![1]!.replaceAll('%%', '%').replace('%n', 'sa-clariden');
      const times = await compareTimes(
        [
          { name: 'node', file: process.execPath, args: ['-e', '0'], env },
          { name: 'check', file: '/bin/sh', args: ['-c', check], env, before: refresh },
          { name: 'plain', file: 'ssh', args: ['-F', plain, 'p-clariden', 'true'], env, before: refresh },
          { name: 'ours', file: 'ssh', args: ['-F', config, 'sa-clariden', 'true'], env, before: refresh },
        ],
        30,
        3,
      );
      const [nodeT, checkT, plainT, oursT] = ['node', 'check', 'plain', 'ours'].map((n) => times.get(n)!) as [number, number, number, number];
      row('8', 'the Match line alone, fresh certificate (`$SHELL -c`: `sh -c` with builtins and one `date`)', `${ms(checkT)} vs \`node -e 0\` ${ms(nodeT)}`, ratio(checkT, nodeT), '(reference)', '');
      const extra = (oursT - plainT) / nodeT;
      row('8', `\`ssh sa-clariden true\` through the block setup writes${why ? ' (hosts led to 127.0.0.1)' : ', real host names'}, fresh certificate, vs plain ssh through the same two hops`, `${ms(oursT)} vs ${ms(plainT)}; \`node -e 0\` ${ms(nodeT)}`, `+${extra.toFixed(2)} × \`node -e 0\``, '≤ 1.3 ×', verdict(extra <= 1.3));
      // A new certificate: one near its refresh margin would rightly start match.
      const renewed = await execa('cscs-sa', ['sign', '--force'], { env, extendEnv: false, reject: false });
      if (renewed.exitCode !== 0) throw new Error(`cscs-sa sign --force: ${renewed.stderr}`);
      const counted = { ...env };
      const starts = recordNodeStarts(counted, dir);
      const one = await execa('ssh', ['-F', config, 'sa-clariden', 'true'], { env: counted, extendEnv: false, reject: false });
      if (one.exitCode !== 0) throw new Error(`ssh: ${one.stderr}`);
      row('8', '… Node processes started by one such command', `${starts.list().length} (${starts.list().map((args) => args.split(' ')[1]).join(', ')})`, '', '1', verdict(starts.list().length === 1));
    } finally {
      await Promise.all(real.map((sshd) => sshd.stop()));
      restoreHosts?.();
    }
  }

  if (wanted(7)) {
    const ONE_WAY_MS = 25;
    const BURST = 20;
    world.freshHome();
    const env = world.env;
    await refresh();
    const relay = await startDelayRelay(world.ela.port, ONE_WAY_MS);
    try {
      for (const [net, elaPort] of [['loopback', world.ela.port], [`WAN ${2 * ONE_WAY_MS} ms RTT`, relay.port]] as const) {
        console.log(`\n# 7. burst mode, ${net}`);
        // The blocks setup writes, with and without --multiplex, the loopback hosts put in front.
        const configs = {} as Record<'mux' | 'plain', string>;
        for (const kind of ['mux', 'plain'] as const) {
          const dir = join(work, `${net[0]}${kind[0]}`);
          mkdirSync(dir);
          const config = join(dir, 'config');
          const args = ['setup', '--user', world.user, '--key', world.home.key, '--hosts', 'clariden', '--ssh-config', config, ...(kind === 'mux' ? ['--multiplex'] : [])];
          const r = await execa('cscs-sa', args, { env, extendEnv: false, reject: false });
          if (r.exitCode !== 0) throw new Error(`cscs-sa setup: ${r.stderr}`);
          writeFileSync(config, world.userConfig(join(dir, 'cscs-sa.conf'), elaPort));
          configs[kind] = config;
        }
        const close = async () => {
          const r = await execa('cscs-sa', ['close', '--ssh-config', configs.mux], { env, extendEnv: false, reject: false });
          if (r.exitCode !== 0) throw new Error(`cscs-sa close: ${r.stderr}`);
        };
        // The documented helper's own config: its key, through the same jump host, no helpers.
        const helperConfig = join(work, `${net[0]}h_config`);
        const plainHost = (name: string, port: number) => `Host ${name}\n    HostName 127.0.0.1\n    Port ${port}\n    User ${world.user}\n    IdentityFile ${helperKey}\n    IdentitiesOnly yes\n    BatchMode yes\n    StrictHostKeyChecking no\n    UserKnownHostsFile /dev/null\n    LogLevel ERROR\n`;
        writeFileSync(helperConfig, `${plainHost('h-clariden', world.clariden.port)}    ProxyJump h-ela\n${plainHost('h-ela', elaPort)}`);
        const burstHelper = join(work, `${net[0]}sa_ssh`);
        writeFileSync(burstHelper, documentedHelper(world.gateway.url, `${helperKey}.pub`, `${helperKey}-cert.pub`, helperConfig), { mode: 0o755 });
        const loop = (command: string) => ['-c', `for i in $(seq ${BURST}); do ${command} || exit 1; done`];
        const times = await compareTimes(
          [
            { name: 'burst', file: 'sh', args: loop(`ssh -F ${configs.mux} sa-clariden true`), env, before: close },
            { name: 'plain', file: 'sh', args: loop(`ssh -F ${configs.plain} sa-clariden true`), env },
            { name: 'helper', file: 'sh', args: loop(`${burstHelper} h-clariden true`), env },
          ],
          ROUNDS,
          1,
        );
        const [burstT, plainT, helperT] = ['burst', 'plain', 'helper'].map((n) => times.get(n)!) as [number, number, number];
        const goal = net === 'loopback' ? 0.25 : 0.1;
        row('7', `${BURST} × \`ssh sa-clariden true\` (ProxyJump), ${net}: burst mode (first command opens the master) vs without`, `${ms(burstT)} vs ${ms(plainT)}; documented \`sa_ssh\` ${ms(helperT)}`, `${ratio(burstT, plainT)}; ${ratio(burstT, helperT)} sa_ssh`, `≤ ${goal} ×`, verdict(burstT / plainT <= goal));

        // Commands on a live master, against a bare multiplexed ssh on the same socket; the certificate
        // expired first: the Match line refreshes it once (it cannot know that ssh will ride the master).
        await close();
        const open = await execa('ssh', ['-F', configs.mux, 'sa-clariden', 'true'], { env, extendEnv: false, reject: false });
        if (open.exitCode !== 0) throw new Error(`ssh: ${open.stderr}`);
        const socket = /^controlpath (.*)$/m.exec(String((await execa('ssh', ['-G', '-F', configs.mux, 'sa-clariden'], { env, extendEnv: false })).stdout))![1]!;
        writeFileSync(world.home.cert, `${await world.gateway.sign(readFileSync(world.home.pub, 'utf8'), { validity: '-10m:-5m' })}\n`);
        world.gateway.reset();
        const one = await compareTimes(
          [
            { name: 'ours', file: 'ssh', args: ['-F', configs.mux, 'sa-clariden', 'true'], env },
            { name: 'bare', file: 'ssh', args: ['-F', '/dev/null', '-S', socket, '-o', 'ControlMaster=no', '_', 'true'], env },
          ],
          30,
        );
        const [oursT, bareT] = [one.get('ours')!, one.get('bare')!];
        row('7', `one \`ssh sa-clariden true\` on a live master, ${net}`, `${ms(oursT)} vs bare \`ssh -S socket\` ${ms(bareT)}`, ratio(oursT, bareT), '≤ 1.3 ×', verdict(oursT / bareT <= 1.3));
        row('7', `… sign calls during those ${2 + 30} commands on the master, certificate expired before the first`, String(world.gateway.signCalls), '', '1 per certificate', verdict(world.gateway.signCalls <= 2));
        await close();
        world.gateway.reset();
        for (let i = 0; i < 10; i++) await execa('ssh', ['-G', '-F', configs.mux, 'sa-clariden'], { env, extendEnv: false });
        row('7', `… gateway calls for 10 × \`ssh -G sa-clariden\`, certificate expired, no master`, String(world.gateway.requests.length), '', '0', verdict(world.gateway.requests.length === 0));
        await refresh();
      }
    } finally {
      await relay.close();
    }
  }

} finally {
  await world.stop();
  rmSync(work, { recursive: true, force: true });
}

function documentedHelper(url: string, pub: string, certOut: string, sshConfig: string): string {
  // get_certificate and sa_ssh from the CSCS service-account page, pointed at the double.
  return `#!/bin/bash
get_certificate() {
    local JWT_TOKEN=$(curl -s -X POST "${url}/api-service-account/api/v1/auth/token" \\
        -H "X-API-Key: $CSCS_API_KEY" | jq -r '.access_token')
    local CERT=$(curl -s -X POST "${url}/api-ssh-service/api/v1/ssh-keys/sign" \\
        -H "Authorization: Bearer $JWT_TOKEN" \\
        -H "Content-Type: application/json" \\
        -d "{\\"public_key\\": \\"$(cat ${pub})\\"}")
    echo "$CERT" | jq -r '.sshKey.publicKey' > ${certOut}
}
sa_ssh() {
    get_certificate && ssh -F ${sshConfig} "$1" "\${@:2}"
}
if [ "$1" = --certificate-only ]; then get_certificate; else sa_ssh "$@"; fi
`;
}

const machine = `${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB; Node.js ${process.version}; ${String(execaSync('ssh', ['-V'], { reject: false }).stderr).split(',')[0]}`;
const table = [
  `Measured ${new Date().toISOString().slice(0, 10)} on ${machine}.`,
  '',
  '| goal | measurement | result | ratio | target | met |',
  '|---|---|---|---|---|---|',
  ...rows.map((cells) => `| ${cells.join(' | ')} |`),
].join('\n');
mkdirSync(new URL('results/', import.meta.url), { recursive: true });
writeFileSync(new URL('results/latest.md', import.meta.url), `${table}\n`);
console.log(`\n${table}`);
