import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/** What the user asked for with `--device`. */
export type DeviceRequest = 'cpu' | 'cuda' | 'auto';

/** What the embedder will actually do, decided before any session exists. */
export interface ProviderPlan {
  readonly device: 'cpu' | 'cuda';
  /** onnxruntime execution providers in preference order. */
  readonly providers: readonly string[];
  /** One line for the log when the request could not be honoured. */
  readonly warning: string | undefined;
  /** Sessions per device: a GPU is kept busy by overlapping a few sessions (one CUDA stream each). */
  readonly sessions: number;
  /** Default batch size for the device when the user gave none. */
  readonly defaultBatchSize: number;
}

/** What the running onnxruntime-node build offers, as reported by `listSupportedBackends()` plus a file check. */
export interface ProviderAvailability {
  readonly backends: readonly { readonly name: string; readonly bundled: boolean }[];
  /** True when the CUDA provider library (installed by `ONNXRUNTIME_NODE_INSTALL=cuda12`) is on disk. */
  readonly cudaLibraryPresent: boolean;
}

/**
 * Chooses execution providers. Kept pure so the GPU decision logic is tested on machines without
 * a GPU: `cuda` without the provider library falls back to the CPU with one warning instead of
 * failing a night's run; `auto` uses CUDA only when it is installed.
 */
export function planExecutionProviders(request: DeviceRequest, available: ProviderAvailability): ProviderPlan {
  const cudaKnown = available.backends.some((b) => b.name === 'cuda');
  const cudaUsable = cudaKnown && available.cudaLibraryPresent;
  if (request === 'cpu' || (request === 'auto' && !cudaUsable)) return cpuPlan(undefined);
  if (cudaUsable) {
    return { device: 'cuda', providers: ['cuda', 'cpu'], warning: undefined, sessions: 2, defaultBatchSize: 256 };
  }
  return cpuPlan(
    cudaKnown
      ? '--device cuda: the CUDA provider of onnxruntime-node is not installed (reinstall with ONNXRUNTIME_NODE_INSTALL=cuda12 and CUDA 12 + cuDNN 9 libraries); running on the CPU'
      : '--device cuda: this onnxruntime-node build has no CUDA provider; running on the CPU',
  );
}

function cpuPlan(warning: string | undefined): ProviderPlan {
  return { device: 'cpu', providers: ['cpu'], warning, sessions: 1, defaultBatchSize: 32 };
}

/** Reads what the installed onnxruntime-node offers. */
export async function detectProviderAvailability(): Promise<ProviderAvailability> {
  const ort = await import('onnxruntime-node');
  const require = createRequire(import.meta.url);
  const pkgDir = dirname(require.resolve('onnxruntime-node/package.json'));
  const binDir = join(pkgDir, 'bin', 'napi-v6', process.platform, process.arch);
  return {
    backends: ort.listSupportedBackends(),
    cudaLibraryPresent: existsSync(join(binDir, 'libonnxruntime_providers_cuda.so')),
  };
}

/** Message shown when a CUDA session could not be created at run time although the library exists. */
export function cudaSessionFallbackWarning(cause: string): string {
  return `--device cuda: creating a CUDA session failed (${cause}); running on the CPU — check the NVIDIA driver, CUDA 12 and cuDNN 9 libraries`;
}
