// Builds vecmill's optional native JPEG decoder (jpeg-decode.c -> build/jpeg-decode.node) with the
// system C compiler against libjpeg(-turbo), the library Debian's Pillow links. Run by the root
// `build` and `prepare` scripts. Without a compiler, Node's headers or libjpeg's, it says so in one
// line and exits 0: vecmill then decodes every image with sharp. `--require` (the Docker images)
// makes a failed build an error instead.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const output = join(here, 'build', 'jpeg-decode.node');
const required = process.argv.includes('--require');

function skip(reason) {
  rmSync(output, { force: true });
  if (required) {
    console.error(`vecmill: the native JPEG decoder did not build: ${reason}`);
    process.exit(1);
  }
  console.log(`vecmill: native JPEG decoder not built (${reason}); images will decode with sharp`);
  process.exit(0);
}

const headers = [join(dirname(process.execPath), '..', 'include', 'node'), '/usr/include/node'].find((d) => existsSync(join(d, 'node_api.h')));
if (headers === undefined) skip("Node's C headers (node_api.h) not found");
mkdirSync(dirname(output), { recursive: true });
const args = ['-O2', '-Wall', '-shared', '-fPIC', `-I${headers}`, '-Wl,-rpath,$ORIGIN', '-o', output, join(here, 'jpeg-decode.c'), '-ljpeg'];
const compilers = ['cc', 'gcc', 'clang'];
let result;
for (const compiler of compilers) {
  result = spawnSync(compiler, args, { encoding: 'utf8' });
  if (result.error === undefined) break;
}
if (result.error !== undefined) skip(`no C compiler (tried ${compilers.join(', ')})`);
if (result.status !== 0) {
  const text = `${result.stderr}`;
  skip(/jpeglib\.h|-ljpeg/.test(text) ? 'libjpeg headers or library missing: install libjpeg62-turbo-dev' : `compiler failed: ${text.trim().split('\n')[0]}`);
}
try {
  createRequire(import.meta.url)(output);
} catch (err) {
  skip(`built but does not load: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`);
}
console.log('vecmill: native JPEG decoder built (libjpeg-turbo)');
