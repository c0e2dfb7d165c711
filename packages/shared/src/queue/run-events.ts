/**
 * What a run reports while it works. The embedded queue and the CLI's progress display speak
 * this; the distributed mode turns the same facts into BullMQ progress and `vecmill status`.
 */
export type RunEvent =
  | {
      readonly type: 'run-start';
      readonly runId: string;
      readonly splits: number;
      readonly pending: number;
      readonly bytes: number;
      /** What decodes plain JPEGs when the run embeds images (the native libjpeg-turbo addon, or sharp and why). */
      readonly jpegDecoder?: string;
    }
  | { readonly type: 'split-progress'; readonly split: number; readonly rows: number }
  | { readonly type: 'split-done'; readonly split: number; readonly rows: number; readonly failed: number; readonly computed: boolean; readonly bytes: number }
  | { readonly type: 'split-retry'; readonly split: number; readonly attempt: number; readonly delayMs: number; readonly error: string }
  | { readonly type: 'split-failed'; readonly split: number; readonly error: string }
  | { readonly type: 'merge-start'; readonly runId: string }
  | { readonly type: 'merge-done'; readonly runId: string; readonly rowsIn: number; readonly rowsOk: number; readonly rowsFailed: number }
  | { readonly type: 'warning'; readonly message: string };

/** Receives run events; must not throw. */
export type RunEventSink = (event: RunEvent) => void;
