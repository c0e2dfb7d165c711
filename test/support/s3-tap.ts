import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One request as the tap saw it. */
export interface TapRequest {
  readonly method: string;
  /** Decoded path: `/bucket/key`. */
  readonly path: string;
  /** True for a conditional create (`If-None-Match: *`): a shard marker commit. */
  readonly conditional: boolean;
}

/** What to do with a request before it reaches the server. */
export type TapAction = 'forward' | 'drop' | { readonly status: number; readonly code: string };

/** Hooks a test sets to act at an exact point of a worker's S3 traffic. */
export interface TapHooks {
  /** Awaited before the request is forwarded: a test may kill or stop the worker here, or hold the request. */
  before?: (req: TapRequest) => TapAction | Promise<TapAction>;
  /** Awaited after the server answered and before the answer is relayed. */
  after?: (req: TapRequest, status: number) => void | Promise<void>;
}

/** An HTTP pass-through in front of a real S3-compatible server. */
export interface S3Tap {
  /** Endpoint to give a worker instead of the server's. */
  readonly endpoint: string;
  readonly requests: (TapRequest & { status: number | 'dropped' })[];
  hooks: TapHooks;
  close(): Promise<void>;
}

/**
 * A transparent proxy for one worker's S3 requests, so a test can SIGKILL or SIGSTOP that worker
 * at an exact protocol step (data written, marker not yet; marker written, job not yet
 * completed) or answer with a 503. The server behind it is the real one, untouched.
 */
export async function startS3Tap(upstream: string): Promise<S3Tap> {
  const target = new URL(upstream);
  const tap: S3Tap = {
    endpoint: '',
    requests: [],
    hooks: {},
    close: () => Promise.resolve(),
  };
  const server: Server = createServer((req: IncomingMessage, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://tap');
      const info: TapRequest = { method: req.method ?? 'GET', path: decodeURIComponent(url.pathname), conditional: req.headers['if-none-match'] === '*' };
      const action = (await tap.hooks.before?.(info)) ?? 'forward';
      if (action === 'drop') {
        tap.requests.push({ ...info, status: 'dropped' });
        req.socket.destroy();
        return;
      }
      if (action !== 'forward') {
        req.resume();
        tap.requests.push({ ...info, status: action.status });
        res.writeHead(action.status, { 'Content-Type': 'application/xml' });
        res.end(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>${action.code}</Code><Message>injected by the test tap</Message></Error>`);
        return;
      }
      const up = request(
        { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
        (answer) => {
          void (async () => {
            const status = answer.statusCode ?? 0;
            tap.requests.push({ ...info, status });
            await tap.hooks.after?.(info, status);
            if (res.destroyed || req.socket.destroyed) {
              answer.resume();
              return;
            }
            res.writeHead(status, answer.headers);
            answer.pipe(res);
          })();
        },
      );
      up.on('error', () => res.destroy());
      req.pipe(up);
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return Object.assign(tap, {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
}
