import type { RgbImage } from './image-decode.js';

/**
 * `image` turned upright for an EXIF `orientation` (1-8): the same pure permutation of pixels as
 * the native decoder's `orient_row` and sharp's `autoOrient`. The WebAssembly decoder has no
 * orientation of its own, so under `--fast-decode` a rotated JPEG decoded there is turned here and
 * matches the native decoder's pixels exactly, whichever of the two a machine has.
 */
export function orientUpright(image: RgbImage, orientation: number): RgbImage {
  if (!Number.isInteger(orientation) || orientation < 1 || orientation > 8) throw new RangeError(`EXIF orientation ${orientation} is not 1-8`);
  if (orientation === 1) return image;
  const { width, height, data } = image;
  const sideways = orientation >= 5;
  const up = sideways ? height : width;
  const out = new Uint8Array(data.length);
  for (let sy = 0; sy < height; sy++) {
    const [start, step] = rowPlacement(orientation, width, height, up, sy);
    for (let sx = 0, from = sy * width * 3, to = start; sx < width; sx++, from += 3, to += step) {
      out[to] = data[from]!;
      out[to + 1] = data[from + 1]!;
      out[to + 2] = data[from + 2]!;
    }
  }
  return { data: out, width: up, height: sideways ? width : height };
}

/** Where stored row `sy` lands upright: its pixel `sx` goes to byte `start + sx * step`. */
function rowPlacement(orientation: number, width: number, height: number, up: number, sy: number): [start: number, step: number] {
  switch (orientation) {
    case 2:
      return [(sy * up + width - 1) * 3, -3];
    case 3:
      return [((height - 1 - sy) * up + width - 1) * 3, -3];
    case 4:
      return [(height - 1 - sy) * up * 3, 3];
    case 5:
      return [sy * 3, up * 3];
    case 6:
      return [(height - 1 - sy) * 3, up * 3];
    case 7:
      return [((width - 1) * up + height - 1 - sy) * 3, -up * 3];
    default:
      return [((width - 1) * up + sy) * 3, -up * 3];
  }
}
