/** uvu suites with their fixtures started before and stopped after all their tests. */
import { suite, type Test } from 'uvu';
import { execaSync } from 'execa';
import { userInfo } from 'node:os';
import { GatewayDouble, type GatewayDoubleOptions } from './gateway-double.ts';
import { type Home, tempHome, userEnv } from './cli.ts';
import { World } from './world.ts';

export interface HomeContext {
  home: Home;
  env: Record<string, string>;
}

/**
 * A gateway double for the whole suite (signing for this user, unless `double` says otherwise);
 * for each test a fresh HOME and an environment pointing at the double.
 */
export function gatewaySuite<C extends HomeContext = HomeContext>(name: string, apiKey: string, double: Partial<GatewayDoubleOptions> = {}): { gw: GatewayDouble; test: Test<C> } {
  const gw = new GatewayDouble({ apiKey, principals: [userInfo().username], ...double });
  const test = suite<C>(name);
  test.before(async () => {
    await gw.start();
  });
  test.after(async () => gw.stop());
  test.before.each((ctx) => {
    gw.reset();
    ctx.home = tempHome();
    ctx.env = userEnv(ctx.home, { CSCS_API_KEY: apiKey, CSCS_AUTHX_URL: gw.url, CSCS_SA_TIMEOUT: '3' });
  });
  test.after.each((ctx) => ctx.home.remove());
  return { gw, test };
}

/** The gateway double and two loopback sshd (World) for the whole suite. */
export function worldSuite(name: string, { after }: { after?: () => void } = {}): { world: World; test: Test } {
  const world = new World();
  const test = suite(name);
  test.before(async () => {
    await world.start();
  });
  test.after(async () => {
    await world.stop();
    after?.();
  });
  return { world, test };
}

/**
 * uvu has no skip: a test that cannot run here is not registered at all (so it never passes in
 * place of the real one) and prints a line starting with SKIPPED, which scripts/test.js counts.
 * `why` names what is missing and, where a package brings it, the package to install.
 */
export function skipTest(name: string, why: string): void {
  console.log(`SKIPPED ${name}: ${why}`);
}

/** Why a test that runs TOOL cannot run here (for skipTest), or undefined when TOOL is on the PATH. */
export function missingTool(tool: string, debianPackage = tool): string | undefined {
  return execaSync('sh', ['-c', `command -v ${tool}`], { reject: false }).exitCode === 0 ? undefined : `${tool} is not installed (apt-get install ${debianPackage})`;
}
