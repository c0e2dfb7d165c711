import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ObjectStore } from '@vecmill/shared/storage/object-store';
import type { Manifest } from '@vecmill/shared/manifest';
import { projectRoot } from './fixtures.js';
import { readParts } from './run-helpers.js';

/** The real CLI entry, as users run it. */
export const vecmillBin = join(projectRoot, 'packages', 'cli', 'bin', 'vecmill.js');

/** A spawned `vecmill worker`, with its JSON log lines collected. */
export interface WorkerProcess {
  readonly child: ChildProcess;
  readonly lines: Record<string, unknown>[];
  readonly stderr: () => string;
  /** Resolves with the first log line matching `pred` (rejects after `timeoutMs`). */
  waitFor(pred: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Resolves with the exit code (or signal name). */
  readonly exited: Promise<number | string>;
}

/** Starts `vecmill worker` with test-sized locks; extra flags come after the defaults and win. */
export function spawnWorker(redisUrl: string, flags: readonly string[] = [], env: NodeJS.ProcessEnv = {}): WorkerProcess {
  const child = spawn(process.execPath, [vecmillBin, 'worker', '--redis', redisUrl, '--threads', '1', '--decode-threads', '1', '--concurrency', '1', ...flags], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const lines: Record<string, unknown>[] = [];
  let text = '';
  let pending = '';
  const waiters: { pred: (l: Record<string, unknown>) => boolean; resolve: (l: Record<string, unknown>) => void }[] = [];
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    text += chunk;
    pending += chunk;
    let nl: number;
    while ((nl = pending.indexOf('\n')) !== -1) {
      const raw = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      let line: Record<string, unknown>;
      try {
        line = JSON.parse(raw) as Record<string, unknown>;
      } catch {
        continue;
      }
      lines.push(line);
      for (const w of [...waiters]) {
        if (w.pred(line)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(line);
        }
      }
    }
  });
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')));
  return {
    child,
    lines,
    stderr: () => text,
    exited,
    waitFor(pred, timeoutMs = 60_000) {
      const found = lines.find(pred);
      if (found !== undefined) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no worker log line matched within ${timeoutMs} ms; log:\n${text}`)), timeoutMs);
        waiters.push({ pred, resolve: (l) => (clearTimeout(timer), resolve(l)) });
        void exited.then((code) => {
          clearTimeout(timer);
          reject(new Error(`worker exited (${code}) before the awaited log line; log:\n${text}`));
        });
      });
    },
  };
}

/** Runs a CLI command to completion. */
export function runCli(args: readonly string[], env: NodeJS.ProcessEnv = {}, cwd = projectRoot): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [vecmillBin, ...args], { env: { ...process.env, ...env }, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Polls until `check` is true. */
export async function waitUntil(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(25);
  }
}

/** Ids, texts and embeddings of a published output, in row order: what two runs must agree on. */
export interface OutputRows {
  readonly ids: number[];
  readonly texts: (string | null)[];
  readonly image: number[][];
  readonly text: number[][];
}

/** Reads every row of a published output. */
export async function readOutputRows(store: ObjectStore): Promise<OutputRows> {
  const manifest = JSON.parse((await store.read('manifest.json')).toString('utf8')) as Manifest;
  const out: OutputRows = { ids: [], texts: [], image: [], text: [] };
  for (const t of await readParts(store, manifest)) {
    for (let i = 0; i < t.numRows; i++) {
      const r = t.row(i);
      out.ids.push(Number(r.rowIndex));
      out.texts.push(r.text);
      out.image.push(r.imageEmbedding === null ? [] : [...r.imageEmbedding]);
      out.text.push(r.textEmbedding === null ? [] : [...r.textEmbedding]);
    }
  }
  return out;
}

/** Reads a local JSON file. */
export function readJson<T>(path: string): T {
  return JSON.parse(readFileSync(path, 'utf8')) as T;
}
