/**
 * Runs `fn` on every item with at most `limit` calls in flight, so request-bound loops (marker
 * reads, promotion copies) hide per-request latency without flooding the store. The first
 * failure fails the whole; calls already started are awaited by their lanes.
 */
export async function forEachLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++] as T);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
}
