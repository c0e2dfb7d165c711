import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { backoffDelay } from '../backoff.js';
import { ConfigError, DownloadError } from '../errors.js';
import { isCommitSha, isRepoId, isSafeRevision, snapshotDir, writeCachedRef } from './model-cache.js';
import { requiredModelFiles, sha256File, type ModelDtype } from './model-folder.js';

/** huggingface_hub's default; a mirror is chosen by the config loader from HF_ENDPOINT. */
export const DEFAULT_HF_ENDPOINT = 'https://huggingface.co';

/** Reported per received chunk so the CLI can draw a progress bar; `received` counts resumed bytes too. */
export interface PullProgress {
  readonly file: string;
  readonly received: number;
  readonly total: number | undefined;
}

/** What to pull and where to put it. Settings come from the config loader, never from the environment here. */
export interface PullModelOptions {
  /** Hub repo id, "org/name". */
  readonly repoId: string;
  /** Branch, tag or commit sha. Default "main". */
  readonly revision?: string;
  /** Which ONNX pair to fetch (fp32: *_model.onnx, fp16: *_model_fp16.onnx, q8: *_model_quantized.onnx). Default fp32. */
  readonly dtype?: ModelDtype;
  /** Root of the model cache; see model-cache.ts for the layout. */
  readonly cacheDir: string;
  /** Hub or mirror base URL. Default https://huggingface.co. */
  readonly endpoint?: string;
  /** Sent as `Authorization: Bearer` to the endpoint only (not to the CDN it redirects to); never logged or put in errors. */
  readonly token?: string;
  readonly onProgress?: (progress: PullProgress) => void;
  /** Default: the global fetch. */
  readonly fetchImpl?: typeof fetch;
  /** Extra attempts after a 5xx, 429 or dropped connection that made no progress. Default 4. */
  readonly retries?: number;
  /** Upper bound of the first retry's backoff (`backoffDelay`), doubled on each further one. Default 1000 ms. */
  readonly retryDelayMs?: number;
}

export interface PulledModel {
  /** The snapshot folder: pass it (or the repo id, resolved offline from the cache) as --model. */
  readonly dir: string;
  /** The commit the revision resolved to; every file comes from this one commit. */
  readonly sha: string;
  readonly files: { path: string; size: number }[];
  /** Bytes received in this pull: 0 when everything was already cached. */
  readonly downloadedBytes: number;
}

/** Fetched when the repo has them; the model loader reads them when present. */
const optionalFiles = ['tokenizer_config.json', 'special_tokens_map.json'];

/** Every dtype, spelled so the compiler flags this list when ModelDtype grows. */
const allDtypes = Object.keys({ fp32: 0, fp16: 0, q8: 0 } satisfies Record<ModelDtype, 0>) as ModelDtype[];

/** Connection failures that mean "this host cannot be reached": retrying with backoff only delays the answer. */
const unreachableCodes = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'UND_ERR_CONNECT_TIMEOUT']);

const maxRedirects = 10;

/** Cap on one backoff sleep between hub requests. */
const maxRetryDelayMs = 30_000;

/** What the revision listing says about one file; sizes and hashes are absent on mirrors that ignore `blobs=true`. */
interface ListedFile {
  readonly size: number | undefined;
  readonly sha256: string | undefined;
}

interface Session {
  readonly repoId: string;
  readonly base: string;
  readonly origin: string;
  /** The endpoint without query, safe for messages. */
  readonly shown: string;
  readonly token: string | undefined;
  readonly fetch: typeof fetch;
  readonly retries: number;
  readonly retryDelayMs: number;
}

/** A failure another attempt may cure; `final` is thrown when attempts run out. */
class Retryable extends Error {
  constructor(readonly final: DownloadError, readonly progressed = false) {
    super(final.message);
  }
}

/**
 * Downloads a CLIP ONNX export from the Hugging Face hub (or an HF_ENDPOINT mirror) into the model
 * cache, speaking the same HTTP API as huggingface_hub so the same mirrors work. The revision is
 * resolved to a commit sha first and every file is fetched at that sha, so a branch moving
 * mid-pull cannot mix two commits.
 *
 * Integrity: every file's byte count is checked against the size the hub announces (the listing's
 * size, else `X-Linked-Size`, else `Content-Range`/`Content-Length`); when a sha256 is known (the
 * listing's LFS oid, else an `X-Linked-Etag`/`ETag` of 64 hex digits, which the hub sends for LFS
 * files) the file's sha256 is checked too. Git sha1 ETags of small files are not checked.
 *
 * Files stream to `{path}.incomplete` and are renamed into place only once verified, so a present
 * file is a complete one; an interrupted pull resumes with a Range request on the next attempt or
 * the next run, and a repeated pull downloads nothing.
 */
export async function pullModel(options: PullModelOptions): Promise<PulledModel> {
  const revision = options.revision ?? 'main';
  const dtype = options.dtype ?? 'fp32';
  if (!isRepoId(options.repoId)) {
    throw new ConfigError(`model repo id ${JSON.stringify(options.repoId)} is not of the form org/name; pass a hub repo id such as Xenova/clip-vit-base-patch32`, { repoId: options.repoId });
  }
  if (!isSafeRevision(revision)) {
    throw new ConfigError(`revision ${JSON.stringify(revision)} of ${options.repoId} is not a branch, tag or commit name; check --revision`, { repoId: options.repoId, revision });
  }
  const session = openSession(options);
  const listing = await fetchRevision(session, revision);
  const required = requiredModelFiles(dtype, { text: true, image: true });
  const missing = required.filter((f) => !listing.files.has(f));
  if (missing.length > 0) throw missingFilesError(session, revision, dtype, missing, listing.files);
  const wanted = [...required, ...optionalFiles.filter((f) => listing.files.has(f))];

  const dir = snapshotDir(options.cacheDir, options.repoId, listing.sha);
  const files: { path: string; size: number }[] = [];
  let downloadedBytes = 0;
  for (const file of wanted) {
    const listed = listing.files.get(file) ?? { size: undefined, sha256: undefined };
    const got = await fetchFile(session, listing.sha, file, listed, join(dir, file), options.onProgress);
    files.push({ path: file, size: got.size });
    downloadedBytes += got.transferred;
  }
  if (!isCommitSha(revision)) await writeCachedRef(options.cacheDir, options.repoId, revision, listing.sha);
  return { dir, sha: listing.sha, files, downloadedBytes };
}

function openSession(options: PullModelOptions): Session {
  const endpoint = options.endpoint ?? DEFAULT_HF_ENDPOINT;
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new ConfigError(`hub endpoint ${JSON.stringify(endpoint)} is not a URL; set HF_ENDPOINT to e.g. https://huggingface.co`, { endpoint });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ConfigError(`hub endpoint ${url.protocol}//${url.host} is not http or https; set HF_ENDPOINT to e.g. https://huggingface.co`, { endpoint: url.host });
  }
  if (url.username !== '' || url.password !== '') {
    throw new ConfigError(`hub endpoint ${url.protocol}//${url.host} must not hold a user name or password; put the token in HF_TOKEN instead`, { endpoint: url.host });
  }
  const base = endpoint.replace(/\/+$/, '');
  const shown = `${url.protocol}//${url.host}${url.pathname.replace(/\/+$/, '')}`;
  return {
    repoId: options.repoId,
    base,
    origin: url.origin,
    shown,
    token: options.token,
    fetch: options.fetchImpl ?? fetch,
    retries: options.retries ?? 4,
    retryDelayMs: options.retryDelayMs ?? 1000,
  };
}

/** Resolves the revision to a commit and lists its files, with sizes and LFS hashes where the server gives them. */
async function fetchRevision(s: Session, revision: string): Promise<{ sha: string; files: Map<string, ListedFile> }> {
  const url = `${s.base}/api/models/${s.repoId}/revision/${encodeURIComponent(revision)}?blobs=true`;
  const what = `${s.repoId}@${revision}`;
  const body = await withRetries(s, async () => {
    const res = await send(s, url, {}, `the file list of ${what}`);
    if (res.status === 200) return readJson(s, res, what);
    await res.body?.cancel();
    if (res.status === 401 || res.status === 403) throw accessError(s, res.status);
    if (res.status === 404) {
      const code = res.headers.get('x-error-code');
      if (code === 'RevisionNotFound') {
        throw new DownloadError(`revision ${revision} of ${s.repoId} was not found on ${s.shown} (HTTP 404); check --revision`, { repoId: s.repoId, revision, status: 404 });
      }
      throw new DownloadError(`model repo ${what} was not found on ${s.shown} (HTTP 404); check the repo id and --revision`, { repoId: s.repoId, revision, status: 404 });
    }
    throw statusError(s, res.status, `the file list of ${what}`);
  });
  const sha = isRecord(body) ? body['sha'] : undefined;
  const siblings = isRecord(body) ? body['siblings'] : undefined;
  if (typeof sha !== 'string' || !isCommitSha(sha) || !Array.isArray(siblings)) {
    throw new DownloadError(`${s.shown} answered the file list of ${what} without a commit sha and siblings; check that HF_ENDPOINT points at a Hugging Face hub or mirror`, { repoId: s.repoId, revision });
  }
  const files = new Map<string, ListedFile>();
  for (const entry of siblings) {
    if (!isRecord(entry) || typeof entry['rfilename'] !== 'string') continue;
    const lfs = isRecord(entry['lfs']) ? entry['lfs'] : {};
    const size = lfs['size'] ?? entry['size'];
    const sha256 = lfs['sha256'] ?? lfs['oid'];
    files.set(entry['rfilename'], {
      size: typeof size === 'number' && Number.isSafeInteger(size) && size >= 0 ? size : undefined,
      sha256: typeof sha256 === 'string' && /^[0-9a-f]{64}$/.test(sha256) ? sha256 : undefined,
    });
  }
  return { sha, files };
}

/** Says which files are missing and which dtypes this repo does have, since a missing pair usually means the wrong --dtype. */
function missingFilesError(s: Session, revision: string, dtype: ModelDtype, missing: string[], present: Map<string, ListedFile>): DownloadError {
  const available = allDtypes.filter((d) => requiredModelFiles(d, { text: true, image: true }).every((f) => present.has(f)));
  const hint = available.length > 0
    ? `try --dtype ${available.join(' or --dtype ')}`
    : 'it is not a CLIP, Chinese-CLIP or SigLIP ONNX export with onnx/text_model*.onnx and onnx/vision_model*.onnx (as Xenova/clip-vit-base-patch32, Xenova/chinese-clip-vit-base-patch16 and Xenova/siglip-base-patch16-224 are)';
  return new DownloadError(`model repo ${s.repoId}@${revision} has no ${missing.join(', ')} for --dtype ${dtype}; ${hint}`, { repoId: s.repoId, revision, dtype, missing: missing.join(',') });
}

/** Ensures one verified file at `dest`, downloading or resuming only what is not there yet. */
async function fetchFile(
  s: Session,
  sha: string,
  file: string,
  listed: ListedFile,
  dest: string,
  onProgress: PullModelOptions['onProgress'],
): Promise<{ size: number; transferred: number }> {
  const have = await stat(dest).catch(() => undefined);
  if (have !== undefined && (listed.size === undefined || have.size === listed.size)) return { size: have.size, transferred: 0 };
  if (have !== undefined) await rm(dest, { force: true });
  await mkdir(dirname(dest), { recursive: true });
  const incomplete = `${dest}.incomplete`;
  const tally = { bytes: 0 };
  const expected = await withRetries(s, () => downloadAttempt(s, sha, file, listed, incomplete, tally, onProgress));
  const size = (await stat(incomplete)).size;
  const context = { repoId: s.repoId, file, sha };
  if (expected.size !== undefined && size !== expected.size) {
    await rm(incomplete, { force: true });
    throw new DownloadError(`downloaded ${file} of ${s.repoId} is ${size} bytes but ${s.shown} announced ${expected.size}; the partial file was discarded, run the pull again (if this repeats, the mirror serves a different file)`, { ...context, expected: expected.size, received: size });
  }
  if (expected.sha256 !== undefined) {
    const actual = await sha256File(incomplete);
    if (actual !== expected.sha256) {
      await rm(incomplete, { force: true });
      throw new DownloadError(`downloaded ${file} of ${s.repoId} has sha256 ${actual} but ${s.shown} announced ${expected.sha256}; the file was discarded, run the pull again (if this repeats, the mirror serves a different file)`, { ...context, expected: expected.sha256, actual });
    }
  }
  await rename(incomplete, dest);
  return { size, transferred: tally.bytes };
}

/**
 * One request for one file, appending to the `.incomplete` file when the server honours the Range
 * request (206) and starting over when it does not (200). Redirects are followed by hand because
 * the hub's own 302 carries the LFS size and sha256 (X-Linked-*), and the token must not follow
 * the request to another origin such as the CDN.
 */
async function downloadAttempt(
  s: Session,
  sha: string,
  file: string,
  listed: ListedFile,
  incomplete: string,
  tally: { bytes: number },
  onProgress: PullModelOptions['onProgress'],
): Promise<{ size: number | undefined; sha256: string | undefined }> {
  const before = (await stat(incomplete).catch(() => undefined))?.size ?? 0;
  let offset = before;
  if (listed.size !== undefined && offset > listed.size) {
    await rm(incomplete, { force: true });
    offset = 0;
  }
  if (listed.size !== undefined && offset === listed.size && offset > 0) return { size: listed.size, sha256: listed.sha256 };

  const what = `${file} of ${s.repoId}`;
  const headers: Record<string, string> = offset > 0 ? { Range: `bytes=${offset}-` } : {};
  let url = `${s.base}/${s.repoId}/resolve/${sha}/${file.split('/').map(encodeURIComponent).join('/')}`;
  let res = await send(s, url, headers, what);
  const linkedSize = parseSize(res.headers.get('x-linked-size'));
  const linkedSha = sha256Etag(res.headers.get('x-linked-etag')) ?? sha256Etag(res.headers.get('etag'));
  for (let hop = 0; isRedirect(res.status); hop += 1) {
    const location = res.headers.get('location');
    await res.body?.cancel();
    if (location === null || hop >= maxRedirects) {
      throw new DownloadError(`${s.shown} answered ${what} with a broken redirect chain (HTTP ${res.status}); check HF_ENDPOINT`, { repoId: s.repoId, file, status: res.status });
    }
    url = new URL(location, url).href;
    res = await send(s, url, headers, what);
  }

  if (res.status === 401 || res.status === 403) {
    await res.body?.cancel();
    throw accessError(s, res.status);
  }
  if (res.status === 404) {
    await res.body?.cancel();
    throw new DownloadError(`${what} at commit ${sha} was not found on ${s.shown} (HTTP 404) although the file list names it; run the pull again`, { repoId: s.repoId, file, sha, status: 404 });
  }
  if (res.status === 416 || (res.status === 206 && rangeStart(res.headers.get('content-range')) !== offset)) {
    await res.body?.cancel();
    await rm(incomplete, { force: true });
    throw new Retryable(new DownloadError(`${s.shown} would not resume ${what} (HTTP ${res.status}); run the pull again`, { repoId: s.repoId, file, status: res.status }));
  }
  if (res.status !== 200 && res.status !== 206) {
    await res.body?.cancel();
    throw statusError(s, res.status, what);
  }
  if (res.status === 200) offset = 0;
  const total = listed.size ?? linkedSize ?? (res.status === 206 ? rangeTotal(res.headers.get('content-range')) : parseSize(res.headers.get('content-length')));
  const sha256 = listed.sha256 ?? linkedSha;

  const out = await open(incomplete, offset > 0 ? 'a' : 'w');
  let received = offset;
  try {
    if (res.body !== null) {
      for await (const chunk of res.body) {
        await out.write(chunk);
        received += chunk.byteLength;
        tally.bytes += chunk.byteLength;
        onProgress?.({ file, received, total });
      }
    }
    await out.sync();
  } catch (err) {
    const host = new URL(url).host;
    throw new Retryable(
      new DownloadError(`the connection to ${host} dropped while downloading ${what} (${errorCode(err)}); run the pull again to resume`, { repoId: s.repoId, file, received }, { cause: err }),
      received > before,
    );
  } finally {
    await out.close();
  }
  return { size: total, sha256 };
}

/** One HTTP request: the token goes only to the endpoint's origin, and connection failures become DownloadErrors. */
async function send(s: Session, url: string, extra: Record<string, string>, what: string): Promise<Response> {
  const headers: Record<string, string> = { 'User-Agent': 'vecmill', ...extra };
  if (s.token !== undefined && new URL(url).origin === s.origin) headers['Authorization'] = `Bearer ${s.token}`;
  try {
    return await s.fetch(url, { headers, redirect: 'manual' });
  } catch (err) {
    const code = errorCode(err);
    const host = new URL(url).host;
    if (unreachableCodes.has(code)) {
      throw new DownloadError(`cannot reach ${host} to fetch ${what} (${code}); on an offline machine copy a model folder and pass its path to --model, or set HF_ENDPOINT to a reachable mirror`, { repoId: s.repoId, host, reason: code }, { cause: err });
    }
    throw new Retryable(new DownloadError(`the connection to ${host} failed while fetching ${what} (${code}); run the pull again`, { repoId: s.repoId, host, reason: code }, { cause: err }));
  }
}

/** Runs `attempt` until it succeeds; only Retryable failures are retried, after `backoffDelay`, and progress resets the count. */
async function withRetries<T>(s: Session, attempt: () => Promise<T>): Promise<T> {
  let failures = 0;
  for (;;) {
    try {
      return await attempt();
    } catch (err) {
      if (!(err instanceof Retryable)) throw err;
      failures = err.progressed ? 0 : failures + 1;
      if (failures > s.retries) throw err.final;
      if (failures > 0) await sleep(backoffDelay(failures, { baseDelayMs: s.retryDelayMs, maxDelayMs: maxRetryDelayMs }));
    }
  }
}

function accessError(s: Session, status: number): DownloadError {
  const message = s.token === undefined
    ? `${s.shown} refused access to model repo ${s.repoId} (HTTP ${status}); set HF_TOKEN for gated or private repos, and check the repo id`
    : `${s.shown} refused the token in HF_TOKEN for model repo ${s.repoId} (HTTP ${status}); check that it has read access and that you accepted the repo's terms on the hub`;
  return new DownloadError(message, { repoId: s.repoId, status });
}

/** 5xx and 429 are the hub being busy: retried. Anything else is final. */
function statusError(s: Session, status: number, what: string): Error {
  if (status >= 500 || status === 429) {
    return new Retryable(new DownloadError(`${s.shown} kept answering HTTP ${status} for ${what}; the hub may be down, try again later or set HF_ENDPOINT to a mirror`, { repoId: s.repoId, status }));
  }
  return new DownloadError(`${s.shown} answered HTTP ${status} for ${what}`, { repoId: s.repoId, status });
}

async function readJson(s: Session, res: Response, what: string): Promise<unknown> {
  try {
    return (await res.json()) as unknown;
  } catch (err) {
    throw new DownloadError(`${s.shown} answered the file list of ${what} with invalid JSON; check that HF_ENDPOINT points at a Hugging Face hub or mirror`, { repoId: s.repoId }, { cause: err });
  }
}

function isRedirect(status: number): boolean {
  return status === 301 || status === 302 || status === 303 || status === 307 || status === 308;
}

function parseSize(header: string | null): number | undefined {
  if (header === null || !/^\d+$/.test(header.trim())) return undefined;
  const n = Number(header.trim());
  return Number.isSafeInteger(n) ? n : undefined;
}

/** `bytes 100-199/200` → 100. */
function rangeStart(header: string | null): number | undefined {
  const m = header === null ? null : /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(header.trim());
  return m?.[1] === undefined ? undefined : Number(m[1]);
}

/** `bytes 100-199/200` → 200. */
function rangeTotal(header: string | null): number | undefined {
  const m = header === null ? null : /^bytes \d+-\d+\/(\d+)$/.exec(header.trim());
  return m?.[1] === undefined ? undefined : Number(m[1]);
}

/** The hub's LFS ETags are the file's sha256, possibly quoted or weak; anything else is not a sha256. */
function sha256Etag(header: string | null): string | undefined {
  const value = header?.trim().replace(/^W\//, '').replace(/^"|"$/g, '').toLowerCase();
  return value !== undefined && /^[0-9a-f]{64}$/.test(value) ? value : undefined;
}

/** The system or undici code behind a fetch failure (`fetch failed` hides it in `cause`); never a URL, which may be a signed one. */
function errorCode(err: unknown): string {
  let e: unknown = err;
  for (let depth = 0; depth < 4 && isRecord(e); depth += 1) {
    if (typeof e['code'] === 'string') return e['code'];
    const errors = e['errors'];
    if (Array.isArray(errors) && isRecord(errors[0]) && typeof errors[0]['code'] === 'string') return errors[0]['code'];
    e = e['cause'];
  }
  if (!(err instanceof Error)) return 'unknown error';
  return err.message.includes('://') ? err.name : err.message;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
