import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createProgressReporter, formatDuration } from 'vecmill/progress-reporter';

describe('progress reporter', () => {
  it('writes one JSON object per event, throttling per-batch progress to once a second per split', () => {
    const lines: string[] = [];
    let t = 0;
    const r = createProgressReporter({ mode: 'json', write: (s) => lines.push(s), now: () => t });
    r({ type: 'run-start', runId: 'r', splits: 2, pending: 2, bytes: 100 });
    t = 1000;
    r({ type: 'split-progress', split: 0, rows: 10 });
    t = 1500;
    r({ type: 'split-progress', split: 0, rows: 20 });
    r({ type: 'split-progress', split: 1, rows: 5 });
    t = 2100;
    r({ type: 'split-progress', split: 0, rows: 30 });
    r({ type: 'split-done', split: 0, rows: 40, failed: 1, computed: true, bytes: 50 });
    const parsed = lines.map((l) => JSON.parse(l) as { type: string; rows?: number });
    assert.deepEqual(parsed.map((p) => `${p.type}:${p.rows ?? ''}`), ['run-start:', 'split-progress:10', 'split-progress:5', 'split-progress:30', 'split-done:40']);
    assert.ok(lines.every((l) => l.endsWith('\n') && !l.slice(0, -1).includes('\n')));
  });

  it('draws a bar with rows, rate, ETA and failures on a terminal', () => {
    let out = '';
    let t = 0;
    const r = createProgressReporter({ mode: 'bar', write: (s) => (out += s), now: () => t });
    r({ type: 'run-start', runId: 'r', splits: 2, pending: 2, bytes: 100 });
    t = 10_000;
    r({ type: 'split-done', split: 0, rows: 500, failed: 3, computed: true, bytes: 50 });
    assert.match(out, /1\/2 splits {2}500 rows {2}50\.0 rows\/s {2}ETA 10s {2}failed 3/);
    r.finish();
    assert.ok(out.endsWith('\n'));
  });

  it('formats durations', () => {
    assert.equal(formatDuration(42), '42s');
    assert.equal(formatDuration(185), '3m05s');
    assert.equal(formatDuration(3720), '1h02m');
  });
});
