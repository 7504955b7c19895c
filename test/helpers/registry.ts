/**
 * A local double of the npm registry for the packages of this checkout's package-lock.json, so
 * that `npm install` and `npm pack git+URL` need no network once `npm ci` has run.
 *
 * A packument (`GET /NAME`, `GET /@scope%2fname`) lists the versions of NAME that `npm ci` put in
 * node_modules/, each with its manifest from that folder's package.json and a `dist` pointing back
 * at the double; `GET /NAME/-/BASE-VERSION.tgz` is the registry's own tarball, read from npm's
 * cache where `npm ci` stored it under its integrity. Only the registry's bytes will do: the
 * install a git dependency's `prepare` needs follows the lockfile, which names their integrity,
 * and npm pack makes that install bypass its cache. The double reads the user's cache and never
 * writes it. A name not installed here (another
 * platform's optional binary such as @esbuild/darwin-arm64) is a 404, which npm takes as an
 * optional dependency that cannot be installed.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execaSync } from 'execa';

interface Version {
  /** The package's folder, relative to the project root. */
  folder: string;
  version: string;
  /** The path of its tarball's URL, where npm looks for it when the lockfile names no URL (as here). */
  path: string;
}

/** The package.json fields npm reads from a registry manifest to build and check its tree. */
const MANIFEST_FIELDS = ['name', 'version', 'dependencies', 'optionalDependencies', 'peerDependencies', 'peerDependenciesMeta', 'bin', 'engines', 'os', 'cpu'];

export class RegistryDouble {
  /** Installed packages whose tarball is not in npm's cache (`name@version`): the double cannot serve them. */
  readonly missing: string[] = [];
  /** npm's cache, where `npm ci` left the tarballs. */
  readonly cache: string;
  url = '';
  /** Package name -> its installed versions. */
  private readonly installed = new Map<string, Version[]>();
  private readonly packuments = new Map<string, object>();
  /** Request path of a tarball -> the file. */
  private readonly tarballs = new Map<string, string>();
  private readonly server = createServer((req, res) => this.handle(req, res));

  /** `root`: a project after `npm ci`, its package-lock.json and node_modules/. */
  constructor(private readonly root: string) {
    this.cache = userCache();
    const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as { packages: Record<string, { version: string; integrity?: string }> };
    for (const [folder, { version, integrity }] of Object.entries(lock.packages)) {
      // Not the project itself nor links; not another platform's binaries, which are not in node_modules/.
      if (!integrity || !existsSync(join(root, folder, 'package.json'))) continue;
      // node_modules/a/node_modules/@s/b -> @s/b
      const name = folder.slice(folder.lastIndexOf('node_modules/') + 'node_modules/'.length);
      const file = cachedContent(this.cache, integrity);
      if (!existsSync(file)) this.missing.push(`${name}@${version}`);
      const path = `/${name}/-/${name.replace(/^@[^/]+\//, '')}-${version}.tgz`;
      this.tarballs.set(path, file);
      const versions = this.installed.get(name) ?? [];
      if (!versions.some((v) => v.version === version)) versions.push({ folder, version, path });
      this.installed.set(name, versions);
    }
  }

  /** The environment that points npm at this double. */
  get npmEnv(): Record<string, string> {
    return { npm_config_registry: `${this.url}/` };
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const path = new URL(req.url ?? '/', this.url).pathname;
    try {
      // npm asks for /@scope%2fname; /@scope/name means the same.
      const name = decodeURIComponent(path.slice(1));
      const tarball = this.tarballs.get(path);
      if (req.method === 'GET' && tarball) {
        res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(readFileSync(tarball));
      } else if (req.method === 'GET' && this.installed.has(name)) {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(this.packument(name)));
      } else {
        res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"Not found"}');
      }
    } catch (error) {
      res.writeHead(500, { 'content-type': 'text/plain' }).end(String(error));
    }
  }

  /** Made on the first request for the name: its dist.integrity is that of the bytes served. */
  private packument(name: string): object {
    let packument = this.packuments.get(name);
    if (packument) return packument;
    const versions: Record<string, object> = {};
    for (const { folder, version, path } of this.installed.get(name)!) {
      const manifest = JSON.parse(readFileSync(join(this.root, folder, 'package.json'), 'utf8')) as Record<string, unknown>;
      const bytes = readFileSync(this.tarballs.get(path)!);
      versions[version] = {
        ...Object.fromEntries(MANIFEST_FIELDS.filter((field) => field in manifest).map((field) => [field, manifest[field]])),
        dist: {
          tarball: `${this.url}${path}`,
          integrity: `sha512-${createHash('sha512').update(bytes).digest('base64')}`,
          shasum: createHash('sha1').update(bytes).digest('hex'),
        },
      };
    }
    // No dist-tags: every install here names a range, and npm takes the highest version in it.
    packument = { name, versions };
    this.packuments.set(name, packument);
    return packument;
  }
}

/**
 * The user's npm cache, not the one `npm test` names for its scripts (the same, unless set
 * otherwise). npm writes a log file for every command and prunes old ones (here into a folder of
 * its own), and notes when it last looked for a newer npm (here it does not look): the user's
 * ~/.npm stays as it was.
 */
function userCache(): string {
  const logs = mkdtempSync(join(tmpdir(), 'cscs-sa-npm-logs-'));
  try {
    return execaSync('npm', ['config', 'get', 'cache'], { env: { ...process.env, npm_config_cache: undefined, npm_config_logs_dir: logs, npm_config_update_notifier: 'false' } }).stdout.trim();
  } finally {
    rmSync(logs, { recursive: true, force: true });
  }
}

/** Where cacache, npm's cache, keeps the content with this integrity. */
function cachedContent(cache: string, integrity: string): string {
  const [algorithm, base64] = integrity.split('-', 2) as [string, string];
  const hex = Buffer.from(base64, 'base64').toString('hex');
  return join(cache, '_cacache', 'content-v2', algorithm, hex.slice(0, 2), hex.slice(2, 4), hex.slice(4));
}
