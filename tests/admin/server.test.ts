// The admin RPC listener over real sockets: framing, JSON-RPC errors, parameter binding, hostile input.
import assert from "node:assert/strict";
import { runOutOfDescriptors } from "../fd_exhaustion.ts";
import {
  type AdminCommand,
  AdminError,
  bindParams,
  INVALID_PARAMS,
  INVALID_REQUEST,
  isLoopback,
  MAX_CONNECTIONS,
  MAX_REQUEST_BYTES,
  METHOD_NOT_FOUND,
  PARSE_ERROR,
  startAdminServer,
} from "../../src/admin/server.ts";
import { adminCall, AdminCallError, parseReply } from "../../src/admin/client.ts";
import type { Log } from "../../src/log.ts";
import { LineReader } from "../line_reader.ts";

function memoryLog(
  lines: string[] = [],
): Log & { lines: string[]; waitFor(re: RegExp, n: number): Promise<void> } {
  const waiters: { re: RegExp; n: number; resolve: () => void }[] = [];
  const count = (re: RegExp) => lines.filter((l) => re.test(l)).length;
  const add = (line: string) => {
    lines.push(line);
    for (const w of waiters.splice(0)) count(w.re) >= w.n ? w.resolve() : waiters.push(w);
  };
  return {
    lines,
    debug: (m) => add(`DEBUG ${m}`),
    info: (m) => add(`INFO ${m}`),
    warn: (m) => add(`WARN ${m}`),
    error: (m) => add(`ERROR ${m}`),
    enabled: () => true,
    /** Resolves once `n` lines match `re`; fails after 30 s with the count so far. */
    waitFor(re: RegExp, n: number): Promise<void> {
      if (count(re) >= n) return Promise.resolve();
      const { promise, resolve, reject } = Promise.withResolvers<void>();
      const timer = setTimeout(() => reject(new Error(`${count(re)} of ${n} lines match ${re}`)), 30_000);
      waiters.push({ re, n, resolve: () => (clearTimeout(timer), resolve()) });
      return promise;
    },
  };
}

function commands(): Map<string, AdminCommand> {
  const m = new Map<string, AdminCommand>();
  m.set("echo", { params: ["a", "?b"], help: "echo", run: (args) => args });
  m.set("many", { params: ["first", "...rest"], help: "rest", run: ([first, rest]) => ({ first, rest }) });
  m.set("refuse", {
    params: [],
    help: "fails",
    run: () => {
      throw new AdminError(1, "no, because reasons");
    },
  });
  m.set("crash", {
    params: [],
    help: "bug",
    run: () => {
      throw new TypeError("undefined is not a function");
    },
  });
  m.set("slow", { params: ["ms"], help: "waits", run: ([v]) => Promise.resolve(v) });
  m.set("big", { params: ["n"], help: "a long reply", run: ([n]) => "x".repeat(n as number) });
  return m;
}

/** A raw newline-delimited connection to the admin port. */
class Raw {
  readonly #lines: LineReader;
  private constructor(readonly conn: Deno.TcpConn) {
    this.#lines = new LineReader(conn.readable);
  }
  static async open(port: number): Promise<Raw> {
    return new Raw(await Deno.connect({ hostname: "127.0.0.1", port }));
  }
  async send(text: string | Uint8Array): Promise<void> {
    const bytes = typeof text === "string" ? new TextEncoder().encode(text) : text;
    let off = 0;
    while (off < bytes.length) off += await this.conn.write(bytes.subarray(off));
  }
  /** The next line, or null at EOF. */
  line(): Promise<string | null> {
    return this.#lines.next();
  }
  close(): void {
    try {
      this.conn.close();
    } catch {
      // closed by the server
    }
  }
}

async function withServer(
  fn: (port: number, log: ReturnType<typeof memoryLog>) => Promise<void>,
  readTimeoutMs?: number,
): Promise<void> {
  const log = memoryLog();
  const server = startAdminServer({ host: "127.0.0.1", port: 0, commands: commands(), log, readTimeoutMs });
  try {
    await fn(server.address.port, log);
  } finally {
    await server.close();
  }
}

Deno.test("requests on one connection are answered in order, with positional and named params", async () => {
  await withServer(async (port) => {
    const c = await Raw.open(port);
    try {
      await c.send(
        '{"jsonrpc":"2.0","method":"echo","params":[1],"id":1}\n' +
          '{"jsonrpc":"2.0","method":"echo","params":{"a":"x","b":2},"id":"two"}\n' +
          '{"jsonrpc":"2.0","method":"many","params":[1,2,3],"id":3}\n' +
          '{"jsonrpc":"2.0","method":"echo","params":[9]}\n' + // a notification: no reply
          "\n" + // a blank line: ignored
          '[{"jsonrpc":"2.0","method":"echo","params":[4],"id":4},{"jsonrpc":"2.0","method":"nope","id":5}]\n',
      );
      assert.deepEqual(JSON.parse((await c.line())!), { jsonrpc: "2.0", result: [1], id: 1 });
      assert.deepEqual(JSON.parse((await c.line())!), { jsonrpc: "2.0", result: ["x", 2], id: "two" });
      assert.deepEqual(JSON.parse((await c.line())!).result, { first: 1, rest: [2, 3] });
      const batch = JSON.parse((await c.line())!);
      assert.equal(batch.length, 2);
      assert.deepEqual(batch[0].result, [4]);
      assert.equal(batch[1].error.code, METHOD_NOT_FOUND);
    } finally {
      c.close();
    }
  });
});

Deno.test("bad input gets JSON-RPC errors and the connection keeps working", async () => {
  await withServer(async (port, log) => {
    const c = await Raw.open(port);
    try {
      const ask = async (text: string | Uint8Array) => {
        await c.send(text);
        return JSON.parse((await c.line())!);
      };
      assert.equal((await ask("{not json\n")).error.code, PARSE_ERROR);
      assert.equal((await ask(Uint8Array.of(0xff, 0xfe, 10))).error.code, PARSE_ERROR);
      assert.equal((await ask("42\n")).error.code, INVALID_REQUEST);
      assert.equal((await ask("[]\n")).error.code, INVALID_REQUEST);
      assert.equal((await ask('{"method":7,"id":1}\n')).error.code, INVALID_REQUEST);
      assert.equal((await ask('{"method":"echo","id":{"x":1}}\n')).error.code, INVALID_REQUEST);
      const unknown = await ask('{"method":"frobnicate\\u0000","id":2}\n');
      assert.equal(unknown.error.code, METHOD_NOT_FOUND);
      assert.match(unknown.error.message, /unknown command 'frobnicate\?'/);
      const missing = await ask('{"method":"echo","params":[],"id":3}\n');
      assert.equal(missing.error.code, INVALID_PARAMS);
      assert.match(missing.error.message, /too few arguments; expected: a \[b\]/);
      assert.equal((await ask('{"method":"echo","params":[1,2,3],"id":4}\n')).error.code, INVALID_PARAMS);
      assert.equal((await ask('{"method":"echo","params":{"zzz":1},"id":5}\n')).error.code, INVALID_PARAMS);
      assert.equal((await ask('{"method":"echo","params":"str","id":6}\n')).error.code, INVALID_PARAMS);
      const refused = await ask('{"method":"refuse","id":7}\n');
      assert.deepEqual(refused.error, { code: 1, message: "no, because reasons" });
      const crashed = await ask('{"method":"crash","id":8}\n');
      assert.equal(crashed.error.code, -32603);
      assert.match(crashed.error.message, /crash failed: undefined is not a function/);
      assert.ok(log.lines.some((l) => l.startsWith("ERROR admin RPC: crash failed")), log.lines.join("\n"));
      // Still serving after all that.
      assert.deepEqual((await ask('{"method":"echo","params":["ok"],"id":9}\n')).result, ["ok"]);
    } finally {
      c.close();
    }
  });
});

Deno.test("a request line over the size limit is refused and the connection closed; others are unaffected", async () => {
  await withServer(async (port) => {
    const big = await Raw.open(port);
    const other = await Raw.open(port);
    try {
      // Sent without a newline: the server must not buffer it without bound.
      const chunk = new Uint8Array(64 * 1024).fill(0x61);
      let refused: string | null = null;
      const reading = big.line().then((l) => refused = l);
      try {
        for (let sent = 0; sent <= MAX_REQUEST_BYTES + chunk.length; sent += chunk.length) {
          await big.send(chunk);
        }
      } catch {
        // The server may close while we are still writing.
      }
      await reading;
      assert.ok(refused, "expected an error line before the close");
      assert.equal(JSON.parse(refused!).error.code, INVALID_REQUEST);
      assert.equal(await big.line(), null);
      await other.send('{"method":"echo","params":[1],"id":1}\n');
      assert.deepEqual(JSON.parse((await other.line())!).result, [1]);
    } finally {
      big.close();
      other.close();
    }
  });
});

Deno.test("connections that leave a request unfinished are closed, so they cannot use up the admin slots", async () => {
  await withServer(async (port) => {
    // More than MAX_CONNECTIONS, each with half a request: without a read timeout they would hold every slot.
    const holders = await Promise.all(Array.from({ length: MAX_CONNECTIONS + 4 }, () => Raw.open(port)));
    try {
      for (const h of holders) await h.send('{"id":1,');
      for (const h of holders) assert.equal(await h.line(), null, "closed by the server");
      const c = await Raw.open(port);
      try {
        await c.send('{"method":"echo","params":[1],"id":1}\n');
        assert.deepEqual(JSON.parse((await c.line())!).result, [1]);
      } finally {
        c.close();
      }
    } finally {
      for (const h of holders) h.close();
    }
  }, 200);
});

Deno.test("connections that never read their replies are closed too, so they cannot use up the admin slots", async () => {
  await withServer(async (port, log) => {
    // Each asks for far more than socket buffers hold (32 MB) and reads none of it: the server's writes stall.
    const batch = '{"method":"big","params":[1000000],"id":1}\n'.repeat(32);
    const holders = await Promise.all(Array.from({ length: MAX_CONNECTIONS }, () => Raw.open(port)));
    try {
      await Promise.all(holders.map((h) => h.send(batch)));
      await log.waitFor(/did not take its reply/, MAX_CONNECTIONS);
      const c = await Raw.open(port);
      try {
        await c.send('{"method":"echo","params":[1],"id":1}\n');
        assert.deepEqual(JSON.parse((await c.line())!).result, [1]);
      } finally {
        c.close();
      }
    } finally {
      for (const h of holders) h.close();
    }
  }, 200);
});

Deno.test("adminCall returns results and classifies failures", async () => {
  await withServer(async (port) => {
    assert.deepEqual(await adminCall({ host: "127.0.0.1", port }, "echo", [5, 6]), [5, 6]);
    await assert.rejects(
      () => adminCall({ host: "127.0.0.1", port }, "refuse", []),
      (e: unknown) => e instanceof AdminCallError && e.kind === "command" && e.code === 1,
    );
  });
  // Nothing listens there any more.
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  await assert.rejects(
    () => adminCall({ host: "127.0.0.1", port }, "getinfo", []),
    (e: unknown) =>
      e instanceof AdminCallError && e.kind === "connect" &&
      /Is Coulomb running with rpc:\/\//.test(e.message),
  );
  assert.throws(
    () => parseReply("garbage"),
    (e: unknown) => e instanceof AdminCallError && e.kind === "protocol",
  );
  assert.throws(() => parseReply('{"id":1}'), /neither result nor error/);
});

Deno.test("a server that never answers is cut off by the client's timeout", async () => {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = l.accept();
  try {
    await assert.rejects(
      () =>
        adminCall({ host: "127.0.0.1", port: (l.addr as Deno.NetAddr).port, timeoutMs: 200 }, "getinfo", []),
      /no answer from 127\.0\.0\.1:\d+ within 0\.2 s/,
    );
  } finally {
    (await accepted).close();
    l.close();
  }
});

Deno.test("binding params: rest parameters, named rest values and loopback detection", () => {
  assert.deepEqual(bindParams({ params: ["...ids"] }, [1, 2]), [[1, 2]]);
  assert.deepEqual(bindParams({ params: ["...ids"] }, { ids: 3 }), [[3]]);
  assert.deepEqual(bindParams({ params: ["items", "?limit"] }, { items: ["a"] }), [["a"], undefined]);
  assert.throws(() => bindParams({ params: ["items"] }, {}), /missing argument 'items'/);
  assert.ok(
    isLoopback("127.0.0.1") && isLoopback("::1") && isLoopback("localhost") && isLoopback("127.3.2.1"),
  );
  assert.ok(!isLoopback("0.0.0.0") && !isLoopback("10.0.0.1") && !isLoopback("::"));
});

Deno.test("a non-loopback admin address is warned about at start", async () => {
  const log = memoryLog();
  const server = startAdminServer({ host: "0.0.0.0", port: 0, commands: commands(), log });
  await server.close();
  assert.ok(
    log.lines.some((l) => /^WARN admin RPC listens on 0\.0\.0\.0, not loopback/.test(l)),
    log.lines.join("\n"),
  );
});

Deno.test("admin server: out of file descriptors, an accept waits and is retried; the listener carries on", async () => {
  const got = await runOutOfDescriptors("admin");
  assert.deepEqual(JSON.parse(got.reply), { jsonrpc: "2.0", result: "pong", id: 1 });
  assert.equal(got.warnings.length, 1, "one failed accept, then a pause, not a retry at once");
  assert.match(got.warnings[0], /^admin RPC: accepting failed: .*(Too many open files|os error 24)/);
});
