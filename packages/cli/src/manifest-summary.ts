import type { Manifest } from '@vecmill/shared/manifest';

/** The few lines a person wants after a run or from `vecmill inspect`. */
export function summarizeManifest(m: Manifest, outputUri: string): string {
  const reasons = Object.entries(m.rows.failedByReason)
    .sort((a, b) => b[1] - a[1])
    .map(([r, n]) => `${r} ${n}`)
    .join(', ');
  const lines = [
    `run ${m.runId}: ${m.rows.in} rows in, ${m.rows.ok} ok (${m.rows.computed} computed, ${m.rows.reused} reused), ${m.rows.failed} failed${reasons === '' ? '' : ` (${reasons})`}`,
    `model ${m.model.location} (${m.model.dtype}, ${m.dims} dims, fingerprint ${m.model.fingerprint.id.slice(0, 12)}), kind ${m.settings.kind}, ${m.dtype}${m.normalized ? ', L2-normalized' : ''}`,
    `${m.files.length} files in ${outputUri}:`,
  ];
  const groups = new Map<string, { files: number; rows: number; bytes: number }>();
  for (const f of m.files) {
    const dir = f.key.includes('/') ? `${f.key.slice(0, f.key.indexOf('/'))}/` : f.key;
    const g = groups.get(dir) ?? { files: 0, rows: 0, bytes: 0 };
    g.files++;
    g.rows += f.rows;
    g.bytes += f.bytes;
    groups.set(dir, g);
  }
  for (const [dir, g] of groups) lines.push(`  ${dir.padEnd(16)} ${String(g.files).padStart(5)} file(s) ${String(g.rows).padStart(10)} rows ${formatBytes(g.bytes).padStart(10)}`);
  lines.push(`timings (ms, summed over splits): read ${m.timings.read}, decode ${m.timings.decode}, tokenize ${m.timings.tokenize}, infer ${m.timings.infer}, write ${m.timings.write}; merge ${m.timings.merge}`);
  return lines.join('\n');
}

function formatBytes(n: number): string {
  if (n >= 1 << 30) return `${(n / (1 << 30)).toFixed(2)} GiB`;
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  if (n >= 1 << 10) return `${(n / (1 << 10)).toFixed(1)} KiB`;
  return `${n} B`;
}
