import { existsSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import sharp from 'sharp';

/** Photos for the bench: the shared fixtures' real photographs when present, else generated ones of similar sizes. */
export async function benchPhotos(fixturesDir: string | undefined): Promise<{ source: string; photos: { bytes: Buffer; caption: string }[] }> {
  const images = fixturesDir === undefined ? undefined : join(fixturesDir, 'images');
  if (images !== undefined && existsSync(join(images, 'captions.tsv'))) {
    const broken = /truncated|cut_in_half|random_bytes|not_an_image|empty|one_pixel|panorama|tiny/;
    const photos = readFileSync(join(images, 'captions.tsv'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => l.split('\t') as [string, string])
      .filter(([f]) => /\.(jpe?g)$/.test(f) && !broken.test(f))
      .map(([f, caption]) => ({ bytes: readFileSync(join(images, f)), caption }));
    return { source: `${photos.length} real JPEG photographs from ../shared/fixtures/images`, photos };
  }
  const photos: { bytes: Buffer; caption: string }[] = [];
  for (let i = 0; i < 12; i++) {
    const w = 400 + 40 * i;
    const h = 300 + 25 * i;
    const raw = Buffer.alloc(w * h * 3);
    for (let p = 0; p < raw.length; p++) raw[p] = (((p * 2654435761) >>> 24) + i * 20 + ((p / (w * 3)) | 0)) & 255;
    photos.push({ bytes: await sharp(raw, { raw: { width: w, height: h, channels: 3 } }).blur(2).jpeg({ quality: 85 }).toBuffer(), caption: `a generated photo number ${i} of a textured pattern` });
  }
  return { source: '12 generated JPEGs 400-840 px (fixtures absent)', photos };
}

/** Writes `rows` pairs cycling through the photos, captions varied so they tokenize to 8-20 tokens. */
export async function writePairsTsv(path: string, photos: readonly { bytes: Buffer; caption: string }[], rows: number): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const b64 = photos.map((p) => p.bytes.toString('base64'));
  const lines: string[] = [];
  for (let r = 0; r < rows; r++) {
    const i = r % photos.length;
    lines.push(`${captionOfLength(photos[i]!.caption, r)}\t${b64[i]}`);
  }
  await writeFile(path, `${lines.join('\n')}\n`);
}

const extra = ['in the morning', 'seen from above', 'with soft light', 'on a sunny day', 'in high resolution', 'close up', 'at night', 'from a distance'];

/** A caption of about 8-20 CLIP tokens, deterministic per row. */
export function captionOfLength(base: string, r: number): string {
  const words = base.split(' ').slice(0, 4 + (r % 5));
  return `${words.join(' ')} ${extra[r % extra.length]}${r % 3 === 0 ? `, ${extra[(r + 3) % extra.length]}` : ''}`;
}
