import { createServer, request, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/**
 * A fault-injecting HTTP proxy for integration tests: it sits in front of the test S3 server and
 * makes some requests fail the ways real S3 and real networks do, so retry paths run against the
 * real SDK and the real server instead of mocks. Which request gets which fault follows a seeded
 * schedule, so a failing run replays exactly.
 *
 * Faults:
 *  - `error500`: answered here with 500 InternalError (S3 XML body); the server never sees it.
 *  - `slowDown503`: answered here with 503 SlowDown (S3 XML body), as S3 throttles.
 *  - `reset`: the connection is dropped before any answer; the server never sees the request.
 *  - `lostResponse`: the server handles the request, then the connection is dropped before the
 *    answer reaches the client (a PUT that landed but looks failed: the case that makes retried
 *    non-idempotent requests interesting).
 *  - `dropMidBody`: the server's answer starts, half its body is delivered, then the connection
 *    is dropped. Only GETs are chosen, and only answers with a body of at least `minBodyToDrop`
 *    bytes are cut (ranged reads, object downloads, long error bodies); shorter ones pass whole.
 */
export type FaultKind = 'error500' | 'slowDown503' | 'reset' | 'lostResponse' | 'dropMidBody';

/** How often each fault is chosen, as probabilities per request (their sum must be at most 1). */
export type FaultRates = Partial<Record<FaultKind, number>>;

/** Settings for `startFaultProxy`. */
export interface FaultProxyOptions {
  /** The server to forward to, e.g. `http://127.0.0.1:4568`. */
  readonly target: string;
  /** Seeds the schedule (default 1). */
  readonly seed?: number;
  readonly rates: FaultRates;
  /**
   * Faults injected into one request (same method, path, query and range) before it is let
   * through (default 2). Keeps the outcome a test of retrying, not of luck: with the SDK's five
   * tries a request always gets through eventually, while every kind of retry still happens.
   */
  readonly maxFaultsPerRequest?: number;
  /** Only requests this accepts can be faulted (default: all). */
  readonly eligible?: (request: ProxiedRequest) => boolean;
  /** Smallest answer body `dropMidBody` cuts (default 64 bytes). */
  readonly minBodyToDrop?: number;
  /**
   * Milliseconds every request waits before it is handled (default 0): the round trip a worker
   * sees from S3, for benches of request-bound paths such as publishing. With no fault rates the
   * proxy is then a pure latency proxy.
   */
  readonly latencyMs?: number;
}

/** What the schedule sees of a request. */
export interface ProxiedRequest {
  readonly method: string;
  /** Path and query, as sent. */
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
}

/** One injected fault, for assertions and for replaying a failure. */
export interface InjectedFault {
  readonly kind: FaultKind;
  readonly method: string;
  readonly url: string;
  readonly range: string | undefined;
}

/** A running proxy. */
export interface FaultProxy {
  /** `http://127.0.0.1:<port>`: use it as the S3 endpoint. */
  readonly endpoint: string;
  /** Every fault injected so far, in order. */
  readonly faults: readonly InjectedFault[];
  /** Requests received so far. */
  requests(): number;
  /** Counts of injected faults by kind. */
  counts(): Record<FaultKind, number>;
  /** Turns injection off or on (default on); a disabled proxy forwards everything. */
  setEnabled(enabled: boolean): void;
  /** Stops listening and drops open connections. Safe to call twice. */
  close(): Promise<void>;
}

const FAULT_KINDS: readonly FaultKind[] = ['error500', 'slowDown503', 'reset', 'lostResponse', 'dropMidBody'];

/** xorshift32: tiny, seeded and the same on every platform. */
function seeded(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 4294967296;
  };
}

function s3ErrorXml(code: string, message: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message><RequestId>fault-proxy</RequestId></Error>`;
}

/** Starts the proxy on 127.0.0.1 port 0. */
export async function startFaultProxy(options: FaultProxyOptions): Promise<FaultProxy> {
  const target = new URL(options.target);
  const random = seeded(options.seed ?? 1);
  const maxFaults = options.maxFaultsPerRequest ?? 2;
  const minBodyToDrop = options.minBodyToDrop ?? 64;
  const rates = FAULT_KINDS.map((kind) => [kind, options.rates[kind] ?? 0] as const);
  const total = rates.reduce((a, [, r]) => a + r, 0);
  if (total > 1 || rates.some(([, r]) => r < 0)) throw new RangeError(`fault rates must be non-negative and sum to at most 1, got ${total}`);
  const faults: InjectedFault[] = [];
  const faultsPerRequest = new Map<string, number>();
  const sockets = new Set<Socket>();
  let received = 0;
  let enabled = true;

  /** Draws the next fault from the schedule; one draw per request, so the schedule does not depend on timing. */
  const draw = (req: ProxiedRequest): FaultKind | undefined => {
    const roll = random();
    if (!enabled || (options.eligible !== undefined && !options.eligible(req))) return undefined;
    // Only GET answers carry a body worth cutting (HEAD, PUT, POST and DELETE answers are empty or tiny).
    const kinds = req.method === 'GET' ? rates : rates.filter(([kind]) => kind !== 'dropMidBody');
    const identity = `${req.method} ${req.url} ${String(req.headers.range ?? '')}`;
    if ((faultsPerRequest.get(identity) ?? 0) >= maxFaults) return undefined;
    let acc = 0;
    for (const [kind, rate] of kinds) {
      acc += rate;
      if (roll < acc) {
        faultsPerRequest.set(identity, (faultsPerRequest.get(identity) ?? 0) + 1);
        return kind;
      }
    }
    return undefined;
  };
  const record = (kind: FaultKind, req: IncomingMessage): void => {
    faults.push({ kind, method: req.method ?? '', url: req.url ?? '', range: typeof req.headers.range === 'string' ? req.headers.range : undefined });
  };

  const answerError = (req: IncomingMessage, res: ServerResponse, status: number, code: string, message: string): void => {
    // The request body is read first, so the client sees an answer, not a broken pipe.
    req.resume();
    req.on('end', () => {
      const body = s3ErrorXml(code, message);
      res.writeHead(status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body), ...(status === 503 ? { 'retry-after': '0' } : {}) });
      res.end(body);
    });
  };

  const forward = (req: IncomingMessage, res: ServerResponse, fault: FaultKind | undefined): void => {
    const headers = { ...req.headers };
    // The proxy has already told the client to continue; the server gets the body straight away.
    delete headers.expect;
    const upstream = request(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers },
      (answer) => {
        const length = Number(answer.headers['content-length'] ?? 0);
        if (fault === 'lostResponse') {
          answer.resume();
          answer.on('end', () => res.socket?.destroy());
          return;
        }
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        if (fault !== 'dropMidBody' || length < minBodyToDrop) {
          answer.pipe(res);
          return;
        }
        record('dropMidBody', req);
        const cut = Math.floor(length / 2);
        let sent = 0;
        answer.on('data', (chunk: Buffer) => {
          if (sent >= cut) return;
          const piece = chunk.subarray(0, cut - sent);
          sent += piece.length;
          if (sent < cut) {
            res.write(piece);
            return;
          }
          res.write(piece, () => res.socket?.destroy());
          answer.destroy();
        });
      },
    );
    upstream.on('error', () => res.socket?.destroy());
    req.pipe(upstream);
  };

  const latencyMs = options.latencyMs ?? 0;
  const server = createServer((req, res) => {
    if (latencyMs > 0) setTimeout(() => handle(req, res), latencyMs);
    else handle(req, res);
  });
  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    received++;
    req.on('error', () => undefined);
    res.on('error', () => undefined);
    const proxied: ProxiedRequest = { method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers };
    const fault = draw(proxied);
    if (fault !== undefined && fault !== 'dropMidBody') record(fault, req);
    switch (fault) {
      case 'error500':
        answerError(req, res, 500, 'InternalError', 'We encountered an internal error. Please try again.');
        return;
      case 'slowDown503':
        answerError(req, res, 503, 'SlowDown', 'Please reduce your request rate.');
        return;
      case 'reset':
        req.socket.destroy();
        return;
      default:
        forward(req, res, fault);
    }
  };
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  let closed: Promise<void> | undefined;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    faults,
    requests: () => received,
    counts: () => Object.fromEntries(FAULT_KINDS.map((k) => [k, faults.filter((f) => f.kind === k).length])) as Record<FaultKind, number>,
    setEnabled: (on) => {
      enabled = on;
    },
    close() {
      closed ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      });
      return closed;
    },
  };
}
