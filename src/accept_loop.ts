// Accepting and tracking the connections of the small operator listeners (admin RPC, metrics): a bounded
// number served at once, a failed accept retried after a pause, and a close that stops accepting, closes every
// connection and waits for their handlers.

/** Pause after a failed accept before the next (ms): retrying at once would spin and flood the log. */
export const ACCEPT_RETRY_MS = 200;

/** What serveConnections needs. */
export interface ServeConnectionsOptions {
  /** Connections served at once; more are closed as they arrive. */
  readonly maxConnections: number;
  /** Serves one connection; it is closed once this settles. */
  readonly serve: (conn: Deno.Conn) => Promise<void>;
  /** An accept failed (e.g. out of file descriptors); the next is tried after ACCEPT_RETRY_MS. */
  readonly onAcceptError: (e: unknown) => void;
  /** A connection was closed at once because maxConnections were open. */
  readonly onRefused?: () => void;
}

/** Connections being served on a listener. */
export interface ServedConnections {
  /** Stops accepting, closes every connection and waits for their handlers. */
  close(): Promise<void>;
}

/** Accepts on `listener` until closed, serving each connection with `opts.serve`. */
export function serveConnections(listener: Deno.Listener, opts: ServeConnectionsOptions): ServedConnections {
  const open = new Set<Deno.Conn>();
  const handlers = new Set<Promise<void>>();
  let closed = false;
  const accepting = (async () => {
    for (;;) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch (e) {
        if (closed || e instanceof Deno.errors.BadResource || e instanceof Deno.errors.Interrupted) return;
        opts.onAcceptError(e);
        await new Promise((resolve) => setTimeout(resolve, ACCEPT_RETRY_MS));
        continue;
      }
      if (closed || open.size >= opts.maxConnections) {
        if (!closed) opts.onRefused?.();
        closeQuietly(conn);
        continue;
      }
      open.add(conn);
      const handler: Promise<void> = opts.serve(conn).finally(() => {
        open.delete(conn);
        closeQuietly(conn);
        handlers.delete(handler);
      });
      handlers.add(handler);
    }
  })();

  let closing: Promise<void> | undefined;
  return {
    close() {
      closing ??= (async () => {
        closed = true;
        closeQuietly(listener);
        await accepting;
        for (const conn of open) closeQuietly(conn);
        await Promise.allSettled([...handlers]);
      })();
      return closing;
    },
  };
}

/** Closes a connection or listener that may already be closed. */
export function closeQuietly(c: Deno.Conn | Deno.Listener): void {
  try {
    c.close();
  } catch {
    // Already closed, by the peer or by us.
  }
}
