/**
 * `node vecmill-stages.js REPS PHOTO...`: vecmill's per-stage CPU per photo on one thread, printed
 * as one JSON line, for the host bench's stage rows. It runs in a process of its own, as Pillow's
 * stages do: process CPU time counts every thread, and the bench's own process has run the whole
 * bench by then (a resize there measured 4.5 ms per photo where a fresh process measured 1.6).
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import sharp from 'sharp';
import { decodeJpegNative, readNativeJpegHeader } from '@vecmill/worker/model/decode-jpeg-native';
import { decodeImage, defaultDecodeOptions, readImageHeader } from '@vecmill/worker/model/image-decode';
import { resizeBicubic } from '@vecmill/worker/model/resize-bicubic';

/**
 * The same stages in vecmill on this thread, ms of CPU per photo: decode as preprocessing does it
 * (the native libjpeg-turbo addon for the JPEGs it takes when built, sharp at concurrency 1 for the
 * rest, as in a preprocessing thread), and the resize.
 */
async function vecmillStages(photos: readonly { bytes: Buffer }[], reps: number): Promise<{ decode: number; resize: number }> {
  sharp.concurrency(1);
  const headers = await Promise.all(photos.map((p) => readImageHeader(p.bytes, defaultDecodeOptions)));
  const images = await Promise.all(photos.map((p, i) => decodeImage(p.bytes, headers[i]!, defaultDecodeOptions)));
  const cpuMs = async (fn: () => Promise<void>): Promise<number> => {
    await fn();
    const c0 = process.cpuUsage();
    for (let r = 0; r < reps; r++) await fn();
    const used = process.cpuUsage(c0);
    return (used.user + used.system) / 1000 / reps / photos.length;
  };
  const decode = await cpuMs(async () => {
    for (let i = 0; i < photos.length; i++) {
      const { bytes } = photos[i]!;
      const native = readNativeJpegHeader(bytes, defaultDecodeOptions.maxPixels);
      if (native !== undefined && decodeJpegNative(bytes, native, 8) !== undefined) continue;
      await decodeImage(bytes, headers[i]!, defaultDecodeOptions);
    }
  });
  const resize = await cpuMs(async () => {
    for (const image of images) {
      const s = 224 / Math.min(image.width, image.height);
      const w = image.width <= image.height ? 224 : Math.trunc(image.width * s);
      const h = image.width <= image.height ? Math.trunc(image.height * s) : 224;
      resizeBicubic(image, w, h, { left: 0, top: 0, width: w, height: h });
    }
  });
  return { decode, resize };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [reps, ...paths] = process.argv.slice(2);
  const stages = await vecmillStages(paths.map((p) => ({ bytes: readFileSync(p) })), Number(reps));
  process.stdout.write(`${JSON.stringify(stages)}\n`);
}
