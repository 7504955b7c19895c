/**
 * Writing ssh_config: the cscs-sa block (routes, the key and its certificate, the Match line
 * last), where its Include goes in the user's ssh config, and what setup refuses to edit.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { type BlockOptions, BEGIN, END, hostsCaught, parseHosts, planInclude, renderBlock, SetupRefusedError } from '../../src/ssh/sshconfig.ts';
import { UsageError } from '../../src/base/errors.ts';

const base: BlockOptions = {
  prefix: 'sa-',
  user: 'svc',
  key: '/h/u/.ssh/cscs-key-sa',
  clusters: ['clariden', 'daint'],
  command: ['cscs-sa'],
  knownHosts: '/h/u/.ssh/cscs-sa.known_hosts',
};

/** The block's lines without comments and blank lines. */
const lines = (o: Partial<BlockOptions> = {}) =>
  renderBlock({ ...base, ...o })
    .split('\n')
    .filter((l) => l.trim() !== '' && !l.startsWith('#'));

test('the jump host is reached by the ProxyCommand, every cluster by ProxyJump through it', () => {
  const l = lines();
  assert.equal(l.slice(0, 9), [
    'Host sa-ela',
    '    HostName ela.cscs.ch',
    '    ProxyCommand cscs-sa proxy %h %p',
    'Host sa-clariden',
    '    HostName clariden.alps.cscs.ch',
    '    ProxyJump sa-ela',
    'Host sa-daint',
    '    HostName daint.alps.cscs.ch',
    '    ProxyJump sa-ela',
  ]);
});

test('the defaults name the key and its certificate beside it, only that key, batch mode and the pinned host keys', () => {
  const l = lines();
  const defaults = l.slice(l.indexOf('Host sa-*') + 1, -1).map((s) => s.trim());
  assert.equal(defaults, [
    'User svc',
    'IdentityFile /h/u/.ssh/cscs-key-sa',
    'CertificateFile /h/u/.ssh/cscs-key-sa-cert.pub',
    'IdentitiesOnly yes',
    'BatchMode yes',
    'UserKnownHostsFile /h/u/.ssh/cscs-sa.known_hosts',
    'StrictHostKeyChecking yes',
  ]);
});

test('the Match line is the last line: the shell check of the key\'s own certificate, else match with its arguments', () => {
  const last = (o = {}) => /^Match originalhost (\S+) exec "sh -c '[^'"]+' cscs-sa (\S+) (\S+) 2>\/dev\/null \|\| (.*)"$/.exec(lines(o).at(-1)!)?.slice(1);
  assert.equal(last(), ['sa-*', '/h/u/.ssh/cscs-key-sa-cert.pub', '/h/u/.ssh/cscs-key-sa.pub', 'cscs-sa match %n']);
  assert.equal(last({ prefix: 'proj-', key: '/h/u/.ssh/cscs-key-proj', matchArgs: ['--account', 'proj'] }), ['proj-*', '/h/u/.ssh/cscs-key-proj-cert.pub', '/h/u/.ssh/cscs-key-proj.pub', 'cscs-sa match --account proj %n']);
});

test('paths with spaces are quoted and % is doubled where ssh expands tokens; the command is quoted for the shell', () => {
  const l = lines({ key: '/h/my user/100%/k', command: ['/opt/my node/node', '/x/cli.cjs'] }).map((s) => s.trim());
  assert.ok(l.includes('IdentityFile "/h/my user/100%%/k"'));
  assert.ok(l.includes('CertificateFile "/h/my user/100%%/k-cert.pub"'));
  assert.ok(l.includes("ProxyCommand '/opt/my node/node' /x/cli.cjs proxy %h %p"));
});

test('a key ssh_config cannot carry is refused as a usage error before anything is written', () => {
  assert.throws(() => renderBlock({ ...base, key: '/h/u/a"b' }), (err: unknown) => err instanceof UsageError && /cannot write the key/.test(err.message));
});

test('agent mode: the proxy loads the agent and IdentitiesOnly is off; --host targets get HostName and Port', () => {
  const l = lines({ agent: true, proxyArgs: ['--account', 'sa'], targets: { clariden: { hostName: 'c.example', port: 2222 } } }).map((s) => s.trim());
  assert.ok(l.includes('ProxyCommand cscs-sa proxy --agent --account sa %h %p'));
  assert.ok(l.includes('IdentitiesOnly no') && !l.includes('IdentitiesOnly yes'));
  const at = l.indexOf('Host sa-clariden');
  assert.equal(l.slice(at, at + 4), ['Host sa-clariden', 'HostName c.example', 'Port 2222', 'ProxyJump sa-ela']);
});

test('burst mode: multiplexing lines, and the same Match line as without (it cannot know which ControlPath the ssh uses)', () => {
  const l = lines({ multiplex: '/h/u/.ssh/cscs-sa-cm' });
  assert.ok(l.includes('    ControlPath /h/u/.ssh/cscs-sa-cm/%C'));
  assert.is(l.at(-1), lines().at(-1));
});

const CONF = '/h/u/.ssh/cscs-sa.conf';

test('the Include goes between markers before the first Host or Match line, apart from what follows', () => {
  const plan = planInclude('# mine\nServerAliveInterval 30\nHost x\n  User y\n', [CONF]);
  assert.is(plan.text, `# mine\nServerAliveInterval 30\n${BEGIN}\nInclude ${CONF}\n${END}\n\nHost x\n  User y\n`);
  assert.ok(plan.changed);
});

test('running it again changes nothing; CRLF files keep their line endings', () => {
  const once = planInclude('Host x\r\n', [CONF]).text;
  assert.is(once, `${BEGIN}\r\nInclude ${CONF}\r\n${END}\r\n\r\nHost x\r\n`);
  const again = planInclude(once, [CONF]);
  assert.is(again.changed, false);
  assert.is(again.text, once);
});

test('the marked block is replaced in place, and taken out with its blank line when no account is left', () => {
  const withTwo = planInclude(planInclude('Host x\n', [CONF]).text, [CONF, '/h/u/.ssh/cscs-sa-proj.conf']).text;
  assert.is(withTwo, `${BEGIN}\nInclude ${CONF}\nInclude /h/u/.ssh/cscs-sa-proj.conf\n${END}\n\nHost x\n`);
  assert.is(planInclude(withTwo, []).text, 'Host x\n');
});

test('broken markers, or our Include already outside them, are refused: setup will not guess', () => {
  assert.throws(() => planInclude(`${BEGIN}\nHost x\n`, [CONF]), (err: unknown) => err instanceof SetupRefusedError && /1 BEGIN, 0 END/.test(err.message));
  assert.throws(() => planInclude(`${END}\n${BEGIN}\n`, [CONF]), (err: unknown) => err instanceof SetupRefusedError);
  assert.throws(() => planInclude(`Include ${CONF}\nHost x\n`, [CONF]), (err: unknown) => err instanceof SetupRefusedError && /at line 1, outside the cscs-sa markers/.test(err.message));
});

test('hosts of the user that the sa-* defaults would catch are found; patterns, our own hosts and other names are not', () => {
  const config = `Host sa-git other\n  User me\nHost sa-* !sa-x\nHost sa-ela\n${BEGIN}\nHost sa-inside\n${END}\nhost = SA-Build # a comment\n`;
  assert.equal(hostsCaught(config, 'sa-', ['ela', 'clariden']), ['sa-git', 'sa-build']);
});

test('--hosts: CSCS clusters in any case, prefix dropped, duplicates folded; NAME=HOST[:PORT] for others; typos, the jump host and nothing at all refused', () => {
  assert.equal(parseHosts('setup', 'SA-Clariden, daint,,daint', 'sa-'), { clusters: ['clariden', 'daint'], targets: {} });
  assert.equal(parseHosts('setup', 'clariden,lab=Lab.example.org:2200', 'sa-'), { clusters: ['clariden', 'lab'], targets: { lab: { hostName: 'lab.example.org', port: 2200 } } });
  const refused = (list: string, line: RegExp) => assert.throws(() => parseHosts('setup', list, 'sa-'), (err: unknown) => err instanceof UsageError && line.test(err.line));
  refused('claridan', /"claridan" is not a CSCS cluster .*: did you mean "clariden"\?/);
  refused('clariden,da;int', /"da;int" is not a CSCS cluster/);
  refused('ela', /ela is the jump host/);
  refused('ela=127.0.0.1:2222', /ela is the jump host, not a cluster: lead it elsewhere with --host ela=HOSTNAME\[:PORT\]/);
  refused('', /names no cluster/);
  refused(' , ,', /names no cluster/);
});

test('--hosts refusals: the exact line each kind of mistake gets (after "cscs-sa: "), exit 2', () => {
  const clusters = 'clariden, daint, santis, eiger, bristen';
  for (const [list, line] of [
    ['claridan', `setup: --hosts: "claridan" is not a CSCS cluster (${clusters}): did you mean "clariden"? (a cluster of another name: NAME=HOSTNAME[:PORT])`],
    ['zzz', `setup: --hosts: "zzz" is not a CSCS cluster (${clusters}): for a cluster of another name, write NAME=HOSTNAME[:PORT]`],
    ['', `setup: --hosts "" names no cluster: name at least one: ${clusters}`],
    [',,,', `setup: --hosts ",,," names no cluster: name at least one: ${clusters}`],
    ['ela', 'setup: --hosts: ela is the jump host, always in the block: --hosts names the clusters behind it: e.g. --hosts clariden'],
    ['lab=bad_host', 'setup: --hosts "lab=bad_host" is not NAME=HOSTNAME[:PORT] (e.g. clariden=clariden.alps.cscs.ch:22)'],
  ]) {
    assert.throws(() => parseHosts('setup', list!, 'sa-'), (err: unknown) => err instanceof UsageError && err.exitCode === 2 && err.line === line, list);
  }
});

test.run();
