/**
 * True when a JPEG has an Adobe APP14 segment before its first scan. Photoshop writes one into
 * every CMYK JPEG and stores the samples inverted; Pillow reads every CMYK JPEG as inverted
 * ("CMYK;I"), so only with this marker is a CMYK JPEG's meaning the one Pillow gives it, and only
 * then do vecmill's libjpeg decoders (native and WebAssembly) take it. Reads segment headers only.
 */
export function hasAdobeMarker(jpeg: Uint8Array): boolean {
  if (jpeg[0] !== 0xff || jpeg[1] !== 0xd8) return false;
  let at = 2;
  while (at + 4 <= jpeg.length) {
    if (jpeg[at] !== 0xff) return false;
    const marker = jpeg[at + 1]!;
    if (marker === 0xff) {
      at++;
      continue;
    }
    if (marker === 0xda || marker === 0xd9) return false;
    const length = (jpeg[at + 2]! << 8) | jpeg[at + 3]!;
    if (marker === 0xee && length >= 7 && at + 9 <= jpeg.length && String.fromCharCode(...jpeg.subarray(at + 4, at + 9)) === 'Adobe') return true;
    at += 2 + length;
  }
  return false;
}
