import type { RunEvent, RunEventSink } from '@vecmill/shared/queue/run-events';

/** Where progress goes and how. */
export interface ProgressReporterOptions {
  readonly mode: 'bar' | 'json';
  readonly write: (text: string) => void;
  readonly now?: () => number;
}

/**
 * Turns run events into what a person or a log collector wants: on a terminal one redrawn line
 * (rows, rows/s, ETA, failures), elsewhere one JSON object per event.
 */
export function createProgressReporter(options: ProgressReporterOptions): RunEventSink & { finish(): void } {
  const now = options.now ?? Date.now;
  const started = now();
  const inSplit = new Map<number, number>();
  // JSON logs get at most one progress line per split per second; every other event is logged.
  const lastLogged = new Map<number, number>();
  let doneRows = 0;
  let failed = 0;
  let totalBytes = 0;
  let doneBytes = 0;
  let splitsDone = 0;
  let splitsTotal = 0;
  let lastDraw = 0;

  const rowsNow = (): number => doneRows + [...inSplit.values()].reduce((a, b) => a + b, 0);
  const draw = (force: boolean): void => {
    const t = now();
    if (!force && t - lastDraw < 200) return;
    lastDraw = t;
    const secs = Math.max(0.001, (t - started) / 1000);
    const rate = rowsNow() / secs;
    const frac = totalBytes > 0 ? doneBytes / totalBytes : 0;
    const eta = frac > 0 && frac < 1 ? formatDuration((secs / frac) * (1 - frac)) : frac >= 1 ? '0s' : '?';
    const width = 24;
    const filled = Math.round(frac * width);
    const bar = `${'█'.repeat(filled)}${'░'.repeat(width - filled)}`;
    options.write(`\r${bar} ${splitsDone}/${splitsTotal} splits  ${rowsNow()} rows  ${rate.toFixed(1)} rows/s  ETA ${eta}  failed ${failed}   `);
  };

  const sink = (event: RunEvent): void => {
    if (options.mode === 'json') {
      if (event.type === 'split-progress') {
        const t = now();
        if (t - (lastLogged.get(event.split) ?? 0) < 1000) return;
        lastLogged.set(event.split, t);
      }
      if (event.type === 'split-done') lastLogged.delete(event.split);
      options.write(`${JSON.stringify({ time: new Date(now()).toISOString(), ...event })}\n`);
      return;
    }
    switch (event.type) {
      case 'run-start':
        splitsTotal = event.pending;
        totalBytes = event.bytes;
        if (event.jpegDecoder !== undefined) options.write(`JPEG decoder: ${event.jpegDecoder}\n`);
        break;
      case 'split-progress':
        inSplit.set(event.split, event.rows);
        break;
      case 'split-done':
        inSplit.delete(event.split);
        doneRows += event.rows;
        failed += event.failed;
        doneBytes += event.bytes;
        splitsDone++;
        break;
      case 'split-retry':
        options.write(`\nsplit ${event.split}: attempt ${event.attempt} failed (${event.error}); retrying in ${event.delayMs} ms\n`);
        break;
      case 'split-failed':
        options.write(`\nsplit ${event.split} failed: ${event.error}\n`);
        break;
      case 'warning':
        options.write(`\nwarning: ${event.message}\n`);
        break;
      case 'merge-start':
        draw(true);
        options.write('\nmerging shards into the final files…\n');
        return;
      case 'merge-done':
        return;
    }
    draw(event.type !== 'split-progress');
  };
  return Object.assign(sink, { finish: () => (options.mode === 'bar' ? options.write('\n') : undefined) });
}

/** `1h02m`, `3m05s`, `42s`. */
export function formatDuration(seconds: number): string {
  const s = Math.round(seconds);
  if (s >= 3600) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  if (s >= 60) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${s}s`;
}
