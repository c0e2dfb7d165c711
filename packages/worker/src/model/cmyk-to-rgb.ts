/**
 * CMYK to RGB exactly as Pillow's `convert("RGB")` does it (`cmyk2rgb` in Convert.c): no colour
 * management, R = (255 - K) - C * (255 - K) / 255 with Pillow's MULDIV255 rounding. CLIP and the
 * Hugging Face processors see CMYK images through this conversion, so vecmill uses it too; the
 * native JPEG decoder does the same in C (packages/worker/native/jpeg-decode.c).
 *
 * `cmyk` holds `channels` (4, or 5 with alpha, which is dropped) samples per pixel with 255 meaning
 * full ink, as libvips delivers them (Adobe's inverted JPEG samples already turned back, which is
 * what Pillow's "CMYK;I" raw mode does too), or, with `inverted`, as an Adobe JPEG stores them
 * (libjpeg's own output), turned back here.
 */
export function cmykToRgb(cmyk: Uint8Array, pixels: number, channels: number, inverted = false): Uint8Array {
  const rgb = new Uint8Array(pixels * 3);
  const flip = inverted ? 255 : 0;
  for (let p = 0, i = 0, o = 0; p < pixels; p++, i += channels, o += 3) {
    const nk = 255 - (flip ^ cmyk[i + 3]!);
    rgb[o] = nk - muldiv255(flip ^ cmyk[i]!, nk);
    rgb[o + 1] = nk - muldiv255(flip ^ cmyk[i + 1]!, nk);
    rgb[o + 2] = nk - muldiv255(flip ^ cmyk[i + 2]!, nk);
  }
  return rgb;
}

/** Pillow's MULDIV255(a, b): a * b / 255 rounded its way; never above b, so the result stays in 0..255. */
function muldiv255(a: number, b: number): number {
  const t = a * b + 128;
  return ((t >> 8) + t) >> 8;
}
