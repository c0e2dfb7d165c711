import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { detectProviderAvailability, planExecutionProviders, type ProviderAvailability } from '@vecmill/shared/model/execution-provider';

const withCuda: ProviderAvailability = { backends: [{ name: 'cpu', bundled: true }, { name: 'cuda', bundled: false }], cudaLibraryPresent: true };
const cudaNotInstalled: ProviderAvailability = { ...withCuda, cudaLibraryPresent: false };
const noCudaBuild: ProviderAvailability = { backends: [{ name: 'cpu', bundled: true }], cudaLibraryPresent: false };

describe('planExecutionProviders', () => {
  const cases: { name: string; request: 'cpu' | 'cuda' | 'auto'; available: ProviderAvailability; device: 'cpu' | 'cuda'; providers: string[]; warns: RegExp | undefined }[] = [
    { name: 'cpu is always cpu', request: 'cpu', available: withCuda, device: 'cpu', providers: ['cpu'], warns: undefined },
    { name: 'cuda with the provider installed', request: 'cuda', available: withCuda, device: 'cuda', providers: ['cuda', 'cpu'], warns: undefined },
    { name: 'cuda without the provider library falls back with a warning', request: 'cuda', available: cudaNotInstalled, device: 'cpu', providers: ['cpu'], warns: /ONNXRUNTIME_NODE_INSTALL=cuda12/ },
    { name: 'cuda on a build without CUDA falls back with a warning', request: 'cuda', available: noCudaBuild, device: 'cpu', providers: ['cpu'], warns: /no CUDA provider/ },
    { name: 'auto picks cuda when installed', request: 'auto', available: withCuda, device: 'cuda', providers: ['cuda', 'cpu'], warns: undefined },
    { name: 'auto falls back silently', request: 'auto', available: cudaNotInstalled, device: 'cpu', providers: ['cpu'], warns: undefined },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const plan = planExecutionProviders(c.request, c.available);
      assert.equal(plan.device, c.device);
      assert.deepEqual(plan.providers, c.providers);
      if (c.warns === undefined) assert.equal(plan.warning, undefined);
      else assert.match(plan.warning ?? '', c.warns);
    });
  }

  it('sizes GPU runs differently from CPU runs', () => {
    const gpu = planExecutionProviders('cuda', withCuda);
    const cpu = planExecutionProviders('cpu', withCuda);
    assert.ok(gpu.defaultBatchSize > cpu.defaultBatchSize);
    assert.ok(gpu.sessions > cpu.sessions);
  });

  it('reads this machine: the CPU backend exists and no CUDA library is installed here', async () => {
    const available = await detectProviderAvailability();
    assert.ok(available.backends.some((b) => b.name === 'cpu'));
    assert.equal(planExecutionProviders('cuda', available).device, available.cudaLibraryPresent ? 'cuda' : 'cpu');
  });
});
