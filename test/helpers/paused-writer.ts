/**
 * Run as a script: `paused-writer.ts atomic|in-place PATH ROUNDS`. Rewrites PATH with its own
 * content ROUNDS times, with every write(2) paused for 40 ms in the middle of the data, so that
 * a concurrent reader gets a long, certain look at whatever file the bytes are going to:
 * `atomic` through src/base/fsutil.ts writeFileAtomic (a temp file, then a rename), `in-place` as a
 * plain open-and-write would. The fault is injected here, in the test, never in the product.
 */
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';

const [mode, path, rounds] = process.argv.slice(2) as [string, string, string];
const realWriteSync = fs.writeSync;
const pause = new Int32Array(new SharedArrayBuffer(4));
(fs as { writeSync: unknown }).writeSync = (fd: number, data: string) => {
  const half = Math.floor(data.length / 2);
  realWriteSync(fd, data.slice(0, half));
  Atomics.wait(pause, 0, 0, 40);
  realWriteSync(fd, data.slice(half));
  return data.length;
};
// ES modules importing { writeSync } from 'node:fs' see the patched function only after this.
syncBuiltinESMExports();
const { writeFileAtomic } = await import('../../src/base/fsutil.ts');

const content = fs.readFileSync(path, 'utf8');
for (let i = 0; i < Number(rounds); i++) {
  if (mode === 'atomic') {
    writeFileAtomic(path, content, 0o644);
  } else {
    const fd = fs.openSync(path, 'w');
    fs.writeSync(fd, content);
    fs.closeSync(fd);
  }
  Atomics.wait(pause, 0, 0, 10);
}
