import { createWriteStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { finished } from 'node:stream/promises';
import sharp from 'sharp';

/** Options for a generated EasyNLP-style dataset. */
export interface DatasetOptions {
  /** Where to write the TSV. */
  readonly path: string;
  readonly rows: number;
  readonly kind: 'pairs' | 'text' | 'image';
  /** Edge of the drawn images in pixels (default 96); bigger images cost more to decode, like real photos. */
  readonly imageSize?: number;
  /** Distinct images drawn and reused round-robin (default 32): drawing is not what is being measured. */
  readonly distinctImages?: number;
  readonly seed?: number;
  /** Use URL-safe base64, as EasyNLP's own tools write (default false). */
  readonly urlSafe?: boolean;
  /** Pixel noise amplitude 0-255 (default 12): high noise makes large, incompressible images. */
  readonly noise?: number;
  /** Encoding of the drawn images (default jpeg). */
  readonly imageFormat?: 'jpeg' | 'png';
}

const colours: readonly [string, [number, number, number]][] = [
  ['red', [220, 40, 40]],
  ['green', [40, 180, 60]],
  ['blue', [40, 70, 220]],
  ['yellow', [230, 210, 40]],
  ['purple', [140, 50, 170]],
  ['orange', [240, 140, 30]],
  ['white', [245, 245, 245]],
  ['black', [15, 15, 15]],
];
const shapes = ['square', 'stripe', 'block'] as const;

/**
 * Writes a pairs / text / image TSV whose images are drawn here (a coloured shape on a coloured
 * background) and whose captions describe them, so the demo, tests and benchmarks need no
 * downloaded data. Deterministic for a seed. Returns the captions in row order.
 */
export async function makeDataset(options: DatasetOptions): Promise<{ captions: string[]; bytes: number }> {
  const size = options.imageSize ?? 96;
  const distinct = Math.max(1, options.distinctImages ?? 32);
  const amplitude = options.noise ?? 12;
  let state = (options.seed ?? 7) >>> 0 || 1;
  const rand = (): number => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 4294967296;
  };
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T;

  const images: { b64: string; caption: string }[] = [];
  for (let i = 0; i < distinct; i++) {
    const [fgName, fg] = pick(colours);
    const [bgName, bg] = pick(colours.filter(([n]) => n !== fgName));
    const shape = pick(shapes);
    const raw = Buffer.alloc(size * size * 3);
    const x0 = Math.floor(rand() * size * 0.4);
    const y0 = Math.floor(rand() * size * 0.4);
    const w = shape === 'stripe' ? Math.max(2, Math.floor(size * 0.15)) : Math.floor(size * 0.5);
    const h = shape === 'block' ? Math.floor(size * 0.3) : Math.floor(size * 0.5);
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const inside = x >= x0 && x < x0 + w && y >= y0 && y < y0 + h;
        const c = inside ? fg : bg;
        const noise = Math.floor(rand() * amplitude) - (amplitude >> 1);
        const o = (y * size + x) * 3;
        raw[o] = clamp(c[0] + noise);
        raw[o + 1] = clamp(c[1] + noise);
        raw[o + 2] = clamp(c[2] + noise);
      }
    }
    const drawn = sharp(raw, { raw: { width: size, height: size, channels: 3 } });
    const encoded = await (options.imageFormat === 'png' ? drawn.png({ compressionLevel: 1 }) : drawn.jpeg({ quality: 85 })).toBuffer();
    const b64 = encoded.toString(options.urlSafe === true ? 'base64url' : 'base64');
    images.push({ b64, caption: `a photo of a ${fgName} ${shape} on a ${bgName} background` });
  }

  await mkdir(dirname(options.path), { recursive: true });
  const out = createWriteStream(options.path);
  const captions: string[] = [];
  let bytes = 0;
  for (let r = 0; r < options.rows; r++) {
    const img = images[r % distinct] as { b64: string; caption: string };
    const caption = `${img.caption}, number ${r}`;
    captions.push(caption);
    const line = options.kind === 'pairs' ? `${caption}\t${img.b64}\n` : options.kind === 'text' ? `${caption}\n` : `${img.b64}\n`;
    bytes += Buffer.byteLength(line);
    if (!out.write(line)) await new Promise<void>((r) => out.once('drain', () => r()));
  }
  out.end();
  await finished(out);
  return { captions, bytes };
}

function clamp(v: number): number {
  return v < 0 ? 0 : v > 255 ? 255 : v;
}
