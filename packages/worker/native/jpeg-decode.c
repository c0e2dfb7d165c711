/*
 * vecmill's native JPEG decoder: libjpeg(-turbo) called the way Pillow's JpegDecode.c calls it
 * (jpeg_read_header, then the library's defaults: ISLOW integer IDCT, fancy upsampling; only the
 * output colour space and, for --fast-decode, the DCT scale are set), so on the same library its
 * pixels are Pillow's by construction. Built by packages/worker/native/build.mjs; optional: without
 * it vecmill decodes with sharp. Two functions, both synchronous and allocation-free on the JS side:
 *
 *   header(bytes: Uint8Array, out: Int32Array(7)) -> boolean
 *     out = [width, height, components, jpeg_color_space, data_precision, exif_orientation,
 *     adobe] (orientation 0 when there is no EXIF, -1 when the EXIF does not parse; adobe 1 when
 *     the file has an Adobe APP14 marker).
 *   decode(bytes: Uint8Array, eighths: number, dest: Uint8Array, orientation: 1..8,
 *          region?: Int32Array(4)) -> boolean
 *     8-bit RGB at eighths/8 of the size, rows packed, into dest (exactly width*height*3 bytes),
 *     turned upright for an EXIF orientation other than 1 (a pure permutation of the pixels, as
 *     sharp's autoOrient does). With `region` = [left, top, width, height] (orientation 1 only),
 *     only the pixels inside it are promised: libjpeg-turbo's jpeg_crop_scanline and
 *     jpeg_skip_scanlines leave out the columns and rows a center crop never reads (no IDCT,
 *     upsampling or colour conversion for them; the entropy data is still all decoded, so a
 *     damaged file is refused exactly as by a whole decode). The decoded area is widened by a
 *     margin of two iMCUs on each side, so the edge handling of fancy upsampling at a crop edge
 *     never reaches a promised pixel: those are bit-identical to a whole decode.
 *
 * Greyscale and YCbCr JPEGs decode to RGB inside libjpeg. Adobe CMYK and YCCK JPEGs decode to CMYK
 * and are converted the way Pillow's `convert("RGB")` converts them: Pillow reads every CMYK JPEG
 * with the inverted "CMYK;I" raw mode (Adobe's convention) and then applies its naive cmyk2rgb
 * (Convert.c), R = (255 - K) - (C * (255 - K)) / 255 in its MULDIV255 rounding, so these pixels are
 * Pillow's too. CMYK without the Adobe marker is declined (Pillow would invert it all the same,
 * which turns such a file into its negative).
 *
 * Either returns false, having printed nothing, on any libjpeg error or warning (corrupt or
 * truncated data, unsupported precision): the caller then leaves the image to sharp, which decides
 * what the row's error is, exactly as before this decoder existed.
 */
#include <node_api.h>
#include <setjmp.h>
#include <stdio.h>
#include <stddef.h>
#include <string.h>
#include <jpeglib.h>

struct failure_mgr {
  struct jpeg_error_mgr pub;
  jmp_buf jump;
};

/* Errors and warnings both abandon the decode through longjmp; nothing reaches stderr. */
static void fail_exit(j_common_ptr cinfo) {
  struct failure_mgr *err = (struct failure_mgr *)cinfo->err;
  longjmp(err->jump, 1);
}

static void fail_on_warning(j_common_ptr cinfo, int msg_level) {
  if (msg_level < 0) fail_exit(cinfo);
}

static void silent_output(j_common_ptr cinfo) { (void)cinfo; }

static unsigned read16(const JOCTET *p, int big) { return big ? (unsigned)(p[0] << 8 | p[1]) : (unsigned)(p[1] << 8 | p[0]); }
static unsigned long read32(const JOCTET *p, int big) {
  return big ? ((unsigned long)p[0] << 24 | (unsigned long)p[1] << 16 | (unsigned long)p[2] << 8 | p[3])
             : ((unsigned long)p[3] << 24 | (unsigned long)p[2] << 16 | (unsigned long)p[1] << 8 | p[0]);
}

/*
 * Orientation (tag 0x0112) of IFD0 of the APP1 "Exif" segment: 0 when absent, -1 when malformed or
 * when there are several Exif segments (which one a reader believes is then not certain).
 */
static int exif_orientation(j_decompress_ptr cinfo) {
  jpeg_saved_marker_ptr m, exif = NULL;
  for (m = cinfo->marker_list; m != NULL; m = m->next) {
    if (m->marker != JPEG_APP0 + 1 || m->data_length < 6 || memcmp(m->data, "Exif\0\0", 6) != 0) continue;
    if (exif != NULL) return -1;
    exif = m;
  }
  if (exif == NULL) return 0;
  if (exif->data_length < 14) return -1;
  const JOCTET *tiff = exif->data + 6;
  unsigned long size = exif->data_length - 6;
  int big;
  if (tiff[0] == 'I' && tiff[1] == 'I') big = 0;
  else if (tiff[0] == 'M' && tiff[1] == 'M') big = 1;
  else return -1;
  if (read16(tiff + 2, big) != 42) return -1;
  unsigned long ifd = read32(tiff + 4, big);
  if (ifd + 2 > size) return -1;
  unsigned count = read16(tiff + ifd, big);
  if (ifd + 2 + 12UL * count > size) return -1;
  for (unsigned i = 0; i < count; i++) {
    const JOCTET *entry = tiff + ifd + 2 + 12UL * i;
    if (read16(entry, big) != 0x0112) continue;
    if (read16(entry + 2, big) != 3 || read32(entry + 4, big) != 1) return -1;
    unsigned value = read16(entry + 8, big);
    return value >= 1 && value <= 8 ? (int)value : -1;
  }
  return 0;
}

static int bytes_of(napi_env env, napi_value value, unsigned char **data, size_t *length) {
  napi_typedarray_type type;
  size_t count;
  void *ptr;
  napi_value buffer;
  size_t offset;
  if (napi_get_typedarray_info(env, value, &type, &count, &ptr, &buffer, &offset) != napi_ok || type != napi_uint8_array) return 0;
  *data = ptr;
  *length = count;
  return 1;
}

static napi_value js_bool(napi_env env, int value) {
  napi_value result;
  napi_get_boolean(env, value, &result);
  return result;
}

static napi_value type_error(napi_env env, const char *message) {
  napi_throw_type_error(env, NULL, message);
  return NULL;
}

/* What runs on an opened decompressor whose header is read; returns 1 on success. */
typedef int (*decompress_body)(j_decompress_ptr cinfo, void *context);

/*
 * Opens a decompressor on src, reads the header (saving APP1 segments when saveExif), runs body
 * and destroys the decompressor. The setjmp lives here, in the frame that stays active while body
 * runs, so any libjpeg error or warning in either lands back here: returns 0, printing nothing.
 */
static int run_decompressor(const unsigned char *src, size_t length, int saveExif, decompress_body body, void *context) {
  struct jpeg_decompress_struct cinfo;
  struct failure_mgr err;
  cinfo.err = jpeg_std_error(&err.pub);
  err.pub.error_exit = fail_exit;
  err.pub.emit_message = fail_on_warning;
  err.pub.output_message = silent_output;
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&cinfo);
    return 0;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, src, (unsigned long)length);
  if (saveExif) jpeg_save_markers(&cinfo, JPEG_APP0 + 1, 0xffff);
  jpeg_read_header(&cinfo, TRUE);
  int ok = body(&cinfo, context);
  jpeg_destroy_decompress(&cinfo);
  return ok;
}

/* header()'s body: the fields, from a decompressor whose header is read. */
static int read_fields(j_decompress_ptr cinfo, void *context) {
  int32_t *out = context;
  out[0] = (int32_t)cinfo->image_width;
  out[1] = (int32_t)cinfo->image_height;
  out[2] = cinfo->num_components;
  out[3] = (int32_t)cinfo->jpeg_color_space;
  out[4] = cinfo->data_precision;
  out[5] = exif_orientation(cinfo);
  out[6] = cinfo->saw_Adobe_marker ? 1 : 0;
  return 1;
}

static napi_value header(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  unsigned char *src;
  size_t srcLength, outLength;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2 || !bytes_of(env, argv[0], &src, &srcLength)) return type_error(env, "header(bytes: Uint8Array, out: Int32Array)");
  napi_typedarray_type type;
  void *outPtr;
  napi_value ab;
  size_t offset;
  if (napi_get_typedarray_info(env, argv[1], &type, &outLength, &outPtr, &ab, &offset) != napi_ok || type != napi_int32_array || outLength < 7)
    return type_error(env, "header(bytes: Uint8Array, out: Int32Array(7))");
  if (srcLength == 0) return js_bool(env, 0);
  return js_bool(env, run_decompressor(src, srcLength, 1, read_fields, outPtr));
}

/*
 * Where stored row `sy` of a width x height image lands once turned upright for `orientation`:
 * its pixel sx goes to dest + start + sx * step (bytes) of the upright image, `up` pixels wide.
 */
static void orient_row(int orientation, ptrdiff_t width, ptrdiff_t height, ptrdiff_t sy, ptrdiff_t *start, ptrdiff_t *step) {
  ptrdiff_t up = orientation >= 5 ? height : width;
  switch (orientation) {
    case 2: *start = (sy * up + width - 1) * 3; *step = -3; break;
    case 3: *start = ((height - 1 - sy) * up + width - 1) * 3; *step = -3; break;
    case 4: *start = (height - 1 - sy) * up * 3; *step = 3; break;
    case 5: *start = sy * 3; *step = up * 3; break;
    case 6: *start = (height - 1 - sy) * 3; *step = up * 3; break;
    case 7: *start = ((width - 1) * up + height - 1 - sy) * 3; *step = -up * 3; break;
    case 8: *start = ((width - 1) * up + sy) * 3; *step = -up * 3; break;
    default: *start = sy * width * 3; *step = 3; break;
  }
}

/* Reads an optional Int32Array(4) region; only orientation 1 takes one. */
static int region_of(napi_env env, napi_value value, int orientation, const int32_t **region) {
  napi_valuetype kind;
  if (napi_typeof(env, value, &kind) != napi_ok) return 0;
  if (kind == napi_undefined) return 1;
  napi_typedarray_type type;
  size_t length, offset;
  void *data;
  napi_value buffer;
  if (orientation != 1 || napi_get_typedarray_info(env, value, &type, &length, &data, &buffer, &offset) != napi_ok || type != napi_int32_array || length != 4) return 0;
  const int32_t *r = data;
  if (r[0] < 0 || r[1] < 0 || r[2] < 1 || r[3] < 1) return 0;
  *region = r;
  return 1;
}

/*
 * Limits the decode to `region` (output pixels) widened by two iMCUs on each side: columns through
 * jpeg_crop_scanline (which widens them further, to iMCU boundaries), rows above it skipped. Sets
 * the first column and count of what libjpeg will output, and the row after the last one to read.
 */
static void crop(j_decompress_ptr cinfo, const int32_t *region, JDIMENSION *firstColumn, JDIMENSION *columns, JDIMENSION *endRow) {
  long marginX = 2L * cinfo->max_h_samp_factor * cinfo->min_DCT_scaled_size;
  long marginY = 2L * cinfo->max_v_samp_factor * cinfo->min_DCT_scaled_size;
  long width = cinfo->output_width, height = cinfo->output_height;
  long left = region[0] - marginX, right = (long)region[0] + region[2] + marginX;
  long top = region[1] - marginY, bottom = (long)region[1] + region[3] + marginY;
  if (left < 0) left = 0;
  if (right > width) right = width;
  if (top < 0) top = 0;
  if (bottom > height) bottom = height;
  if (left >= right || top >= bottom) return;
  if (left > 0 || right < width) {
    JDIMENSION x = (JDIMENSION)left, w = (JDIMENSION)(right - left);
    jpeg_crop_scanline(cinfo, &x, &w);
    *firstColumn = x;
    *columns = w;
  }
  *endRow = (JDIMENSION)bottom;
  if (top > 0) jpeg_skip_scanlines(cinfo, (JDIMENSION)top);
}

/* Pillow's MULDIV255(a, b): a * b / 255, rounded its way. */
static inline int muldiv255(int a, int b) {
  int t = a * b + 128;
  return ((t >> 8) + t) >> 8;
}

/* One pixel of Pillow's "CMYK;I" unpacking (255 - each sample) then cmyk2rgb. */
static inline void cmyk_inverted_to_rgb(const JSAMPLE *from, unsigned char *to) {
  int nk = from[3];
  int r = nk - muldiv255(255 - from[0], nk), g = nk - muldiv255(255 - from[1], nk), b = nk - muldiv255(255 - from[2], nk);
  to[0] = (unsigned char)(r < 0 ? 0 : r > 255 ? 255 : r);
  to[1] = (unsigned char)(g < 0 ? 0 : g > 255 ? 255 : g);
  to[2] = (unsigned char)(b < 0 ? 0 : b > 255 ? 255 : b);
}

/* What decode() asks of the decompressor. */
struct decode_request {
  unsigned char *dest;
  size_t destLength;
  int32_t eighths, orientation;
  const int32_t *region;
};

/* decode()'s body: the pixels, from a decompressor whose header is read; 0 when it declines the image. */
static int write_pixels(j_decompress_ptr cinfo, void *context) {
  const struct decode_request *req = context;
  int cmyk = (cinfo->jpeg_color_space == JCS_CMYK || cinfo->jpeg_color_space == JCS_YCCK) && cinfo->saw_Adobe_marker;
  if (cinfo->jpeg_color_space != JCS_YCbCr && cinfo->jpeg_color_space != JCS_GRAYSCALE && !cmyk) return 0;
  cinfo->out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
  cinfo->scale_num = (unsigned)req->eighths;
  cinfo->scale_denom = 8;
  jpeg_calc_output_dimensions(cinfo);
  size_t stride = (size_t)cinfo->output_width * 3;
  if (cinfo->output_components != (cmyk ? 4 : 3) || stride * cinfo->output_height != req->destLength) return 0;
  jpeg_start_decompress(cinfo);
  JDIMENSION outHeight = cinfo->output_height, endRow = outHeight, firstColumn = 0, columns = cinfo->output_width;
  if (req->region != NULL) crop(cinfo, req->region, &firstColumn, &columns, &endRow);
  if (req->orientation == 1) {
    /* Rows are read straight into place (RGB), or through one row of libjpeg's pool and converted (CMYK). */
    JSAMPARRAY cmykRow = cmyk ? (*cinfo->mem->alloc_sarray)((j_common_ptr)cinfo, JPOOL_IMAGE, columns * 4, 1) : NULL;
    JSAMPROW rows[16];
    while (cinfo->output_scanline < endRow) {
      unsigned char *at = req->dest + (size_t)cinfo->output_scanline * stride + (size_t)firstColumn * 3;
      if (cmyk) {
        jpeg_read_scanlines(cinfo, cmykRow, 1);
        const JSAMPLE *from = cmykRow[0];
        for (JDIMENSION x = 0; x < columns; x++, from += 4, at += 3) cmyk_inverted_to_rgb(from, at);
        continue;
      }
      JDIMENSION n = endRow - cinfo->output_scanline;
      if (n > 16) n = 16;
      for (JDIMENSION i = 0; i < n; i++) rows[i] = at + (size_t)i * stride;
      jpeg_read_scanlines(cinfo, rows, n);
    }
    /*
     * The rows below the region are skipped, not abandoned, and the last one is read: a skip to
     * the very end would not decode the entropy data, so damage there would go unreported.
     */
    if (cinfo->output_scanline < outHeight) {
      if (outHeight - cinfo->output_scanline > 1) jpeg_skip_scanlines(cinfo, outHeight - cinfo->output_scanline - 1);
      JSAMPARRAY last = (*cinfo->mem->alloc_sarray)((j_common_ptr)cinfo, JPOOL_IMAGE, columns * (JDIMENSION)cinfo->output_components, 1);
      jpeg_read_scanlines(cinfo, last, 1);
    }
  } else {
    /* One row at a time through a row of libjpeg's own pool (freed with the decompressor), then converted and scattered. */
    JSAMPARRAY row = (*cinfo->mem->alloc_sarray)((j_common_ptr)cinfo, JPOOL_IMAGE, (JDIMENSION)(cinfo->output_width * cinfo->output_components), 1);
    ptrdiff_t width = cinfo->output_width, height = cinfo->output_height;
    while (cinfo->output_scanline < cinfo->output_height) {
      ptrdiff_t sy = cinfo->output_scanline, start, step;
      jpeg_read_scanlines(cinfo, row, 1);
      orient_row(req->orientation, width, height, sy, &start, &step);
      unsigned char *to = req->dest + start;
      const JSAMPLE *from = row[0];
      if (cmyk) {
        for (ptrdiff_t sx = 0; sx < width; sx++, from += 4, to += step) cmyk_inverted_to_rgb(from, to);
      } else {
        for (ptrdiff_t sx = 0; sx < width; sx++, from += 3, to += step) {
          to[0] = from[0];
          to[1] = from[1];
          to[2] = from[2];
        }
      }
    }
  }
  jpeg_finish_decompress(cinfo);
  return 1;
}

static napi_value decode(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  unsigned char *src, *dest;
  size_t srcLength, destLength;
  int32_t eighths, orientation;
  const int32_t *region = NULL;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 4 || !bytes_of(env, argv[0], &src, &srcLength) || napi_get_value_int32(env, argv[1], &eighths) != napi_ok ||
      !bytes_of(env, argv[2], &dest, &destLength) || napi_get_value_int32(env, argv[3], &orientation) != napi_ok || eighths < 1 || eighths > 8 ||
      orientation < 1 || orientation > 8 || (argc >= 5 && !region_of(env, argv[4], orientation, &region)))
    return type_error(env, "decode(bytes: Uint8Array, eighths: 1..8, dest: Uint8Array, orientation: 1..8, region?: Int32Array(4) with orientation 1)");
  if (srcLength == 0) return js_bool(env, 0);

  struct decode_request req = {dest, destLength, eighths, orientation, region};
  return js_bool(env, run_decompressor(src, srcLength, 0, write_pixels, &req));
}

NAPI_MODULE_INIT() {
  napi_property_descriptor properties[] = {
    {"header", NULL, header, NULL, NULL, NULL, napi_enumerable, NULL},
    {"decode", NULL, decode, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof properties / sizeof properties[0], properties);
  return exports;
}
