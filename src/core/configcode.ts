/**
 * A config file that is code (.js, .cjs, .mjs), run from the text read through the descriptor that
 * was judged (src/base/trust.ts), never imported again by name: between a check and an import by
 * path the file could be another. Node's loaders take only a path, so the text is compiled here:
 * CommonJS as `require` would (its own `require`, `module`, `__filename`), an ES module from a
 * data: URL (node: built-ins can be imported, relative paths cannot: there is no folder to resolve
 * them against, and a file they named would not have been judged). A `.js` file is CommonJS
 * unless it has ES module syntax, as Node 22 detects it.
 */
import { Module } from 'node:module';
import { dirname, extname } from 'node:path';

interface CompilableModule {
  filename: string;
  paths: string[];
  exports: unknown;
  _compile(text: string, filename: string): void;
}

const ES_SYNTAX = /Cannot use import statement outside a module|Unexpected token 'export'|Cannot use 'import\.meta' outside a module|await is only valid/;

function runCommonJs(path: string, text: string): unknown {
  const mod = new Module(path) as unknown as CompilableModule;
  mod.filename = path;
  mod.paths = (Module as unknown as { _nodeModulePaths(dir: string): string[] })._nodeModulePaths(dirname(path));
  mod._compile(text, path);
  return mod.exports;
}

async function runEsModule(text: string): Promise<unknown> {
  const url = `data:text/javascript;base64,${Buffer.from(text).toString('base64')}`;
  return ((await import(url)) as { default?: unknown }).default;
}

/** The settings a code config file exports (module.exports, or the default export). */
export async function runConfigCode(path: string, text: string): Promise<unknown> {
  const ext = extname(path);
  if (ext === '.mjs') return runEsModule(text);
  if (ext === '.cjs') return runCommonJs(path, text);
  try {
    return runCommonJs(path, text);
  } catch (err) {
    // A syntax error is found before any of the file runs: trying it as an ES module runs it once.
    if (err instanceof SyntaxError && ES_SYNTAX.test(err.message)) return runEsModule(text);
    throw err;
  }
}
