import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, relative, sep } from 'node:path';

/** One model repo the fake hub serves: every file under `dir`, at commit `sha`. */
export interface FakeHubRepo {
  readonly id: string;
  readonly dir: string;
  readonly sha: string;
  /** Branch and tag names pointing at `sha`. Default ["main"]. */
  readonly refs?: readonly string[];
}

/** How the fake hub behaves; every fault is off by default so a test turns on exactly the one it checks. */
export interface FakeHubOptions {
  readonly repos: readonly FakeHubRepo[];
  /** When set, API and resolve requests without `Authorization: Bearer {token}` get 401, as for a gated repo. */
  readonly token?: string;
  /** Serve LFS files (*.onnx) from a second server on another port, so the redirect crosses origins. */
  readonly separateCdn?: boolean;
  /** Whether the file list honours `?blobs=true` with sizes and LFS sha256s (some mirrors do not). Default true. */
  readonly listSizes?: boolean;
  /** The first body response for each of these files sends only `dropAfterBytes` bytes, then drops the connection. */
  readonly dropFiles?: readonly string[];
  readonly dropAfterBytes?: number;
  /** Sizes to announce (listing and X-Linked-Size) instead of the real ones. */
  readonly announcedSizes?: Readonly<Record<string, number>>;
  /** Files served with their first byte flipped: right size, wrong sha256. */
  readonly corruptFiles?: readonly string[];
  /** Answer Range requests with the whole file (200), as some proxies do. */
  readonly ignoreRange?: boolean;
  /** The first this-many requests get 503. */
  readonly failFirst?: number;
}

/** One request as the fake hub saw it, for assertions on what the client sent and received. */
export interface FakeHubRequest {
  readonly server: 'hub' | 'cdn';
  readonly kind: 'api' | 'resolve' | 'cdn' | 'other';
  readonly url: string;
  readonly file: string | undefined;
  readonly range: string | undefined;
  readonly authorization: string | undefined;
  readonly status: number;
  /** Body bytes actually written (less than the file when the connection was dropped). */
  readonly bodyBytes: number;
}

export interface FakeHub {
  /** Base URL to pass as the endpoint (HF_ENDPOINT). */
  readonly endpoint: string;
  readonly requests: FakeHubRequest[];
  /** Body bytes sent for `file` (all files when omitted), over every request. */
  bytesSent(file?: string): number;
  close(): Promise<void>;
}

interface RepoFile {
  readonly bytes: Buffer;
  readonly sha256: string;
  /** git's blob sha1, which the hub sends as the ETag of small (non-LFS) files. */
  readonly gitSha1: string;
}

/**
 * A small Hugging Face hub on 127.0.0.1: the revision API, `resolve` URLs that redirect LFS files
 * to a "CDN" path with X-Linked-Size/X-Linked-Etag like the real hub, Range requests, bearer
 * tokens and injectable faults. It speaks real HTTP so the client's fetch, redirects and
 * resumption are exercised end to end.
 */
export async function startFakeHub(options: FakeHubOptions): Promise<FakeHub> {
  const repos = new Map(options.repos.map((r) => [r.id, { repo: r, files: readRepo(r.dir) }]));
  const requests: FakeHubRequest[] = [];
  const dropped = new Set<string>();
  let failuresLeft = options.failFirst ?? 0;
  let cdnBase = '';

  const handle = (server: 'hub' | 'cdn') => (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://fake');
    const record = { server, url: url.pathname + url.search, range: req.headers.range, authorization: req.headers.authorization };
    const finish = (kind: FakeHubRequest['kind'], file: string | undefined, status: number, headers: Record<string, string | number>, body?: Buffer, dropAfter?: number): void => {
      const sent = body === undefined ? 0 : Math.min(body.length, dropAfter ?? body.length);
      requests.push({ ...record, kind, file, status, bodyBytes: sent });
      res.writeHead(status, headers);
      if (body === undefined) {
        res.end();
      } else if (dropAfter !== undefined && dropAfter < body.length) {
        res.write(body.subarray(0, dropAfter), () => res.destroy());
      } else {
        res.end(body);
      }
    };

    if (failuresLeft > 0) {
      failuresLeft -= 1;
      finish('other', undefined, 503, {});
      return;
    }
    const api = /^\/api\/models\/([^/]+\/[^/]+)\/revision\/([^/]+)$/.exec(url.pathname);
    const resolve = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
    const cdn = /^\/cdn\/([^/]+\/[^/]+)\/([0-9a-f]{40})\/(.+)$/.exec(url.pathname);
    const kind: FakeHubRequest['kind'] = api !== null ? 'api' : resolve !== null ? 'resolve' : cdn !== null ? 'cdn' : 'other';
    const match = api ?? resolve ?? cdn;
    if (match === null || match[1] === undefined || match[2] === undefined) {
      finish('other', undefined, 404, {});
      return;
    }
    if (kind !== 'cdn' && options.token !== undefined && req.headers.authorization !== `Bearer ${options.token}`) {
      finish(kind, undefined, 401, { 'X-Error-Code': 'GatedRepo' });
      return;
    }
    const entry = repos.get(match[1]);
    if (entry === undefined) {
      finish(kind, undefined, 404, { 'X-Error-Code': 'RepoNotFound' });
      return;
    }
    const revision = decodeURIComponent(match[2]);
    if (revision !== entry.repo.sha && !(entry.repo.refs ?? ['main']).includes(revision)) {
      finish(kind, undefined, 404, { 'X-Error-Code': 'RevisionNotFound' });
      return;
    }
    const announced = (path: string, file: RepoFile): number => options.announcedSizes?.[path] ?? file.bytes.length;
    const lfs = (path: string): boolean => path.endsWith('.onnx');

    if (kind === 'api') {
      const blobs = url.searchParams.get('blobs') === 'true' && options.listSizes !== false;
      const siblings = [...entry.files].map(([path, file]) =>
        blobs
          ? { rfilename: path, size: announced(path, file), ...(lfs(path) ? { lfs: { sha256: file.sha256, size: announced(path, file) } } : {}) }
          : { rfilename: path },
      );
      finish('api', undefined, 200, { 'Content-Type': 'application/json' }, Buffer.from(JSON.stringify({ id: entry.repo.id, sha: entry.repo.sha, siblings })));
      return;
    }

    const path = (match[3] ?? '').split('/').map(decodeURIComponent).join('/');
    const file = entry.files.get(path);
    if (file === undefined) {
      finish(kind, path, 404, { 'X-Error-Code': 'EntryNotFound' });
      return;
    }
    if (kind === 'resolve' && lfs(path)) {
      const location = `${server === 'hub' && options.separateCdn === true ? cdnBase : ''}/cdn/${entry.repo.id}/${entry.repo.sha}/${match[3] ?? ''}`;
      finish('resolve', path, 302, {
        Location: location,
        'X-Repo-Commit': entry.repo.sha,
        'X-Linked-Size': announced(path, file),
        'X-Linked-Etag': `"${file.sha256}"`,
        ETag: `"${file.sha256}"`,
      });
      return;
    }

    let body = file.bytes;
    if (options.corruptFiles?.includes(path) === true) {
      body = Buffer.from(body);
      body[0] = (body[0] ?? 0) ^ 0xff;
    }
    const dropAfter = options.dropFiles?.includes(path) === true && !dropped.has(path) ? options.dropAfterBytes ?? 0 : undefined;
    if (dropAfter !== undefined) dropped.add(path);
    const headers: Record<string, string | number> = { 'Accept-Ranges': 'bytes', 'X-Repo-Commit': entry.repo.sha };
    if (kind === 'resolve') headers['ETag'] = `"${file.gitSha1}"`;
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (range?.[1] !== undefined && options.ignoreRange !== true) {
      const start = Number(range[1]);
      if (start >= body.length) {
        finish(kind, path, 416, { ...headers, 'Content-Range': `bytes */${body.length}` });
        return;
      }
      const part = body.subarray(start);
      finish(kind, path, 206, { ...headers, 'Content-Length': part.length, 'Content-Range': `bytes ${start}-${body.length - 1}/${body.length}` }, part, dropAfter);
      return;
    }
    finish(kind, path, 200, { ...headers, 'Content-Length': body.length }, body, dropAfter);
  };

  const hub = await listen(createServer(handle('hub')));
  const cdn = options.separateCdn === true ? await listen(createServer(handle('cdn'))) : undefined;
  if (cdn !== undefined) cdnBase = baseUrl(cdn);
  return {
    endpoint: baseUrl(hub),
    requests,
    bytesSent: (file) => requests.filter((r) => file === undefined || r.file === file).reduce((n, r) => n + r.bodyBytes, 0),
    close: async () => {
      await close(hub);
      if (cdn !== undefined) await close(cdn);
    },
  };
}

function readRepo(dir: string): Map<string, RepoFile> {
  const files = new Map<string, RepoFile>();
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const full = join(entry.parentPath, entry.name);
    const bytes = readFileSync(full);
    const gitSha1 = createHash('sha1').update(`blob ${bytes.length}\0`).update(bytes).digest('hex');
    files.set(relative(dir, full).split(sep).join('/'), { bytes, sha256: createHash('sha256').update(bytes).digest('hex'), gitSha1 });
  }
  return files;
}

async function listen(server: Server): Promise<Server> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

function baseUrl(server: Server): string {
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function close(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}
