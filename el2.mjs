import { spawnSync } from 'node:child_process';
for (let i = 0; i < 2; i++) {
  const r = spawnSync(process.execPath, ['test/dist/support/measure-run.js', '--input', 'bench/.work/pairs.tsv', '--model', 'bench/.work/model-vit-b-32', '--output', `/tmp/el2-out-${i}`, '--progress', 'json'], { encoding: 'utf8' });
  const m = JSON.parse(r.stdout.trim().split('\n').pop());
  console.log(JSON.stringify({ loop: m.maxEventLoopDelayMs, s: m.seconds, embed: m.embedSeconds, rss: m.maxRssBytes / 2 ** 20 }));
}
