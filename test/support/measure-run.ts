/**
 * Child-process entry for memory tests: runs `vecmill run` with the given argv in this process
 * and prints one JSON line with the peak RSS (which includes the inference thread) and the rows.
 */
import { tuneThreadPool } from '@vecmill/shared/config';
import { loadRunConfig } from '@vecmill/shared/config';
import { runEmbedded } from 'vecmill/embedded-run';

tuneThreadPool();
let peak = 0;
const timer = setInterval(() => {
  peak = Math.max(peak, process.memoryUsage.rss());
}, 50);
const result = await runEmbedded(loadRunConfig(process.argv.slice(2)), () => undefined);
clearInterval(timer);
const maxRssBytes = Math.max(peak, process.resourceUsage().maxRSS * 1024);
process.stdout.write(`${JSON.stringify({ maxRssBytes, rows: result.manifest.rows.in, ok: result.manifest.rows.ok })}\n`);
