// A directory under the temp dir that only this user can write. Workers load code from such
// directories (the stripped worker modules in development, V8's code cache): code another local
// user planted there would run inside wasmlet. The shared name is reused across processes when it
// is this user's own directory and nobody else can write it; otherwise a fresh one is made.
import { lstatSync, mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export function privateTempDir(name: string): string {
  const uid = process.getuid?.();
  const shared = join(tmpdir(), uid === undefined ? name : `${name}-${uid}`);
  try {
    mkdirSync(shared, { recursive: true, mode: 0o700 });
    const info = lstatSync(shared);
    if (info.isDirectory() && (uid === undefined || info.uid === uid) && (info.mode & 0o022) === 0)
      return shared;
  } catch {
    // Not creatable (a file in the way, no permission): a fresh directory will do.
  }
  return mkdtempSync(join(tmpdir(), `${name}-`));
}
