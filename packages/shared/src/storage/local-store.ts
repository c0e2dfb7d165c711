import { createReadStream, type Dirent, type Stats } from 'node:fs';
import { copyFile, link, mkdir, open, readdir, readFile, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join, resolve } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { NotFoundError, StorageError, VecmillError } from '../errors.js';
import { describeKeyProblem } from './location.js';
import type { ObjectInfo, ObjectStore, ReadRangeOptions } from './object-store.js';
import type { ReadBufferLease } from './read-buffer-pool.js';

/** Read streams hand out chunks this large: big enough that per-chunk overhead vanishes on huge TSVs. */
const READ_CHUNK_BYTES = 1 << 20;

/** Names of in-progress writes, `.{name}.tmp-{pid}-{random}`: listings skip them. */
const TEMP_NAME = /^\..+\.tmp-\d+-[0-9a-f]{12}$/;

/**
 * An ObjectStore over a folder. Writes go to a temp file in the target folder, are fsynced and then
 * renamed (put) or hard-linked (putIfAbsent) into place, so readers and other processes only ever
 * see complete files, and a crash leaves at most a hidden temp file that listings ignore.
 * Symlinked files are followed; symlinked folders are not descended into (no cycles).
 */
export class LocalStore implements ObjectStore {
  readonly root: string;
  readonly description: string;

  constructor(root: string) {
    this.root = resolve(root);
    this.description = this.root.endsWith('/') ? this.root : `${this.root}/`;
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    this.checkKey(prefix, true);
    yield* this.walk(prefix.slice(0, prefix.lastIndexOf('/') + 1), prefix);
  }

  async stat(key: string): Promise<ObjectInfo> {
    const path = this.localPath(key);
    const stats = await stat(path).catch((err: unknown) => {
      throw fsError(err, 'read', key, path, true);
    });
    if (!stats.isFile()) {
      throw new NotFoundError(`not a file: ${path} is a folder or a special file — pass a file, or a folder as an input folder`, { key, path });
    }
    return toInfo(key, stats);
  }

  async exists(key: string): Promise<boolean> {
    try {
      await this.stat(key);
      return true;
    } catch (err) {
      if (err instanceof NotFoundError) return false;
      throw err;
    }
  }

  readRange(key: string, start: number, end: number, options: ReadRangeOptions = {}): Readable {
    checkRange(start, end);
    const path = this.localPath(key);
    if (end <= start) return Readable.from([]);
    if (options.buffers !== undefined) return Readable.from(readInto(path, key, start, end, options.buffers), { objectMode: false });
    const out = new PassThrough({ highWaterMark: READ_CHUNK_BYTES });
    const source = createReadStream(path, { start, end: end - 1, highWaterMark: READ_CHUNK_BYTES });
    source.on('error', (err) => out.destroy(fsError(err, 'read', key, path, true)));
    out.on('close', () => source.destroy());
    source.pipe(out);
    return out;
  }

  async read(key: string): Promise<Buffer> {
    const path = this.localPath(key);
    return readFile(path).catch((err: unknown) => {
      throw fsError(err, 'read', key, path, true);
    });
  }

  async put(key: string, body: Buffer | Uint8Array | Readable): Promise<void> {
    const path = this.localPath(key);
    const temp = await this.writeTemp(key, path, body);
    try {
      await rename(temp, path).catch((err: unknown) => {
        throw fsError(err, 'write', key, path, false);
      });
    } catch (err) {
      await rm(temp, { force: true });
      throw err;
    }
    await syncFolder(dirname(path), key);
  }

  async putIfAbsent(key: string, body: Buffer | Uint8Array): Promise<boolean> {
    const path = this.localPath(key);
    const temp = await this.writeTemp(key, path, body);
    try {
      await link(temp, path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw fsError(err, 'write', key, path, false);
    } finally {
      await rm(temp, { force: true });
    }
    await syncFolder(dirname(path), key);
    return true;
  }

  async copy(sourceKey: string, targetKey: string): Promise<void> {
    const source = this.localPath(sourceKey);
    const path = this.localPath(targetKey);
    if (source === path) {
      await this.stat(sourceKey);
      return;
    }
    const folder = dirname(path);
    await mkdir(folder, { recursive: true }).catch(async (err: unknown) => {
      throw fsError(await realMkdirError(folder, err), 'write', targetKey, folder, false);
    });
    const temp = join(folder, `.${basename(path)}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
    try {
      // A hard link shares the (immutable, already fsynced) bytes; another file system needs a real copy.
      await link(source, temp).catch(async (err: unknown) => {
        if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
        await copyFile(source, temp);
      });
      await rename(temp, path);
    } catch (err) {
      await rm(temp, { force: true });
      // The target's folder exists (made above), so a missing entry is the source.
      throw (err as NodeJS.ErrnoException).code === 'ENOENT' ? fsError(err, 'read', sourceKey, source, true) : fsError(err, 'write', targetKey, path, false);
    }
    await syncFolder(folder, targetKey);
  }

  async delete(key: string): Promise<void> {
    const path = this.localPath(key);
    await rm(path, { force: true }).catch((err: unknown) => {
      throw fsError(err, 'delete', key, path, false);
    });
  }

  localPath(key: string): string {
    this.checkKey(key, false);
    return join(this.root, ...key.split('/'));
  }

  private checkKey(key: string, asPrefix: boolean): void {
    const problem = describeKeyProblem(key, asPrefix);
    if (problem !== undefined) {
      throw new StorageError(
        `invalid object key ${JSON.stringify(key)} for ${this.description}: ${problem} — keys are /-separated relative paths without . or .. segments`,
        { key: JSON.stringify(key), store: this.description },
      );
    }
  }

  /** Writes `body` to a fresh temp file beside `path`, fsynced; returns the temp path. Leaves nothing behind on failure. */
  private async writeTemp(key: string, path: string, body: Buffer | Uint8Array | Readable): Promise<string> {
    const folder = dirname(path);
    await mkdir(folder, { recursive: true }).catch(async (err: unknown) => {
      throw fsError(await realMkdirError(folder, err), 'write', key, folder, false);
    });
    const temp = join(folder, `.${basename(path)}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
    const onFsError = (err: unknown): never => {
      throw fsError(err, 'write', key, path, false);
    };
    let handle: FileHandle | undefined;
    try {
      handle = await open(temp, 'wx').catch(onFsError);
      if (body instanceof Readable) {
        for await (const chunk of body as AsyncIterable<Buffer | string>) {
          await handle.write(typeof chunk === 'string' ? Buffer.from(chunk) : chunk).catch(onFsError);
        }
      } else {
        await handle.writeFile(body).catch(onFsError);
      }
      await handle.sync().catch(onFsError);
      const closing = handle;
      handle = undefined;
      await closing.close().catch(onFsError);
      return temp;
    } catch (err) {
      await handle?.close().catch(() => undefined);
      await rm(temp, { force: true });
      throw err;
    }
  }

  /**
   * Yields files below `dirKey` whose key starts with `prefix`, in ascending UTF-8 byte order of
   * the key. Folders sort as `name/`, which is exactly where their keys fall among their siblings
   * (`a-b` < `a/x` because '-' < '/'), so the walk streams in order without collecting everything.
   */
  private async *walk(dirKey: string, prefix: string): AsyncGenerator<ObjectInfo> {
    const folder = join(this.root, ...dirKey.split('/'));
    let entries: Dirent[];
    try {
      entries = await readdir(folder, { withFileTypes: true });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return;
      throw fsError(err, 'list', dirKey, folder, false);
    }
    const sorted = entries
      .filter((e) => !TEMP_NAME.test(e.name))
      .map((e) => ({ entry: e, order: Buffer.from(e.isDirectory() ? `${e.name}/` : e.name) }))
      .sort((a, b) => Buffer.compare(a.order, b.order));
    for (const { entry } of sorted) {
      const key = dirKey + entry.name;
      if (entry.isDirectory()) {
        const child = `${key}/`;
        if (child.startsWith(prefix) || prefix.startsWith(child)) yield* this.walk(child, prefix);
      } else if ((entry.isFile() || entry.isSymbolicLink()) && key.startsWith(prefix)) {
        const path = join(folder, entry.name);
        const stats = await stat(path).catch((err: unknown) => {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
          throw fsError(err, 'list', key, path, false);
        });
        if (stats?.isFile() === true) yield toInfo(key, stats);
      }
    }
  }
}

function toInfo(key: string, stats: Stats): ObjectInfo {
  return { key, size: stats.size, etag: `${stats.mtimeMs}-${stats.size}`, modified: stats.mtime.toISOString() };
}

function checkRange(start: number, end: number): void {
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < 0) {
    throw new RangeError(`readRange needs non-negative integer offsets, got [${start}, ${end})`);
  }
}

/**
 * Node 20's recursive mkdir reports ENOENT for a folder it cannot create on a read-only or full
 * filesystem; creating the missing folders one by one reveals the real cause (EROFS, ENOSPC,
 * EACCES) for the message.
 */
async function realMkdirError(folder: string, err: unknown): Promise<unknown> {
  if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return err;
  const missing: string[] = [];
  for (let dir = folder; ; dir = dirname(dir)) {
    if ((await stat(dir).catch(() => undefined)) !== undefined || dirname(dir) === dir) break;
    missing.unshift(dir);
  }
  for (const dir of missing) {
    try {
      await mkdir(dir);
    } catch (inner) {
      return inner;
    }
  }
  return err;
}

/** Makes a completed rename or link durable: the folder entry itself must reach the disk too. */
async function syncFolder(folder: string, key: string): Promise<void> {
  const handle = await open(folder, 'r').catch((err: unknown) => {
    throw fsError(err, 'write', key, folder, false);
  });
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Bytes `[start, end)` of the file (fewer when it is shorter), read into the lease's buffers, one
 * read at a time as the consumer pulls: no buffer is filled that the reader has not asked for.
 */
async function* readInto(path: string, key: string, start: number, end: number, buffers: ReadBufferLease): AsyncGenerator<Buffer> {
  const handle = await open(path, 'r').catch((err: unknown) => {
    throw fsError(err, 'read', key, path, true);
  });
  try {
    for (let position = start; position < end; ) {
      const length = Math.min(buffers.bufferBytes, end - position);
      const buffer = buffers.take(position, length);
      const { bytesRead } = await handle.read(buffer, 0, length, position).catch((err: unknown) => {
        throw fsError(err, 'read', key, path, true);
      });
      if (bytesRead === 0) return;
      position += bytesRead;
      yield bytesRead === length ? buffer : buffer.subarray(0, bytesRead);
    }
  } finally {
    await handle.close();
  }
}

/**
 * Turns a Node fs error into one actionable line. ENOENT is NotFoundError only on reads; on a write
 * it means the folder vanished underneath us, which is a storage failure.
 */
function fsError(err: unknown, action: 'read' | 'write' | 'list' | 'delete', key: string, path: string, reading: boolean): VecmillError {
  if (err instanceof VecmillError) return err;
  const code = (err as NodeJS.ErrnoException).code ?? 'EUNKNOWN';
  const context = { key, path, errno: code };
  const fail = `cannot ${action} ${path}`;
  switch (code) {
    case 'ENOENT':
    case 'ENOTDIR':
      if (reading) return new NotFoundError(`not found: ${path} — check the path`, context, { cause: err });
      if (code === 'ENOENT') {
        return new StorageError(`${fail}: its folder disappeared — check that nothing else deletes the output folder`, context, { cause: err });
      }
      return new StorageError(`${fail}: part of the path is a file, not a folder — remove that file or choose another folder`, context, { cause: err });
    case 'ENOSPC':
    case 'EDQUOT':
      return new StorageError(`${fail}: no space left on the device — free disk space or choose another folder`, context, { cause: err });
    case 'EACCES':
    case 'EPERM':
      return new StorageError(`${fail}: permission denied — fix the folder's permissions or choose another folder`, context, { cause: err });
    case 'EROFS':
      return new StorageError(`${fail}: the file system is read-only — choose a writable folder`, context, { cause: err });
    case 'EISDIR':
      return new StorageError(`${fail}: it is a folder, not a file — remove the folder or choose another name`, context, { cause: err });
    case 'EMFILE':
    case 'ENFILE':
    case 'EAGAIN':
    case 'EBUSY':
      return new StorageError(`${fail}: ${code} (too many open files or a busy device) — lower concurrency or raise the open-file limit`, context, {
        cause: err,
        transient: true,
      });
    default:
      return new StorageError(`${fail}: ${code} — check the disk and the folder`, context, { cause: err });
  }
}
