"use strict";

// src/action/main.ts
var import_node_fs6 = require("node:fs");
var import_node_path7 = require("node:path");

// src/base/errors.ts
var ExitCode = {
  ok: 0,
  failure: 1,
  usage: 2,
  config: 3,
  apiKey: 4,
  gatewayUnavailable: 5,
  gatewayResponse: 6,
  localFiles: 7,
  connect: 8
};
var ESCAPES = { "\n": "\\n", "\r": "\\r", "	": "\\t" };
var CscsSaError = class extends Error {
  exitCode = ExitCode.failure;
  code = "CSCS_SA_ERR";
  name = "CscsSaError";
  /** Not read-only: a caller that knows a way around the failure adds it (setup: --user). */
  fix;
  constructor(message, details = {}) {
    super(message, details.cause === void 0 ? void 0 : { cause: details.cause });
    if (details.fix !== void 0) this.fix = details.fix;
  }
  /** The one line for people: what failed, then what to do. */
  get line() {
    const line = this.fix ? `${this.message}: ${this.fix}` : this.message;
    return line.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => ESCAPES[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
  }
};
function errorKind(name, exitCode, code) {
  return class extends CscsSaError {
    exitCode = exitCode;
    code = code;
    name = name;
  };
}
var UsageError = class extends errorKind("UsageError", ExitCode.usage, "CSCS_SA_ERR_USAGE") {
};
var ConfigError = class extends errorKind("ConfigError", ExitCode.config, "CSCS_SA_ERR_CONFIG") {
};
var ApiKeyError = class extends errorKind("ApiKeyError", ExitCode.apiKey, "CSCS_SA_ERR_API_KEY") {
};
var GatewayUnavailableError = class extends errorKind("GatewayUnavailableError", ExitCode.gatewayUnavailable, "CSCS_SA_ERR_GATEWAY_UNAVAILABLE") {
};
var GatewayResponseError = class extends errorKind("GatewayResponseError", ExitCode.gatewayResponse, "CSCS_SA_ERR_GATEWAY_RESPONSE") {
  /** The HTTP status, when there was one. */
  status;
  constructor(message, details = {}) {
    super(message, details);
    if (details.status !== void 0) this.status = details.status;
  }
};
var LocalFileError = class extends errorKind("LocalFileError", ExitCode.localFiles, "CSCS_SA_ERR_LOCAL_FILES") {
};
var ConnectError = class extends errorKind("ConnectError", ExitCode.connect, "CSCS_SA_ERR_CONNECT") {
};
var ERRNO_WORDS = {
  EACCES: "permission denied",
  EPERM: "permission denied",
  EROFS: "read-only file system",
  ENOSPC: "no space left on device",
  EDQUOT: "disk quota exceeded",
  ENOENT: "no such file or directory",
  EISDIR: "is a directory",
  ENOTDIR: "a parent is not a directory",
  ECONNREFUSED: "connection refused",
  ECONNRESET: "connection reset",
  ETIMEDOUT: "timed out",
  EHOSTUNREACH: "network unreachable",
  ENETUNREACH: "network unreachable"
};
function errnoReason(err) {
  const code = err?.code;
  if (code) return Object.hasOwn(ERRNO_WORDS, code) ? ERRNO_WORDS[code] : code;
  return err instanceof Error ? err.message : String(err);
}
function describeFsError(err, action, path) {
  return `cannot ${action} ${path}: ${errnoReason(err)}`;
}

// src/base/child.ts
var API_KEY_VARIABLE_PREFIX = "CSCS_API_KEY";
function isApiKeyVariable(name) {
  return name.startsWith(API_KEY_VARIABLE_PREFIX);
}
function childEnv(env = process.env) {
  return Object.fromEntries(Object.entries(env).filter(([name]) => !isApiKeyVariable(name)));
}

// src/core/account.ts
var DEFAULT_ACCOUNT = "sa";
var ACCOUNT_NAME = /^[a-z][a-z0-9]{0,15}$/;
var ACCOUNT_NAME_RULE = "a lower-case letter, then up to 15 lower-case letters or digits";
function isAccountName(name) {
  return ACCOUNT_NAME.test(name);
}
function hostPrefix(account) {
  return `${account}-`;
}
function defaultKey(account) {
  return `~/.ssh/${KEY_FILE_PREFIX}${account}`;
}
var KEY_FILE_PREFIX = "cscs-key-";
function apiKeyVariable(account) {
  return account === DEFAULT_ACCOUNT ? API_KEY_VARIABLE_PREFIX : `${API_KEY_VARIABLE_PREFIX}_${account.toUpperCase()}`;
}
function accountOfApiKeyVariable(variable) {
  if (!variable.startsWith(`${API_KEY_VARIABLE_PREFIX}_`)) return void 0;
  const name = variable.slice(API_KEY_VARIABLE_PREFIX.length + 1).toLowerCase();
  return isAccountName(name) && apiKeyVariable(name) === variable && name !== DEFAULT_ACCOUNT ? name : void 0;
}
function confFile(account) {
  return account === DEFAULT_ACCOUNT ? "cscs-sa.conf" : `cscs-sa-${account}.conf`;
}

// src/core/store.ts
var import_node_fs = require("node:fs");
var import_node_path = require("node:path");

// src/core/certificate.ts
var FOREVER = 2n ** 64n - 1n;

// src/core/store.ts
function keyPaths(key) {
  return { key, publicKey: `${key}.pub`, certificate: `${key}-cert.pub`, lock: `${key}.lock`, failed: `${key}.failed` };
}
function statOrUndefined(path) {
  try {
    return (0, import_node_fs.statSync)(path, { throwIfNoEntry: false });
  } catch {
    return void 0;
  }
}
function folderIdentity(dir) {
  const below = [];
  for (let d = dir; ; d = (0, import_node_path.dirname)(d)) {
    const stats = statOrUndefined(d);
    if (stats) return [`${stats.dev}:${stats.ino}`, ...below].join("/");
    if (d === (0, import_node_path.dirname)(d)) return dir;
    below.unshift((0, import_node_path.basename)(d));
  }
}
function pairIdentity(key) {
  const folder = folderIdentity((0, import_node_path.dirname)(key));
  return Object.values(keyPaths(key)).flatMap((path) => {
    const stats = statOrUndefined(path);
    return [`${folder}/${(0, import_node_path.basename)(path)}`, ...stats ? [`file ${stats.dev}:${stats.ino}`] : []];
  });
}
var FRESH_WORD = "fresh=";
var FRESH_SEPARATOR = "..";

// src/ssh/lex.ts
function unsafeReason(value, expansion = {}) {
  if (value === "") return "it is empty";
  if (/[\u0000-\u001f\u007f]/.test(value)) return "it contains a newline or another control character";
  if (/["'\\]/.test(value)) return "it contains a quote or a backslash, which ssh_config cannot carry the same way in every OpenSSH version";
  if (/(^|\s)#/.test(value)) return "it has a word starting with #, which ssh reads as a comment";
  if (expansion.env && value.includes("${")) return "it contains ${, which ssh expands as an environment variable";
  if (expansion.glob && /[*?[\]]/.test(value)) return "it contains *, ? or [, which Include expands as a pattern";
  return void 0;
}
function check(what, value, expansion) {
  const reason = unsafeReason(value, expansion);
  if (reason) throw new UsageError(`setup: cannot write ${what} ${JSON.stringify(value)} into the ssh config: ${reason}`, { fix: "use a path without it (nothing was changed)" });
}
function shellWord(what, value) {
  check(what, value, {});
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(value) ? value : `'${value}'`;
}

// src/ssh/freshcheck.ts
var SEP = FRESH_SEPARATOR;
var SCRIPT = [
  "set -f",
  "IFS=",
  [
    "[ -z ${CSCS_SA_PROBE:+x} ]",
    "read -r l < $1",
    "read -r k < $2",
    // The `.pub` line is `TYPE BASE64 [COMMENT]`: its second word.
    "k=${k#* }",
    "k=${k%% *}",
    `w=\${l#* cscs-sa ${FRESH_WORD}}`,
    "w=${w%% *}",
    `[ \${w#*${SEP}*${SEP}} = $k ]`,
    `w=\${w%${SEP}*}`,
    "n=$(date +%s)",
    `[ $n -ge \${w%${SEP}*} ]`,
    `[ $n -lt \${w#*${SEP}} ]`
  ].join(" && ")
].join("; ");

// src/ssh/multiplex.ts
var import_node_os3 = require("node:os");
var import_node_path4 = require("node:path");

// src/core/config.ts
var import_node_os = require("node:os");
var import_node_path2 = require("node:path");
var AUTHX_URLS = { prod: "https://authx-gateway.svc.cscs.ch", tds: "https://authx-gateway.tds.cscs.ch" };
var ENV = {
  key: "CSCS_SA_KEY",
  env: "CSCS_SA_ENV",
  authxUrl: "CSCS_AUTHX_URL",
  refreshMargin: "CSCS_SA_REFRESH_MARGIN",
  timeout: "CSCS_SA_TIMEOUT",
  connectTimeout: "CSCS_SA_CONNECT_TIMEOUT",
  configFile: "CSCS_SA_CONFIG",
  user: "CSCS_SA_USERNAME"
};
function expandHome(path, from = path) {
  const tilde = /^~([^/]*)(\/.*)?$/.exec(path);
  if (!tilde) return (0, import_node_path2.resolve)(path);
  const [, name, rest] = tilde;
  if (name !== "" && name !== (0, import_node_os.userInfo)().username) {
    throw new ConfigError(`${from} names the home folder of user ${name}, which cscs-sa does not look up`, { fix: "write the absolute path (~/ is your own home folder)" });
  }
  const home = name === "" ? (0, import_node_os.homedir)() : (0, import_node_os.userInfo)().homedir;
  return rest ? (0, import_node_path2.join)(home, rest) : home;
}
function settingPath(path, from) {
  if (!(0, import_node_path2.isAbsolute)(path) && !path.startsWith("~")) {
    throw new ConfigError(`${from} is a relative path, which would name another file in each folder ssh runs in`, { fix: "make it absolute (or start it with ~/)" });
  }
  return expandHome(path, from);
}
var DURATIONS = {
  timeout: { min: 0, minIncluded: false, max: 300 },
  connectTimeout: { min: 0, minIncluded: false, max: 120 },
  refreshMargin: { min: 0, minIncluded: true, max: 3600 }
};
function validSeconds(value, name) {
  const { min, minIncluded, max } = DURATIONS[name];
  return typeof value === "number" && Number.isFinite(value) && (minIncluded ? value >= min : value > min) && value <= max;
}
function wantSeconds(name) {
  const { min, minIncluded, max } = DURATIONS[name];
  return `a number of seconds ${minIncluded ? `from ${min}` : `above ${min}`} to ${max}`;
}
var durationKind = (name) => ({ valid: (v) => validSeconds(v, name), want: wantSeconds(name) });
var KINDS = {
  timeout: durationKind("timeout"),
  connectTimeout: durationKind("connectTimeout"),
  refreshMargin: durationKind("refreshMargin"),
  boolean: { valid: (v) => typeof v === "boolean", want: "true or false" },
  string: { valid: (v) => typeof v === "string" && v !== "", want: "a non-empty string" },
  command: {
    valid: (v) => typeof v === "string" && v.trim() !== "" || Array.isArray(v) && v.length > 0 && v.every((part) => typeof part === "string"),
    want: "a command string or an array of strings"
  }
};
var ACCOUNT_KEYS = {
  key: "string",
  env: "string",
  authxUrl: "string",
  user: "string",
  apiKeyFile: "string",
  apiKeyCommand: "command"
};
var FILE_KEYS = {
  ...ACCOUNT_KEYS,
  refreshMargin: "refreshMargin",
  timeout: "timeout",
  connectTimeout: "connectTimeout",
  agent: "boolean"
};
var MAX_CONFIG_BYTES = 256 * 1024;
function configuredAccounts(file) {
  return Object.keys(file.accounts ?? {});
}
function parseSeconds(raw, setting) {
  const value = raw.trim() === "" ? NaN : Number(raw);
  return validSeconds(value, setting) ? value : void 0;
}
function envSeconds(env, setting) {
  const [from, raw] = [ENV[setting], env[ENV[setting]]];
  if (raw === void 0 || raw === "") return void 0;
  const value = parseSeconds(raw, setting);
  if (value === void 0) throw new ConfigError(`${from}=${raw} is not ${wantSeconds(setting)}`, { fix: `set ${from} to ${wantSeconds(setting)}, or unset it` });
  return value;
}
function isLoopback(hostname2) {
  return hostname2 === "localhost" || hostname2 === "[::1]" || /^127\.\d+\.\d+\.\d+$/.test(hostname2);
}
function checkUrl(url, from) {
  let parsed;
  try {
    parsed = new URL(url);
  } catch {
    throw new ConfigError(`${from}: "${url}" is not a URL`);
  }
  if (parsed.protocol !== "https:" && parsed.protocol !== "http:") throw new ConfigError(`${from}: "${url}" must be an https:// URL`);
  if (parsed.protocol === "http:" && !isLoopback(parsed.hostname)) {
    throw new ConfigError(`${from}: "${url}" would send the API key unencrypted`, { fix: "use https:// (plain http:// is only for loopback addresses: 127.0.0.0/8, ::1, localhost)" });
  }
  return url.replace(/\/+$/, "");
}
function checkEnvironment(value, from, source = "setting") {
  if (Object.hasOwn(AUTHX_URLS, value)) return value;
  const names = Object.keys(AUTHX_URLS);
  const meant = names.find((name) => name === value.trim().toLowerCase());
  const Err = source === "flag" ? UsageError : ConfigError;
  throw new Err(`${from}: "${value}" is not a CSCS environment`, { fix: meant ? `did you mean "${meant}"?` : `use ${names.join(" or ")}` });
}
function accountName(flag) {
  if (flag === void 0) return DEFAULT_ACCOUNT;
  if (!isAccountName(flag)) throw new UsageError(`--account: "${flag}" is not an account name (${ACCOUNT_NAME_RULE})`);
  return flag;
}
function ownSettings(account, file) {
  if (account === DEFAULT_ACCOUNT) return file;
  return file.accounts && Object.hasOwn(file.accounts, account) ? file.accounts[account] : {};
}
function accountKey(account, env, file, configFile) {
  const variable = account === DEFAULT_ACCOUNT ? env[ENV.key] : void 0;
  if (variable) return settingPath(variable, `${ENV.key}=${variable}`);
  const own = ownSettings(account, file).key;
  if (own) return settingPath(own, `config file ${configFile}${account === DEFAULT_ACCOUNT ? "" : ` (accounts.${account})`}: "key" ${own}`);
  return expandHome(defaultKey(account));
}
function otherAccounts(account, env, file) {
  const inUse = Object.keys(env).flatMap((variable) => env[variable] ? accountOfApiKeyVariable(variable) ?? [] : []);
  return [.../* @__PURE__ */ new Set([DEFAULT_ACCOUNT, ...configuredAccounts(file), ...inUse])].filter((other) => other !== account);
}
function settingsFrom(flags, env, file, configFile) {
  const account = accountName(flags.account);
  const isDefault = account === DEFAULT_ACCOUNT;
  const own = ownSettings(account, file);
  const from = `config file ${configFile}${isDefault ? "" : ` (accounts.${account})`}`;
  const cscsEnv = flags.env !== void 0 ? checkEnvironment(flags.env, "--env", "flag") : env[ENV.env] ? checkEnvironment(env[ENV.env], ENV.env) : own.env ? checkEnvironment(own.env, from) : "prod";
  const authxUrl = flags.env !== void 0 ? void 0 : env[ENV.authxUrl] || own.authxUrl;
  const key = flags.key ? settingPath(flags.key, `-f ${flags.key}`) : accountKey(account, env, file, configFile);
  const others = otherAccounts(account, env, file);
  const files = others.length > 0 ? pairIdentity(key) : [];
  const owner = others.find((other) => pairIdentity(accountKey(other, env, file, configFile)).some((id) => files.includes(id)));
  if (owner) throw new ConfigError(`account ${account} would use ${key}, the key pair of account ${owner}`, { fix: 'give each account a key pair of its own ("key" in the config file, --key)' });
  return {
    account,
    key,
    env: cscsEnv,
    authxUrl: authxUrl ? checkUrl(authxUrl, env[ENV.authxUrl] ? ENV.authxUrl : from) : AUTHX_URLS[cscsEnv],
    // The login name setup writes, also the one certificates must name (CSCS_SA_USERNAME: the default account's).
    user: isDefault && env[ENV.user] || own.user,
    apiKeyVariable: apiKeyVariable(account),
    apiKeyFile: own.apiKeyFile && settingPath(own.apiKeyFile, `${from}: "apiKeyFile" ${own.apiKeyFile}`),
    apiKeyCommand: own.apiKeyCommand,
    refreshMargin: envSeconds(env, "refreshMargin") ?? file.refreshMargin ?? 20,
    timeout: envSeconds(env, "timeout") ?? file.timeout ?? 10,
    connectTimeout: envSeconds(env, "connectTimeout") ?? file.connectTimeout ?? 5,
    agent: file.agent ?? false,
    configFile
  };
}

// src/base/fsutil.ts
var import_node_fs2 = require("node:fs");
var import_node_path3 = require("node:path");
var import_node_os2 = require("node:os");
var import_node_crypto = require("node:crypto");
var HOST_TAG = (0, import_node_crypto.createHash)("sha256").update((0, import_node_os2.hostname)()).digest("hex").slice(0, 8);
function tempPrefix(path) {
  return `${(0, import_node_path3.basename)(path)}.tmp-`;
}
function tempPath(path) {
  return (0, import_node_path3.join)((0, import_node_path3.dirname)(path), `${tempPrefix(path)}${HOST_TAG}.${process.pid}.${(0, import_node_crypto.randomBytes)(4).toString("hex")}`);
}
function writeFileAtomic(path, data, mode) {
  const tmp = tempPath(path);
  const fd = (0, import_node_fs2.openSync)(tmp, "wx", mode);
  try {
    try {
      (0, import_node_fs2.writeSync)(fd, data);
      (0, import_node_fs2.fsyncSync)(fd);
    } finally {
      (0, import_node_fs2.closeSync)(fd);
    }
    (0, import_node_fs2.renameSync)(tmp, path);
  } catch (err) {
    try {
      (0, import_node_fs2.unlinkSync)(tmp);
    } catch {
    }
    throw err;
  }
  fsyncDir((0, import_node_path3.dirname)(path));
}
function fsyncDir(dir) {
  try {
    const fd = (0, import_node_fs2.openSync)(dir, "r");
    try {
      (0, import_node_fs2.fsyncSync)(fd);
    } finally {
      (0, import_node_fs2.closeSync)(fd);
    }
  } catch {
  }
}
function makeFolders(dir, mode) {
  const missing = [];
  for (let d = dir; !(0, import_node_fs2.existsSync)(d) && d !== (0, import_node_path3.dirname)(d); d = (0, import_node_path3.dirname)(d)) missing.unshift(d);
  for (const d of missing) {
    try {
      (0, import_node_fs2.mkdirSync)(d, { mode });
    } catch (err) {
      if (err.code !== "EEXIST") throw err;
    }
  }
}

// src/ssh/multiplex.ts
var SUN_PATH = 104;
var SOCKET_NAME = "/".length + 40 + ".".length + 16;
var MAX_CONTROL_DIR = SUN_PATH - 1 - SOCKET_NAME;
function sshConfigPath(flag) {
  return flag ? expandHome(flag) : (0, import_node_path4.join)((0, import_node_os3.userInfo)().homedir, ".ssh", "config");
}
function controlDir(sshConfig) {
  return (0, import_node_path4.join)((0, import_node_path4.dirname)(sshConfig), "cscs-sa-cm");
}

// src/base/suggest.ts
function distance(a, b) {
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_2, j) => i === 0 ? j : j === 0 ? i : 0));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}
function didYouMean(typed, candidates2) {
  const limit = typed.length < 5 ? 1 : 2;
  const scored = candidates2.map((name) => ({ name, d: distance(typed.toLowerCase(), name.toLowerCase()) })).filter(({ d }) => d <= limit);
  const best = Math.min(...scored.map(({ d }) => d));
  const closest = scored.filter(({ d }) => d === best).map(({ name }) => `"${name}"`);
  if (closest.length === 0 || closest.length > 2) return void 0;
  return closest.sort().join(" or ");
}

// src/ssh/sshconfig.ts
var JUMP_HOST = { name: "ela", hostName: "ela.cscs.ch" };
var CLUSTERS = ["clariden", "daint", "santis", "eiger", "bristen"];
var SetupRefusedError = class extends errorKind("SetupRefusedError", ExitCode.config, "CSCS_SA_ERR_SETUP_REFUSED") {
};
function parseTarget(spec, flag) {
  const m = /^([a-z0-9][a-z0-9-]*)=([A-Za-z0-9][A-Za-z0-9.-]*)(?::(\d{1,5}))?$/i.exec(spec);
  const port = m?.[3] === void 0 ? void 0 : Number(m[3]);
  if (!m || port !== void 0 && (port < 1 || port > 65535)) throw new UsageError(`${flag} "${spec}" is not NAME=HOSTNAME[:PORT] (e.g. clariden=clariden.alps.cscs.ch:22)`);
  const hostName = m[2].toLowerCase();
  return [m[1].toLowerCase(), port === void 0 ? { hostName } : { hostName, port }];
}
function parseHosts(command2, list, prefix) {
  const clusters = [];
  const targets = {};
  const flag = `${command2}: --hosts`;
  for (const raw of list.split(",").map((h) => h.trim())) {
    if (raw === "") continue;
    const spec = raw.toLowerCase().startsWith(prefix) ? raw.slice(prefix.length) : raw;
    if (spec.includes("=")) {
      const [name2, target] = parseTarget(spec, flag);
      if (name2 === JUMP_HOST.name) throw new UsageError(`${flag}: ${name2} is the jump host, not a cluster`, { fix: `lead it elsewhere with --host ${name2}=HOSTNAME[:PORT]` });
      targets[name2] = target;
      clusters.push(name2);
      continue;
    }
    const name = spec.toLowerCase();
    if (name === JUMP_HOST.name) throw new UsageError(`${flag}: ${name} is the jump host, always in the block: --hosts names the clusters behind it`, { fix: `e.g. --hosts ${CLUSTERS[0]}` });
    if (!CLUSTERS.includes(name)) {
      const meant = didYouMean(name, CLUSTERS);
      throw new UsageError(`${flag}: "${raw}" is not a CSCS cluster (${CLUSTERS.join(", ")})`, {
        fix: meant ? `did you mean ${meant}? (a cluster of another name: NAME=HOSTNAME[:PORT])` : "for a cluster of another name, write NAME=HOSTNAME[:PORT]"
      });
    }
    clusters.push(name);
  }
  if (clusters.length === 0) throw new UsageError(`${flag} "${list}" names no cluster`, { fix: `name at least one: ${CLUSTERS.join(", ")}` });
  return { clusters: [...new Set(clusters)], targets };
}
function parseTargets(specs, names, prefix) {
  const targets = {};
  for (const raw of specs ?? []) {
    const [name, target] = parseTarget(raw.toLowerCase().startsWith(prefix) ? raw.slice(prefix.length) : raw, "setup: --host");
    if (!names.includes(name)) throw new UsageError(`setup: --host names "${name}", which is not a host of the block (${names.join(", ")})`);
    targets[name] = target;
  }
  return targets;
}
function cscsHostName(name) {
  return name === JUMP_HOST.name ? JUMP_HOST.hostName : `${name}.alps.cscs.ch`;
}
function blockTargets(o) {
  const names = [JUMP_HOST.name, ...o.clusters];
  return Object.fromEntries(names.map((name) => [name, o.targets?.[name] ?? { hostName: cscsHostName(name) }]));
}

// src/ssh/knownhosts.ts
var import_node_crypto2 = require("node:crypto");
function fingerprint(blob) {
  return `SHA256:${(0, import_node_crypto2.createHash)("sha256").update(Buffer.from(blob, "base64")).digest("base64").replace(/=+$/, "")}`;
}

// src/action/job.ts
var import_node_child_process = require("node:child_process");
var import_node_fs5 = require("node:fs");
var import_node_path6 = require("node:path");

// src/action/keystore.ts
var import_node_fs3 = require("node:fs");
var import_node_path5 = require("node:path");
function keyStore(runnerTemp, account) {
  const dir = (0, import_node_path5.join)(runnerTemp, "cscs-sa");
  return { dir, configFile: (0, import_node_path5.join)(dir, "config.json"), apiKeyFile: (0, import_node_path5.join)(dir, `api-key-${account}`), bin: (0, import_node_path5.join)(dir, "bin") };
}
function installCommand(store, node, script) {
  const text = `#!/bin/sh
exec ${shellWord("node", node)} ${shellWord("cscs-sa", script)} "$@"
`;
  try {
    makeFolders(store.bin, 448);
    writeFileAtomic((0, import_node_path5.join)(store.bin, "cscs-sa"), text, 493);
  } catch (err) {
    throw new LocalFileError(describeFsError(err, "write", (0, import_node_path5.join)(store.bin, "cscs-sa")), { cause: err });
  }
}
function readConfig(path) {
  try {
    return JSON.parse((0, import_node_fs3.readFileSync)(path, "utf8"));
  } catch (err) {
    if (err.code === "ENOENT") return {};
    throw new LocalFileError(describeFsError(err, "read", path));
  }
}
function writeConfig(path, config) {
  writeFileAtomic(path, `${JSON.stringify(config, null, 2)}
`, 384);
}
function withApiKeyFile(config, account, file) {
  if (account === DEFAULT_ACCOUNT) {
    const { apiKeyFile: _2, ...rest2 } = config;
    return file === void 0 ? rest2 : { ...rest2, apiKeyFile: file };
  }
  const { [account]: _, ...others } = config.accounts ?? {};
  const accounts = file === void 0 ? others : { ...others, [account]: { apiKeyFile: file } };
  const { accounts: __, ...rest } = config;
  return Object.keys(accounts).length > 0 ? { ...rest, accounts } : rest;
}
function storeApiKey(store, account, apiKey) {
  try {
    makeFolders(store.dir, 448);
    const folder = (0, import_node_fs3.lstatSync)(store.dir);
    if (!folder.isDirectory() || folder.uid !== process.getuid?.()) throw new LocalFileError(`${store.dir} is not a folder of ours`, { fix: "remove it" });
    (0, import_node_fs3.chmodSync)(store.dir, 448);
    writeFileAtomic(store.apiKeyFile, `${apiKey}
`, 384);
    writeConfig(store.configFile, withApiKeyFile(readConfig(store.configFile), account, store.apiKeyFile));
  } catch (err) {
    if (err instanceof LocalFileError) throw err;
    throw new LocalFileError(describeFsError(err, "write the API key to", store.dir), { cause: err });
  }
}

// src/action/runner.ts
var import_node_fs4 = require("node:fs");
var import_node_crypto3 = require("node:crypto");
function input(name, env = process.env) {
  return (env[`INPUT_${name.replace(/ /g, "_").toUpperCase()}`] ?? "").trim();
}
function isInputVariable(name) {
  return name.startsWith("INPUT_");
}
function booleanInput(name, env = process.env) {
  const value = input(name, env);
  if (["true", "True", "TRUE"].includes(value)) return true;
  if (["false", "False", "FALSE", ""].includes(value)) return false;
  throw new ConfigError(`input ${name} is "${value}", not true or false`, { fix: `set ${name}: true or ${name}: false` });
}
function escapeData(text) {
  return text.replace(/%/g, "%25").replace(/\r/g, "%0D").replace(/\n/g, "%0A");
}
function escapeProperty(text) {
  return escapeData(text).replace(/:/g, "%3A").replace(/,/g, "%2C");
}
function command(name, data = "", properties = {}) {
  const props = Object.entries(properties).map(([k, v]) => `${k}=${escapeProperty(v)}`).join(",");
  process.stdout.write(`::${name}${props ? ` ${props}` : ""}::${escapeData(data)}
`);
}
function showVerbatim(text) {
  if (!text) return;
  const token = `cscs-sa-${(0, import_node_crypto3.randomBytes)(12).toString("hex")}`;
  process.stdout.write(`::stop-commands::${token}
${text}${text.endsWith("\n") ? "" : "\n"}::${token}::
`);
}
function mask(value) {
  command("add-mask", value);
}
function appendKeyValue(variable, name, value) {
  const file = process.env[variable];
  if (!file) throw new ConfigError(`${variable} is not set: this runs only as a step of a GitHub Actions job`);
  const delimiter = `cscs-sa_${(0, import_node_crypto3.randomBytes)(12).toString("hex")}`;
  (0, import_node_fs4.appendFileSync)(file, `${name}<<${delimiter}
${value}
${delimiter}
`);
}
var exportVariable = (name, value) => appendKeyValue("GITHUB_ENV", name, value);
var setOutput = (name, value) => appendKeyValue("GITHUB_OUTPUT", name, value);
var saveState = (name, value) => appendKeyValue("GITHUB_STATE", name, value);
function addPath(folder) {
  const file = process.env.GITHUB_PATH;
  if (!file) throw new ConfigError("GITHUB_PATH is not set: this runs only as a step of a GitHub Actions job");
  (0, import_node_fs4.appendFileSync)(file, `${folder}
`);
}

// src/action/job.ts
var PLAN_STATE = "plan";
function candidates(key, sshConfig, conf) {
  const paths = keyPaths(key);
  const sshDir = (0, import_node_path6.dirname)(sshConfig);
  return [
    (0, import_node_path6.dirname)(key),
    paths.key,
    paths.publicKey,
    paths.certificate,
    paths.lock,
    `${key}.failed`,
    sshDir,
    (0, import_node_path6.join)(sshDir, "cscs-sa.known_hosts"),
    controlDir(sshConfig),
    conf,
    sshConfig,
    `${sshConfig}.cscs-sa.bak`
  ];
}
function makePlan(account, sshConfigFlag, runnerTemp) {
  const { key } = settingsFrom({ account }, process.env, {});
  const sshConfig = sshConfigPath(sshConfigFlag || void 0);
  const conf = (0, import_node_path6.join)((0, import_node_path6.dirname)(sshConfig), confFile(account));
  const created = [...new Set(candidates(key, sshConfig, conf))].filter((path) => !(0, import_node_fs5.existsSync)(path));
  return { account, sshConfigFlag, store: keyStore(runnerTemp, account), key, conf, created };
}
function cscsSaScript() {
  return (0, import_node_path6.join)((0, import_node_path6.dirname)((0, import_node_fs5.realpathSync)(process.argv[1])), "cscs-sa.cjs");
}
function cscsSa(plan, args, stdin = "") {
  const env = Object.fromEntries(Object.entries(childEnv()).filter(([name]) => !isInputVariable(name)));
  const r = (0, import_node_child_process.spawnSync)(process.execPath, [cscsSaScript(), ...args], { env: { ...env, CSCS_SA_CONFIG: plan.store.configFile }, input: stdin, encoding: "utf8" });
  if (r.error) throw new CscsSaError(`cannot run cscs-sa: ${r.error.message}`);
  return { code: r.status ?? 1, stdout: r.stdout, stderr: r.stderr };
}
var sshConfigArgs = (plan) => plan.sshConfigFlag ? ["--ssh-config", plan.sshConfigFlag] : [];
function failure(what, r) {
  const last = r.stderr.trim().split("\n").filter(Boolean).pop()?.replace(/^cscs-sa: /, "");
  return new CscsSaError(`${what}: ${last ?? `exit code ${r.code}`}`);
}

// src/action/main.ts
function setupArgs(plan) {
  const flag = (name, value) => value ? [`--${name}`, value] : [];
  return [
    "setup",
    ...plan.account === "sa" ? [] : ["--account", plan.account],
    ...flag("hosts", input("hosts")),
    ...flag("user", input("user")),
    ...flag("env", input("env")),
    ...booleanInput("multiplex") ? ["--multiplex"] : [],
    ...booleanInput("trust-on-first-use") ? ["--trust-on-first-use"] : [],
    ...hostLines().flatMap((line) => ["--host", line]),
    ...sshConfigArgs(plan),
    "--known-hosts",
    "-"
  ];
}
var hostLines = () => input("host").split(/\r?\n/).map((line) => line.trim()).filter(Boolean);
function fingerprint2(line) {
  const [names, type, blob] = line.trim().split(/\s+/);
  if (!names || !type || !blob || names.startsWith("#")) return void 0;
  return `${names} ${type} ${fingerprint(blob)}`;
}
async function main() {
  const apiKey = input("api-key");
  if (apiKey) mask(apiKey);
  if (!apiKey) throw new UsageError("input api-key is empty", { fix: "set api-key: ${{ secrets.CSCS_API_KEY }} (a repository secret holding the service account's API key)" });
  const knownHosts = input("known-hosts");
  const trustOnFirstUse = booleanInput("trust-on-first-use");
  if (!knownHosts && !trustOnFirstUse) {
    throw new UsageError("input known-hosts is empty, so ssh would refuse the CSCS hosts", {
      fix: "set known-hosts: ${{ vars.CSCS_SA_KNOWN_HOSTS }}, the lines `cscs-sa known-hosts` printed on a trusted machine"
    });
  }
  const runnerTemp = process.env.RUNNER_TEMP;
  if (!runnerTemp) throw new UsageError("RUNNER_TEMP is not set: this runs only as a step of a GitHub Actions job");
  const account = input("account") || "sa";
  const plan = makePlan(account, input("ssh-config"), runnerTemp);
  const ours = process.env.CSCS_SA_CONFIG;
  if (ours && ours !== plan.store.configFile) {
    throw new UsageError(`CSCS_SA_CONFIG is set to ${ours}, but the action names a config file of its own`, { fix: "leave CSCS_SA_CONFIG unset in the steps that use the action" });
  }
  const prefix = hostPrefix(account);
  const listed = parseHosts("input hosts", input("hosts") || CLUSTERS.join(","), prefix);
  const clusters = listed.clusters;
  const targets = blockTargets({ clusters, targets: { ...listed.targets, ...parseTargets(hostLines(), [JUMP_HOST.name, ...clusters], prefix) } });
  saveState(PLAN_STATE, JSON.stringify(plan));
  storeApiKey(plan.store, account, apiKey);
  installCommand(plan.store, process.execPath, cscsSaScript());
  exportVariable("CSCS_SA_CONFIG", plan.store.configFile);
  addPath(plan.store.bin);
  command("group", `cscs-sa: ${clusters.map((c) => `${prefix}${c}`).join(", ")} ready`);
  try {
    const setup = cscsSa(plan, setupArgs(plan), `${knownHosts}
`);
    showVerbatim(setup.stdout + setup.stderr);
    if (setup.code !== 0) throw failure("setup failed", setup);
    const accountArgs = account === "sa" ? [] : ["--account", account];
    const refresh = cscsSa(plan, ["match", ...accountArgs]);
    if (refresh.code !== 0) throw failure("no certificate", refresh);
    const [status] = JSON.parse(cscsSa(plan, ["status", "--json", ...accountArgs]).stdout);
    const user = input("user") || status.principals[0] || "";
    let pins = [];
    try {
      pins = (0, import_node_fs6.readFileSync)((0, import_node_path7.join)((0, import_node_path7.dirname)(plan.conf), "cscs-sa.known_hosts"), "utf8").split("\n").flatMap((l) => fingerprint2(l) ?? []);
    } catch {
    }
    const route = (name) => `${prefix}${name} -> ${targets[name].hostName}${targets[name].port ? `:${targets[name].port}` : ""}`;
    const lines = [
      `hosts:        ${clusters.map(route).join(", ")} (through ${route(JUMP_HOST.name)})`,
      `login name:   ${user}`,
      `certificate:  ${status.certificate}, valid ${status.validAfter} .. ${status.validBefore} (each ssh renews it when it is near expiry)`,
      `host keys:    ${pins.length ? pins.join("\n              ") : "not pinned (trust-on-first-use)"}`,
      `cscs-sa:      ${(0, import_node_path7.join)(plan.store.bin, "cscs-sa")} (on PATH for the next steps)`
    ];
    showVerbatim(lines.join("\n"));
    setOutput("host", `${prefix}${clusters[0]}`);
    setOutput("hosts", clusters.map((c) => `${prefix}${c}`).join(" "));
    setOutput("user", user);
    setOutput("key", status.key);
    setOutput("certificate", status.certificate);
  } finally {
    command("endgroup");
  }
}
main().catch((err) => {
  const line = err instanceof CscsSaError ? err.line : `unexpected error: ${err instanceof Error ? err.message : String(err)}`;
  command("error", line, { title: "cscs-sa" });
  process.exitCode = 1;
});
