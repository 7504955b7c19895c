"use strict";

// src/action/post.ts
var import_node_fs4 = require("node:fs");

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

// src/ssh/multiplex.ts
var import_node_os3 = require("node:os");
var import_node_path3 = require("node:path");

// src/core/config.ts
var import_node_os = require("node:os");
var import_node_path = require("node:path");

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

// src/core/certificate.ts
var FOREVER = 2n ** 64n - 1n;

// src/core/config.ts
function expandHome(path, from = path) {
  const tilde = /^~([^/]*)(\/.*)?$/.exec(path);
  if (!tilde) return (0, import_node_path.resolve)(path);
  const [, name, rest] = tilde;
  if (name !== "" && name !== (0, import_node_os.userInfo)().username) {
    throw new ConfigError(`${from} names the home folder of user ${name}, which cscs-sa does not look up`, { fix: "write the absolute path (~/ is your own home folder)" });
  }
  const home = name === "" ? (0, import_node_os.homedir)() : (0, import_node_os.userInfo)().homedir;
  return rest ? (0, import_node_path.join)(home, rest) : home;
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

// src/base/fsutil.ts
var import_node_fs = require("node:fs");
var import_node_path2 = require("node:path");
var import_node_os2 = require("node:os");
var import_node_crypto = require("node:crypto");
var HOST_TAG = (0, import_node_crypto.createHash)("sha256").update((0, import_node_os2.hostname)()).digest("hex").slice(0, 8);
function tempPrefix(path) {
  return `${(0, import_node_path2.basename)(path)}.tmp-`;
}
function tempPath(path) {
  return (0, import_node_path2.join)((0, import_node_path2.dirname)(path), `${tempPrefix(path)}${HOST_TAG}.${process.pid}.${(0, import_node_crypto.randomBytes)(4).toString("hex")}`);
}
function writeFileAtomic(path, data, mode) {
  const tmp = tempPath(path);
  const fd = (0, import_node_fs.openSync)(tmp, "wx", mode);
  try {
    try {
      (0, import_node_fs.writeSync)(fd, data);
      (0, import_node_fs.fsyncSync)(fd);
    } finally {
      (0, import_node_fs.closeSync)(fd);
    }
    (0, import_node_fs.renameSync)(tmp, path);
  } catch (err) {
    try {
      (0, import_node_fs.unlinkSync)(tmp);
    } catch {
    }
    throw err;
  }
  fsyncDir((0, import_node_path2.dirname)(path));
}
function fsyncDir(dir) {
  try {
    const fd = (0, import_node_fs.openSync)(dir, "r");
    try {
      (0, import_node_fs.fsyncSync)(fd);
    } finally {
      (0, import_node_fs.closeSync)(fd);
    }
  } catch {
  }
}

// src/ssh/multiplex.ts
var SUN_PATH = 104;
var SOCKET_NAME = "/".length + 40 + ".".length + 16;
var MAX_CONTROL_DIR = SUN_PATH - 1 - SOCKET_NAME;
function sshConfigPath(flag) {
  return flag ? expandHome(flag) : (0, import_node_path3.join)((0, import_node_os3.userInfo)().homedir, ".ssh", "config");
}
function controlDir(sshConfig) {
  return (0, import_node_path3.join)((0, import_node_path3.dirname)(sshConfig), "cscs-sa-cm");
}

// src/action/job.ts
var import_node_child_process = require("node:child_process");
var import_node_fs3 = require("node:fs");
var import_node_path5 = require("node:path");

// src/action/keystore.ts
var import_node_fs2 = require("node:fs");
var import_node_path4 = require("node:path");
function readConfig(path) {
  try {
    return JSON.parse((0, import_node_fs2.readFileSync)(path, "utf8"));
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
function forgetApiKey(store, account) {
  const removed = [];
  try {
    if ((0, import_node_fs2.lstatSync)(store.apiKeyFile, { throwIfNoEntry: false })) {
      (0, import_node_fs2.rmSync)(store.apiKeyFile);
      removed.push(store.apiKeyFile);
    }
    const config = withApiKeyFile(readConfig(store.configFile), account, void 0);
    if (Object.keys(config).length > 0) {
      writeConfig(store.configFile, config);
      return removed;
    }
    for (const file of [store.configFile, (0, import_node_path4.join)(store.bin, "cscs-sa")]) {
      if (!(0, import_node_fs2.lstatSync)(file, { throwIfNoEntry: false })) continue;
      (0, import_node_fs2.rmSync)(file);
      removed.push(file);
    }
    for (const folder of [store.bin, store.dir]) {
      if (!(0, import_node_fs2.lstatSync)(folder, { throwIfNoEntry: false })) continue;
      (0, import_node_fs2.rmdirSync)(folder);
      removed.push(folder);
    }
  } catch (err) {
    const code = err.code;
    if (code !== "ENOTEMPTY" && code !== "ENOENT") throw new LocalFileError(describeFsError(err, "remove", store.dir), { cause: err });
  }
  return removed;
}

// src/action/runner.ts
var import_node_crypto2 = require("node:crypto");
function isInputVariable(name) {
  return name.startsWith("INPUT_");
}
function escapeData(text2) {
  return text2.replace(/%/g, "%25").replace(/\r/g, "%0D").replace(/\n/g, "%0A");
}
function escapeProperty(text2) {
  return escapeData(text2).replace(/:/g, "%3A").replace(/,/g, "%2C");
}
function command(name, data = "", properties = {}) {
  const props = Object.entries(properties).map(([k, v]) => `${k}=${escapeProperty(v)}`).join(",");
  process.stdout.write(`::${name}${props ? ` ${props}` : ""}::${escapeData(data)}
`);
}
function showVerbatim(text2) {
  if (!text2) return;
  const token = `cscs-sa-${(0, import_node_crypto2.randomBytes)(12).toString("hex")}`;
  process.stdout.write(`::stop-commands::${token}
${text2}${text2.endsWith("\n") ? "" : "\n"}::${token}::
`);
}
var readState = (name) => process.env[`STATE_${name}`] ?? "";

// src/action/job.ts
var PLAN_STATE = "plan";
function cscsSaScript() {
  return (0, import_node_path5.join)((0, import_node_path5.dirname)((0, import_node_fs3.realpathSync)(process.argv[1])), "cscs-sa.cjs");
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

// src/action/post.ts
function post(plan) {
  const problems = [];
  const attempt = (part) => {
    try {
      part();
    } catch (err) {
      problems.push(err instanceof CscsSaError ? err.line : err instanceof Error ? err.message : String(err));
    }
  };
  const accountArgs = plan.account === "sa" ? [] : ["--account", plan.account];
  const sshConfig = sshConfigPath(plan.sshConfigFlag || void 0);
  const keyCreated = plan.created.includes(plan.key);
  const show = (r) => showVerbatim((r.stdout + r.stderr).split("\n").filter((line) => !(keyCreated && /^the key pair .* stays/.test(line))).join("\n"));
  attempt(() => {
    if (!(0, import_node_fs4.lstatSync)(controlDir(sshConfig), { throwIfNoEntry: false })) return;
    const r = cscsSa(plan, ["close", ...sshConfigArgs(plan)]);
    show(r);
    if (r.code !== 0) throw failure("close failed", r);
  });
  if (plan.created.includes(plan.conf)) {
    attempt(() => {
      const r = cscsSa(plan, ["setup", "--remove", ...accountArgs, ...sshConfigArgs(plan)]);
      show(r);
      if (r.code !== 0) throw failure("setup --remove failed", r);
    });
  }
  for (const path of [...plan.created].reverse()) {
    attempt(() => {
      const stats = (0, import_node_fs4.lstatSync)(path, { throwIfNoEntry: false });
      if (!stats) return;
      if (path === sshConfig && (0, import_node_fs4.readFileSync)(path, "utf8").trim() !== "") return;
      if (stats.isDirectory()) {
        try {
          (0, import_node_fs4.rmdirSync)(path);
        } catch (err) {
          if (err.code === "ENOTEMPTY") return void process.stdout.write(`kept ${path}: a later step put files there
`);
          throw err;
        }
      } else {
        (0, import_node_fs4.rmSync)(path);
      }
      process.stdout.write(`removed ${path}
`);
    });
  }
  attempt(() => {
    for (const path of forgetApiKey(plan.store, plan.account)) process.stdout.write(`removed ${path}
`);
  });
  return problems;
}
var text = readState(PLAN_STATE);
if (text) {
  const plan = JSON.parse(text);
  command("group", `cscs-sa: cleaning up account ${plan.account}`);
  const problems = post(plan);
  command("endgroup");
  for (const problem of problems) command("error", problem, { title: "cscs-sa cleanup" });
  if (problems.length > 0) process.exitCode = 1;
}
