import assert from "node:assert/strict";
import {
  faultMethods,
  type Faults,
  newFaults,
  type RpcServer,
  type RpcServerOptions,
  startRpcServer,
} from "../../scripts/simnet/rpc_server.ts";
import { CoreRpcError, type RestProvider, RPC, type RpcMethodTable } from "../../scripts/simnet/rpc_types.ts";
import { sha256d } from "../../src/chain/hash.ts";
import { toHex, toHexReversed } from "../../src/chain/hex.ts";

const USER = "alice";
const PASSWORD = "s3cret:with:colons";
const basic = (user: string, password: string) => "Basic " + btoa(`${user}:${password}`);
const GOOD_AUTH = basic(USER, PASSWORD);

/** A small method table standing in for methods.ts. */
function fakeMethods(state: { notified: number }): RpcMethodTable {
  return {
    getblockcount: { params: [], handler: () => 800000 },
    getblockhash: {
      params: ["height"],
      handler([height]) {
        if (typeof height !== "number" || height > 10) {
          throw new CoreRpcError(RPC.INVALID_PARAMETER, "Block height out of range");
        }
        return "0".repeat(62) + String(height).padStart(2, "0");
      },
    },
    getblock: { params: ["blockhash", "?verbosity|verbose"], handler: (args) => ({ args }) },
    echo: { params: Array.from({ length: 10 }, (_, i) => `?arg${i}`), handler: (args) => args },
    notify: {
      params: [],
      handler() {
        state.notified++;
        return null;
      },
    },
    boom: {
      params: [],
      handler() {
        throw new Error("kaboom");
      },
    },
    throwstring: {
      params: [],
      handler() {
        throw "plain string";
      },
    },
    bigint: { params: [], handler: () => 1n },
    nothing: { params: [], handler: () => undefined },
    asyncfail: {
      params: [],
      handler: () => Promise.reject(new CoreRpcError(RPC.VERIFY_REJECTED, "txn-mempool-conflict")),
    },
  };
}

interface Harness {
  server: RpcServer;
  faults: Faults;
  methods: RpcMethodTable;
  state: { notified: number };
}

async function withServer(
  extra: Partial<RpcServerOptions>,
  fn: (h: Harness) => Promise<void>,
): Promise<void> {
  const state = { notified: 0 };
  const faults = newFaults();
  const methods = { ...fakeMethods(state), ...faultMethods(faults) };
  const server = await startRpcServer({
    port: 0,
    methods,
    faults,
    auth: { user: USER, password: PASSWORD },
    ...extra,
  });
  try {
    await fn({ server, faults, methods, state });
  } finally {
    await server.close();
  }
}

interface Reply {
  status: number;
  headers: Headers;
  text: string;
}

async function post(
  server: RpcServer,
  body: string | Uint8Array<ArrayBuffer>,
  auth: string | null = GOOD_AUTH,
  path = "/",
): Promise<Reply> {
  const headers: Record<string, string> = {};
  if (auth !== null) headers.authorization = auth;
  const res = await fetch(new URL(path, server.url), { method: "POST", headers, body });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

async function get(server: RpcServer, path: string, method = "GET"): Promise<Reply> {
  const res = await fetch(new URL(path, server.url), { method, headers: { authorization: GOOD_AUTH } });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

async function getBytes(
  server: RpcServer,
  path: string,
): Promise<{ status: number; type: string; bytes: Uint8Array }> {
  const res = await fetch(new URL(path, server.url));
  return {
    status: res.status,
    type: res.headers.get("content-type") ?? "",
    bytes: new Uint8Array(await res.arrayBuffer()),
  };
}

async function rpc(
  server: RpcServer,
  request: unknown,
): Promise<{ status: number; body: unknown; text: string }> {
  const r = await post(server, JSON.stringify(request));
  return { status: r.status, text: r.text, body: r.text === "" ? undefined : JSON.parse(r.text) };
}

/** Sends raw bytes on a fresh TCP connection and reads until the server closes it. */
async function rawExchange(port: number, data: string | Uint8Array): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
    let off = 0;
    while (off < bytes.length) off += await conn.write(bytes.subarray(off));
    const chunks: Uint8Array[] = [];
    const buf = new Uint8Array(64 * 1024);
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      chunks.push(buf.slice(0, n));
    }
    return chunks.map((c) => String.fromCharCode(...c)).join("");
  } finally {
    conn.close();
  }
}

/** Splits a stream of HTTP responses framed by Content-Length. */
function parseResponses(raw: string): { statusLine: string; headers: Map<string, string>; body: string }[] {
  const out = [];
  let rest = raw;
  while (rest.length > 0) {
    const headEnd = rest.indexOf("\r\n\r\n");
    assert.ok(headEnd > 0, `no head end in ${JSON.stringify(rest)}`);
    const [statusLine, ...lines] = rest.slice(0, headEnd).split("\r\n");
    const headers = new Map(lines.map((l) => {
      const i = l.indexOf(":");
      return [l.slice(0, i).toLowerCase(), l.slice(i + 1).trim()] as [string, string];
    }));
    const len = Number(headers.get("content-length") ?? 0);
    out.push({ statusLine, headers, body: rest.slice(headEnd + 4, headEnd + 4 + len) });
    rest = rest.slice(headEnd + 4 + len);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Dialects

Deno.test("legacy replies carry result, error and id; errors map to 404 and 500", async () => {
  await withServer({}, async ({ server }) => {
    const ok = await post(server, JSON.stringify({ method: "getblockcount", params: [], id: 1 }));
    assert.equal(ok.status, 200);
    assert.equal(ok.headers.get("content-type"), "application/json");
    assert.equal(ok.text, '{"result":800000,"error":null,"id":1}\n');

    const missing = await post(server, JSON.stringify({ method: "invalidmethod", id: "x" }));
    assert.equal(missing.status, 404);
    assert.equal(
      missing.text,
      '{"result":null,"error":{"code":-32601,"message":"Method not found"},"id":"x"}\n',
    );

    const bad = await rpc(server, { method: "getblockhash", params: [42], id: 1 });
    assert.equal(bad.status, 500);
    assert.deepEqual(bad.body, {
      result: null,
      error: { code: -8, message: "Block height out of range" },
      id: 1,
    });

    // "1.0" is legacy too, and a legacy request without id is still answered, without an id key.
    const noId = await post(server, JSON.stringify({ jsonrpc: "1.0", method: "getblockcount" }));
    assert.equal(noId.status, 200);
    assert.equal(noId.text, '{"result":800000,"error":null}\n');
    // Other fields such as "version" are ignored; id of any JSON type is echoed.
    const odd = await rpc(server, { version: "1.1", method: "getblockcount", id: { a: [1, null] } });
    assert.deepEqual(odd.body, { result: 800000, error: null, id: { a: [1, null] } });
  });
});

Deno.test("2.0 replies carry result or error (never both) with 200; notifications run and get 204", async () => {
  await withServer({}, async ({ server, state }) => {
    const ok = await post(server, JSON.stringify({ jsonrpc: "2.0", method: "getblockcount", id: 7 }));
    assert.equal(ok.status, 200);
    assert.equal(ok.text, '{"jsonrpc":"2.0","result":800000,"id":7}\n');

    const err = await post(server, JSON.stringify({ jsonrpc: "2.0", method: "invalidmethod", id: 8 }));
    assert.equal(err.status, 200);
    assert.equal(err.text, '{"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found"},"id":8}\n');
    const err2 = await rpc(server, { jsonrpc: "2.0", method: "getblockhash", params: [42], id: 9 });
    assert.equal(err2.status, 200);
    assert.deepEqual(err2.body, {
      jsonrpc: "2.0",
      error: { code: -8, message: "Block height out of range" },
      id: 9,
    });

    const note = await post(server, JSON.stringify({ jsonrpc: "2.0", method: "notify" }));
    assert.equal(note.status, 204);
    assert.equal(note.text, "");
    assert.equal(state.notified, 1);
    // A failing notification is not answered either.
    const failing = await post(
      server,
      JSON.stringify({ jsonrpc: "2.0", method: "getblockhash", params: [42] }),
    );
    assert.equal(failing.status, 204);
    // "id": null is an id: not a notification.
    const nullId = await post(server, JSON.stringify({ jsonrpc: "2.0", method: "getblockcount", id: null }));
    assert.equal(nullId.status, 200);
    assert.equal(nullId.text, '{"jsonrpc":"2.0","result":800000,"id":null}\n');
  });
});

Deno.test("malformed request objects answer -32600 with 400 in the dialect read so far", async () => {
  await withServer({}, async ({ server }) => {
    const cases: [unknown, unknown][] = [
      [{ id: 1 }, { result: null, error: { code: -32600, message: "Missing method" }, id: 1 }],
      [{ method: null, id: 1 }, { result: null, error: { code: -32600, message: "Missing method" }, id: 1 }],
      [{ method: 5, id: 2 }, {
        result: null,
        error: { code: -32600, message: "Method must be a string" },
        id: 2,
      }],
      [
        { method: "getblockcount", params: "x", id: 3 },
        { result: null, error: { code: -32600, message: "Params must be an array or object" }, id: 3 },
      ],
      // Core's own interface_rpc.py expectations: no id key, legacy shape.
      [
        { jsonrpc: 2, method: "getblockcount" },
        { result: null, error: { code: -32600, message: "jsonrpc field must be a string" } },
      ],
      [
        { jsonrpc: "3.0", method: "getblockcount" },
        { result: null, error: { code: -32600, message: "JSON-RPC version not supported" } },
      ],
      // A 2.0 request that fails validation still gets a 2.0-shaped body, with HTTP 400.
      [{ jsonrpc: "2.0", id: 5 }, {
        jsonrpc: "2.0",
        error: { code: -32600, message: "Missing method" },
        id: 5,
      }],
    ];
    for (const [request, expected] of cases) {
      const r = await rpc(server, request);
      assert.equal(r.status, 400, JSON.stringify(request));
      assert.deepEqual(r.body, expected);
    }
    // params null is the same as absent.
    const nullParams = await rpc(server, { method: "getblockcount", params: null, id: 1 });
    assert.equal(nullParams.status, 200);
  });
});

Deno.test("unparsable bodies answer -32700 with 500 and id null", async () => {
  await withServer({}, async ({ server }) => {
    const parseError = '{"result":null,"error":{"code":-32700,"message":"Parse error"},"id":null}\n';
    for (
      const body of ["", "this is bad", '{"method":"getblockcount"', '{"method":"x"} trailing', "\ufeff{}"]
    ) {
      const r = await post(server, body);
      assert.equal(r.status, 500, JSON.stringify(body));
      assert.equal(r.headers.get("content-type"), "application/json");
      assert.equal(r.text, parseError);
    }
    const topLevel =
      '{"result":null,"error":{"code":-32700,"message":"Top-level object parse error"},"id":null}\n';
    for (const body of ["42", '"getblockcount"', "null", "true"]) {
      const r = await post(server, body);
      assert.equal(r.status, 500);
      assert.equal(r.text, topLevel);
    }
  });
});

Deno.test("batches keep order, answer each item in its dialect, omit notifications", async () => {
  await withServer({}, async ({ server, state }) => {
    // Core's test_batch_request calls, mixing dialects item by item.
    const r = await rpc(server, [
      { method: "getblockcount", id: 1 },
      { jsonrpc: "2.0", method: "invalidmethod", id: 2 },
      { jsonrpc: "2.0", method: "notify" },
      { method: "getblockhash", params: [0], id: 3 },
      { pizza: "sausage", id: 4 },
      { method: "getblockhash", params: [42], id: 5 },
    ]);
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, [
      { result: 800000, error: null, id: 1 },
      { jsonrpc: "2.0", error: { code: -32601, message: "Method not found" }, id: 2 },
      { result: "0".repeat(64), error: null, id: 3 },
      { result: null, error: { code: -32600, message: "Missing method" }, id: 4 },
      { result: null, error: { code: -8, message: "Block height out of range" }, id: 5 },
    ]);
    assert.equal(state.notified, 1);

    const empty = await post(server, "[]");
    assert.equal(empty.status, 200);
    assert.equal(empty.text, "[]\n");

    const allNotes = await post(server, JSON.stringify([{ jsonrpc: "2.0", method: "notify" }]));
    assert.equal(allNotes.status, 204);
    assert.equal(allNotes.text, "");
    assert.equal(state.notified, 2);

    const nonObject = await rpc(server, [42, { method: "getblockcount", id: 1 }]);
    assert.equal(nonObject.status, 200);
    assert.deepEqual(nonObject.body, [
      { result: null, error: { code: -32600, message: "Invalid Request object" }, id: null },
      { result: 800000, error: null, id: 1 },
    ]);

    const versions = await rpc(server, [{ jsonrpc: "2.1", method: "getblockcount", id: 1 }]);
    assert.deepEqual(versions.body, [
      { result: null, error: { code: -32600, message: "JSON-RPC version not supported" }, id: 1 },
    ]);
  });
});

Deno.test("named parameters map onto positions, with aliases, holes and args", async () => {
  await withServer({}, async ({ server }) => {
    const call = async (method: string, params: unknown) =>
      (await rpc(server, { method, params, id: 1 })).body as {
        result: unknown;
        error: { code: number; message: string } | null;
      };
    assert.deepEqual((await call("getblock", { blockhash: "h", verbosity: 0 })).result, { args: ["h", 0] });
    assert.deepEqual((await call("getblock", { verbose: true, blockhash: "h" })).result, {
      args: ["h", true],
    });
    assert.deepEqual((await call("getblock", { blockhash: "h" })).result, { args: ["h"] });
    // The first alias present wins; the other is then unknown.
    assert.deepEqual((await call("getblock", { blockhash: "h", verbosity: 1, verbose: true })).error, {
      code: -8,
      message: "Unknown named parameter verbose",
    });
    assert.deepEqual((await call("getblock", { blockhash: "h", foo: 1 })).error, {
      code: -8,
      message: "Unknown named parameter foo",
    });
    // Core's rpc_named_arguments.py expectations for echo.
    assert.deepEqual((await call("echo", {})).result, []);
    assert.deepEqual((await call("echo", { arg1: 1 })).result, [null, 1]);
    assert.deepEqual((await call("echo", { arg9: null })).result, Array(10).fill(null));
    assert.deepEqual((await call("echo", { arg0: 0, arg3: 3, arg9: 9 })).result, [
      0,
      null,
      null,
      3,
      null,
      null,
      null,
      null,
      null,
      9,
    ]);
    assert.deepEqual((await call("echo", { args: [0, 1], arg3: 3, arg5: 5 })).result, [
      0,
      1,
      null,
      3,
      null,
      5,
    ]);
    assert.deepEqual((await call("echo", { args: [0, 1], arg1: 1 })).error, {
      code: -8,
      message: "Parameter arg1 specified twice both as positional and named argument",
    });
    assert.deepEqual((await call("echo", { args: [0, null, 2], arg1: 1 })).error, {
      code: -8,
      message: "Parameter arg1 specified twice both as positional and named argument",
    });
  });
});

Deno.test("wrong argument counts answer -1 with a usage line", async () => {
  await withServer({}, async ({ server }) => {
    for (const params of [[], [1, 2]]) {
      const r = await rpc(server, { method: "getblockhash", params, id: 1 });
      assert.equal(r.status, 500);
      const err = (r.body as { error: { code: number; message: string } }).error;
      assert.equal(err.code, -1);
      assert.match(err.message, /^getblockhash height\n/);
    }
    const tooMany = await rpc(server, { method: "getblock", params: ["h", 1, 2], id: 1 });
    assert.match(
      (tooMany.body as { error: { message: string } }).error.message,
      /^getblock blockhash \( verbosity \)/,
    );
    // A named call that leaves out a required parameter.
    const named = await rpc(server, { method: "getblock", params: {}, id: 1 });
    assert.equal((named.body as { error: { code: number } }).error.code, -1);
    const none = await rpc(server, { method: "getblockcount", params: [1], id: 1 });
    assert.match((none.body as { error: { message: string } }).error.message, /^getblockcount\n/);
  });
});

Deno.test("handler failures become RPC errors and never take the server down", async () => {
  await withServer({}, async ({ server }) => {
    const errorOf = async (method: string) =>
      ((await rpc(server, { jsonrpc: "2.0", method, id: 1 })).body as { error: unknown }).error;
    assert.deepEqual(await errorOf("boom"), { code: -1, message: "kaboom" });
    assert.deepEqual(await errorOf("throwstring"), { code: -1, message: "plain string" });
    assert.deepEqual(await errorOf("asyncfail"), { code: -26, message: "txn-mempool-conflict" });
    const big = (await errorOf("bigint")) as { code: number; message: string };
    assert.equal(big.code, -1);
    assert.match(big.message, /BigInt/);
    const legacy = await rpc(server, { method: "boom", id: 1 });
    assert.equal(legacy.status, 500);
    assert.deepEqual(await rpc(server, { method: "nothing", id: 1 }), {
      status: 200,
      text: '{"result":null,"error":null,"id":1}\n',
      body: { result: null, error: null, id: 1 },
    });
    // Names of Object.prototype members are not methods.
    assert.equal((await rpc(server, { method: "toString", id: 1 })).status, 404);
    assert.equal((await rpc(server, { method: "__proto__", id: 1 })).status, 404);
    assert.equal((await rpc(server, { method: "getblockcount", id: 1 })).status, 200);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// HTTP

Deno.test("only POST reaches JSON-RPC; unknown verbs and paths are refused with empty bodies", async () => {
  await withServer({}, async ({ server }) => {
    const g = await get(server, "/");
    assert.equal(g.status, 405);
    assert.equal(g.text, "JSONRPC server handles only POST requests");
    const del = await get(server, "/", "DELETE");
    assert.equal(del.status, 405);
    assert.equal(del.text, "");
    const unknown = await post(server, "{}", GOOD_AUTH, "/nothing/here");
    assert.equal(unknown.status, 404);
    assert.equal(unknown.text, "");
    // Query strings make the path differ from "/" exactly, as in Core.
    assert.equal((await post(server, "{}", GOOD_AUTH, "/?x=1")).status, 404);
    // REST is off unless a provider is given.
    assert.equal((await get(server, "/rest/chaininfo.json")).status, 404);
    // Wallet endpoints share the RPC handler.
    const wallet = await post(
      server,
      JSON.stringify({ method: "getblockcount", id: 1 }),
      GOOD_AUTH,
      "/wallet/w1",
    );
    assert.equal(wallet.status, 200);
  });
});

Deno.test("authentication: 401 with the jsonrpc realm; a wrong password does not stall other requests", async () => {
  await withServer({}, async ({ server }) => {
    const body = JSON.stringify({ method: "getblockcount", id: 1 });
    const missing = await post(server, body, null);
    assert.equal(missing.status, 401);
    assert.equal(missing.headers.get("www-authenticate"), 'Basic realm="jsonrpc"');
    assert.equal(missing.text, "");

    // The wrong password's reply is held back by a timer; a good request sent after it is answered first.
    const order: string[] = [];
    const wrong = post(server, body, basic(USER, "nope")).then((r) => (order.push("wrong"), r));
    const right = post(server, body).then((r) => (order.push("right"), r));
    const [w, r] = await Promise.all([wrong, right]);
    assert.deepEqual(order, ["right", "wrong"]);
    assert.equal(w.status, 401);
    assert.equal(w.headers.get("www-authenticate"), 'Basic realm="jsonrpc"');
    assert.equal(r.status, 200);

    const wrongs = [
      "Bearer abc",
      "Basic !!!!",
      "Basic " + btoa("nocolon"),
      basic("bob", PASSWORD),
      "basic x",
    ];
    const statuses = await Promise.all(wrongs.map(async (auth) => (await post(server, body, auth)).status));
    assert.deepEqual(statuses, wrongs.map(() => 401));
    // The password may itself contain colons: only the first one separates the user.
    assert.equal((await post(server, body, "Basic  " + btoa(`${USER}:${PASSWORD}`) + " ")).status, 200);
  });
});

Deno.test("cookie auth: written atomically without newline, rotated like a restart, deleted on close", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const state = { notified: 0 };
    const server = await startRpcServer({ port: 0, methods: fakeMethods(state), auth: { cookieDir: dir } });
    let closed = false;
    try {
      assert.equal(server.cookiePath, `${dir}/.cookie`);
      const cookie = await Deno.readTextFile(server.cookiePath!);
      assert.match(cookie, /^__cookie__:[0-9a-f]{64}$/);
      assert.equal((await Deno.stat(server.cookiePath!)).mode! & 0o777, 0o600);
      assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), [".cookie"]);
      const authOf = (c: string) => "Basic " + btoa(c);
      const body = JSON.stringify({ method: "getblockcount", id: 1 });
      assert.equal((await post(server, body, authOf(cookie))).status, 200);

      server.rotateCookie();
      const rotated = await Deno.readTextFile(server.cookiePath!);
      assert.match(rotated, /^__cookie__:[0-9a-f]{64}$/);
      assert.notEqual(rotated, cookie);
      assert.equal((await post(server, body, authOf(cookie))).status, 401);
      assert.equal((await post(server, body, authOf(rotated))).status, 200);
      assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), [".cookie"]);

      await server.close();
      closed = true;
      assert.deepEqual([...Deno.readDirSync(dir)], []);
    } finally {
      if (!closed) await server.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a full work queue answers 503 in plain text, like Core", async () => {
  const gate = Promise.withResolvers<void>();
  const started = Promise.withResolvers<void>();
  await withServer({ rpcThreads: 1, workQueue: 1 }, async ({ server, methods }) => {
    methods.wait = {
      params: [],
      async handler() {
        started.resolve();
        await gate.promise;
        return "done";
      },
    };
    const busyWorker = rpc(server, { method: "wait", id: 1 });
    await started.promise;
    // One of these waits in the queue, the other finds it full.
    const b = post(server, JSON.stringify({ method: "getblockcount", id: 2 }));
    const c = post(server, JSON.stringify({ method: "getblockcount", id: 3 }));
    const refused = await Promise.race([b, c]);
    assert.equal(refused.status, 503);
    assert.equal(refused.text, "Work queue depth exceeded");
    assert.notEqual(refused.headers.get("content-type"), "application/json");
    gate.resolve();
    assert.deepEqual((await busyWorker).body, { result: "done", error: null, id: 1 });
    const statuses = (await Promise.all([b, c])).map((r) => r.status).sort();
    assert.deepEqual(statuses, [200, 503]);
  });
});

Deno.test("keep-alive: pipelined requests on one connection are answered in order", async () => {
  await withServer({}, async ({ server }) => {
    const req = (id: number, extra = "") => {
      const body = JSON.stringify({ method: "getblockcount", id });
      return `POST / HTTP/1.1\r\nHost: x\r\nAuthorization: ${GOOD_AUTH}\r\nContent-Length: ${body.length}\r\n${extra}\r\n${body}`;
    };
    const raw = await rawExchange(server.port, req(1) + req(2) + req(3, "Connection: close\r\n"));
    const replies = parseResponses(raw);
    assert.equal(replies.length, 3);
    replies.forEach((r, i) => {
      assert.equal(r.statusLine, "HTTP/1.1 200 OK");
      assert.equal(r.body, `{"result":800000,"error":null,"id":${i + 1}}\n`);
    });
    assert.equal(replies[2].headers.get("connection"), "close");
    assert.equal(replies[0].headers.get("connection"), undefined);

    // HTTP/1.0 gets a 1.0 reply and, without keep-alive, a closed connection.
    const old = parseResponses(await rawExchange(server.port, "GET /nothing HTTP/1.0\r\n\r\n"));
    assert.equal(old.length, 1);
    assert.equal(old[0].statusLine, "HTTP/1.0 404 Not Found");
    assert.equal(old[0].headers.get("content-type"), "text/html; charset=ISO-8859-1");
  });
});

Deno.test("chunked request bodies and Expect: 100-continue are accepted", async () => {
  await withServer({}, async ({ server }) => {
    const text = JSON.stringify({ method: "getblockhash", params: [3], id: 1 });
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        const bytes = new TextEncoder().encode(text);
        c.enqueue(bytes.subarray(0, 10));
        c.enqueue(bytes.subarray(10));
        c.close();
      },
    });
    const res = await fetch(server.url, {
      method: "POST",
      headers: { authorization: GOOD_AUTH },
      body: stream,
    });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { result: "0".repeat(62) + "03", error: null, id: 1 });

    // The client holds the body back until it sees 100 Continue.
    const body = JSON.stringify({ method: "getblockcount", id: 9 });
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    const enc = new TextEncoder();
    const buf = new Uint8Array(4096);
    let raw = "";
    try {
      await conn.write(enc.encode(
        `POST / HTTP/1.1\r\nAuthorization: ${GOOD_AUTH}\r\nExpect: 100-continue\r\nConnection: close\r\n` +
          `Content-Length: ${body.length}\r\n\r\n`,
      ));
      const n = await conn.read(buf);
      assert.equal(String.fromCharCode(...buf.subarray(0, n!)), "HTTP/1.1 100 Continue\r\n\r\n");
      await conn.write(enc.encode(body));
      for (let m; (m = await conn.read(buf)) !== null;) raw += String.fromCharCode(...buf.subarray(0, m));
    } finally {
      conn.close();
    }
    assert.ok(raw.startsWith("HTTP/1.1 200 OK\r\n"), raw);
    assert.ok(raw.endsWith('{"result":800000,"error":null,"id":9}\n'));
  });
});

Deno.test("hostile input gets an error reply and the server keeps serving", async () => {
  await withServer({ maxBodyBytes: 1 << 20 }, async ({ server }) => {
    const works = async () =>
      assert.deepEqual((await rpc(server, { method: "getblockcount", id: 1 })).body, {
        result: 800000,
        error: null,
        id: 1,
      });
    // Declared too large: refused before any body byte is read.
    const declared = await rawExchange(server.port, "POST / HTTP/1.1\r\nContent-Length: 40000000\r\n\r\n");
    assert.match(declared, /^HTTP\/1\.1 413 Request Entity Too Large\r\n/);
    await works();
    // Actually sent: the client still gets to read the 413.
    const huge = await post(server, new Uint8Array(2 << 20).fill(0x20));
    assert.equal(huge.status, 413);
    await works();
    // Chunked past the cap.
    const chunk = "x".repeat(600_000);
    const chunked = await rawExchange(
      server.port,
      `POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n${(600_000).toString(16)}\r\n${chunk}\r\n` +
        `${(600_000).toString(16)}\r\n${chunk}\r\n0\r\n\r\n`,
    );
    assert.match(chunked, /^HTTP\/1\.1 413 /);
    await works();

    const parseError = '{"result":null,"error":{"code":-32700,"message":"Parse error"},"id":null}\n';
    const invalidUtf8 = new Uint8Array([
      ...new TextEncoder().encode('{"method":"getblockcount","id":"'),
      0xff,
      0xfe,
    ]);
    const badUtf8 = await post(server, new Uint8Array([...invalidUtf8, ...new TextEncoder().encode('"}')]));
    assert.equal(badUtf8.status, 500);
    assert.equal(badUtf8.text, parseError);
    const deep = await post(server, "[".repeat(100_000) + "]".repeat(100_000));
    assert.equal(deep.status, 500);
    assert.equal(deep.text, parseError);
    // UniValue's limit is 512 levels: the object and params array count too.
    const nested = (levels: number) =>
      `{"method":"echo","params":[${"[".repeat(levels)}${"]".repeat(levels)}],"id":1}`;
    assert.equal((await post(server, nested(510))).status, 200);
    assert.equal((await post(server, nested(511))).status, 500);

    for (
      const garbage of [
        "NOT HTTP AT ALL\r\n\r\n",
        "GET / HTTP/9.9\r\n\r\n",
        "POST / HTTP/1.1\r\nbad header\r\n\r\n",
      ]
    ) {
      assert.match(await rawExchange(server.port, garbage), /^HTTP\/1\.1 400 Bad Request\r\n/);
    }
    assert.match(
      await rawExchange(server.port, "POST / HTTP/1.1\r\nContent-Length: nope\r\n\r\n"),
      /^HTTP\/1\.1 400 /,
    );
    assert.match(
      await rawExchange(server.port, `GET / HTTP/1.1\r\nX: ${"a".repeat(9000)}\r\n\r\n`),
      /^HTTP\/1\.1 413 /,
    );
    // A client that vanishes mid-body is just forgotten.
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    await conn.write(new TextEncoder().encode("POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\n{"));
    conn.close();
    await works();
  });
});

Deno.test("an idle connection is closed after the server timeout", async () => {
  await withServer({ idleTimeoutMs: 20 }, async ({ server }) => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    try {
      // Nothing is sent: the server gives up on the connection and closes it without a reply.
      assert.equal(await conn.read(new Uint8Array(16)), null);
    } finally {
      conn.close();
    }
    assert.equal((await rpc(server, { method: "getblockcount", id: 1 })).status, 200);
  });
});

Deno.test("the default body cap is Core's 32 MiB", async () => {
  await withServer({}, async ({ server }) => {
    const at = await rawExchange(server.port, `POST / HTTP/1.1\r\nContent-Length: ${0x02000001}\r\n\r\n`);
    assert.match(at, /^HTTP\/1\.1 413 /);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Faults

Deno.test("dropNext closes connections without a reply; control RPCs are exempt", async () => {
  await withServer({}, async ({ server, faults }) => {
    faults.dropNext = 1;
    const control = await rpc(server, { method: "simnet_setfaults", params: {}, id: 1 });
    assert.equal((control.body as { result: { drop_next: number } }).result.drop_next, 1);
    // Not a byte comes back. (Deno's fetch would retry once on a reused keep-alive connection, hiding it.)
    const body = JSON.stringify({ method: "getblockcount", id: 1 });
    const dropped = await rawExchange(
      server.port,
      `POST / HTTP/1.1\r\nAuthorization: ${GOOD_AUTH}\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
    );
    assert.equal(dropped, "");
    assert.equal(faults.dropNext, 0);
    // A fetch on a connection of its own sees the drop as a network error.
    faults.dropNext = 1;
    const client = Deno.createHttpClient({});
    try {
      await assert.rejects(fetch(server.url, { method: "POST", body, client }), TypeError);
    } finally {
      client.close();
    }
    assert.equal((await rpc(server, { method: "getblockcount", id: 1 })).status, 200);
  });
});

Deno.test("busyNext answers 503 work-queue replies, then normal service resumes", async () => {
  await withServer({}, async ({ server }) => {
    await rpc(server, { method: "simnet_setfaults", params: [{ busy_next: 2 }], id: 1 });
    for (let i = 0; i < 2; i++) {
      const r = await post(server, JSON.stringify({ method: "getblockcount", id: 1 }));
      assert.equal(r.status, 503);
      assert.equal(r.text, "Work queue depth exceeded");
    }
    assert.equal((await rpc(server, { method: "getblockcount", id: 1 })).status, 200);
  });
});

Deno.test("malformedNext sends status 200 with a body no JSON parser accepts", async () => {
  await withServer({}, async ({ server }) => {
    const set = await rpc(server, {
      jsonrpc: "2.0",
      method: "simnet_setfaults",
      params: { malformed_next: 2 },
      id: 1,
    });
    assert.equal((set.body as { result: { malformed_next: number } }).result.malformed_next, 2);
    const bad = await post(server, JSON.stringify({ method: "getblockcount", id: 1 }));
    assert.equal(bad.status, 200);
    assert.equal(bad.headers.get("content-type"), "application/json");
    assert.throws(() => JSON.parse(bad.text), SyntaxError);
    const badBatch = await post(server, "[]");
    assert.throws(() => JSON.parse(badBatch.text), SyntaxError);
    assert.equal((await rpc(server, { method: "getblockcount", id: 1 })).status, 200);
  });
});

Deno.test("warmup answers -28 to every RPC but control ones, and 503 over REST", async () => {
  await withServer({ rest: new FakeChain(3) }, async ({ server, faults }) => {
    const set = await rpc(server, {
      method: "simnet_setfaults",
      params: { warmup_ms: 600_000, warmup_message: "Verifying blocks…" },
      id: 1,
    });
    const settings = (set.body as { result: { warmup_ms: number; warmup_message: string } }).result;
    assert.ok(settings.warmup_ms > 0);
    assert.equal(settings.warmup_message, "Verifying blocks…");

    const legacy = await rpc(server, { method: "getblockcount", id: 1 });
    assert.equal(legacy.status, 500);
    assert.deepEqual(legacy.body, {
      result: null,
      error: { code: -28, message: "Verifying blocks…" },
      id: 1,
    });
    // Warmup is checked before the method is looked up.
    assert.equal(
      ((await rpc(server, { method: "nosuch", id: 1 })).body as { error: { code: number } }).error.code,
      -28,
    );
    const v2 = await rpc(server, { jsonrpc: "2.0", method: "getblockcount", id: 1 });
    assert.equal(v2.status, 200);
    assert.deepEqual(v2.body, { jsonrpc: "2.0", error: { code: -28, message: "Verifying blocks…" }, id: 1 });
    const rest = await get(server, "/rest/chaininfo.json");
    assert.equal(rest.status, 503);
    assert.equal(rest.headers.get("content-type"), "text/plain");
    assert.equal(rest.text, "Service temporarily unavailable: Verifying blocks…\r\n");
    const batch = await rpc(server, [{ method: "getblockcount", id: 1 }, {
      method: "simnet_clearfaults",
      id: 2,
    }]);
    assert.deepEqual((batch.body as { error: unknown }[]).map((r) => r.error), [
      { code: -28, message: "Verifying blocks…" },
      null,
    ]);
    assert.equal(faults.warmup, null);
    assert.equal((await rpc(server, { method: "getblockcount", id: 1 })).status, 200);

    // An expired warmup is over.
    faults.warmup = { until: Date.now() - 1, message: "Loading block index…" };
    assert.equal((await rpc(server, { method: "getblockcount", id: 1 })).status, 200);
  });
});

Deno.test("delayMs holds replies back; control RPCs skip it; close() cuts it short", async () => {
  const state = { notified: 0 };
  const faults = newFaults();
  const server = await startRpcServer({
    port: 0,
    methods: { ...fakeMethods(state), ...faultMethods(faults) },
    faults,
    auth: { user: USER, password: PASSWORD },
  });
  let delayed: Promise<{ status: number; body: unknown }> | undefined;
  try {
    await rpc(server, { method: "simnet_setfaults", params: { delay_ms: 600_000 }, id: 1 });
    delayed = rpc(server, { method: "getblockcount", id: 5 });
    // Answered at once although a ten-minute delay is in force.
    const control = await rpc(server, { method: "simnet_setfaults", params: {}, id: 2 });
    assert.equal((control.body as { result: { delay_ms: number } }).result.delay_ms, 600_000);
  } finally {
    await server.close();
  }
  assert.deepEqual((await delayed).body, { result: 800000, error: null, id: 5 });
});

Deno.test("simnet_setfaults validates before applying and reports the settings", async () => {
  await withServer({}, async ({ server, faults }) => {
    const errorOf = async (params: unknown) =>
      ((await rpc(server, { method: "simnet_setfaults", params, id: 1 })).body as { error: unknown }).error;
    assert.deepEqual(await errorOf({ delay_ms: -1 }), {
      code: -8,
      message: "delay_ms must be a non-negative integer, got -1",
    });
    assert.deepEqual(await errorOf({ busy_next: "2" }), {
      code: -3,
      message: "busy_next must be a number, got JSON string",
    });
    assert.deepEqual(await errorOf([{ bogus: 1 }]), {
      code: -8,
      message:
        "Unknown fault setting bogus (known: warmup_ms, warmup_message, delay_ms, drop_next, busy_next, malformed_next)",
    });
    assert.deepEqual(await errorOf({ nope: 1 }), { code: -8, message: "Unknown named parameter nope" });
    assert.equal((await errorOf({ warmup_message: "x" }) as { code: number }).code, -8);
    // A rejected call changes nothing, even the valid part of it.
    assert.ok(await errorOf({ drop_next: 3, delay_ms: 1.5 }));
    assert.deepEqual(faults, newFaults());

    const ok = await rpc(server, {
      method: "simnet_setfaults",
      params: { drop_next: 0, busy_next: 0 },
      id: 1,
    });
    assert.deepEqual((ok.body as { result: unknown }).result, {
      warmup_ms: 0,
      warmup_message: null,
      delay_ms: 0,
      drop_next: 0,
      busy_next: 0,
      malformed_next: 0,
    });
    faults.busyNext = 4;
    const cleared = await rpc(server, { method: "simnet_clearfaults", id: 1 });
    assert.equal((cleared.body as { result: { busy_next: number } }).result.busy_next, 0);
    assert.equal(faults.busyNext, 0);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// REST

/** A tiny chain: 80-byte headers linked by hash, blocks = header + a few bytes. */
class FakeChain implements RestProvider {
  readonly headerList: Uint8Array[] = [];
  readonly hashes: Uint8Array[] = [];
  readonly blocks = new Map<string, Uint8Array>();

  constructor(n: number) {
    let prev: Uint8Array = new Uint8Array(32);
    for (let h = 0; h < n; h++) {
      const header = new Uint8Array(80);
      header[0] = 1;
      header.set(prev, 4);
      header[76] = h;
      const hash = sha256d(header);
      const block = new Uint8Array(90);
      block.set(header);
      block[80] = 1;
      block.fill(h + 0xa0, 81);
      this.headerList.push(header);
      this.hashes.push(hash);
      this.blocks.set(toHex(hash), block);
      prev = hash;
    }
  }

  blockRaw(hash: Uint8Array): Uint8Array | undefined {
    return this.blocks.get(toHex(hash));
  }
  blockHashByHeight(height: number): Uint8Array | undefined {
    return this.hashes[height];
  }
  headers(hash: Uint8Array, count: number): Uint8Array[] | undefined {
    const i = this.hashes.findIndex((h) => toHex(h) === toHex(hash));
    return i < 0 ? undefined : this.headerList.slice(i, i + count);
  }
  chainInfo(): unknown {
    return {
      chain: "regtest",
      blocks: this.hashes.length - 1,
      bestblockhash: toHexReversed(this.hashes.at(-1)!),
    };
  }
}

Deno.test("REST block: raw bytes, hex, and Core's error strings", async () => {
  const chain = new FakeChain(3);
  await withServer({ rest: chain }, async ({ server }) => {
    const display = toHexReversed(chain.hashes[1]);
    const bin = await getBytes(server, `/rest/block/${display}.bin`);
    assert.equal(bin.status, 200);
    assert.equal(bin.type, "application/octet-stream");
    assert.deepEqual(bin.bytes, chain.blocks.get(toHex(chain.hashes[1])));
    const notx = await getBytes(server, `/rest/block/notxdetails/${display.toUpperCase()}.bin`);
    assert.deepEqual(notx.bytes, bin.bytes);
    const hex = await get(server, `/rest/block/${display}.hex`);
    assert.equal(hex.headers.get("content-type"), "text/plain");
    assert.equal(hex.text, toHex(bin.bytes) + "\n");

    const badHash = await get(server, "/rest/block/xyz.bin");
    assert.equal(badHash.status, 400);
    assert.equal(badHash.text, "Invalid hash: xyz\r\n");
    // An unknown extension stays part of the hash, as in Core.
    assert.equal((await get(server, `/rest/block/${display}.txt`)).text, `Invalid hash: ${display}.txt\r\n`);
    const unknown = "ab".repeat(32);
    const missing = await get(server, `/rest/block/${unknown}.bin`);
    assert.equal(missing.status, 404);
    assert.equal(missing.text, `${unknown} not found\r\n`);
    const noFormat = await get(server, `/rest/block/${display}`);
    assert.equal(noFormat.status, 404);
    assert.equal(noFormat.text, "output format not found (available: .bin, .hex, .json)\r\n");
    assert.equal((await get(server, `/rest/block/${display}.json`)).status, 404);
    // REST does not ask for credentials, and HEAD gets the head only.
    const head = await fetch(new URL(`/rest/block/${display}.bin`, server.url), { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get("content-length"), "90");
    assert.equal((await head.arrayBuffer()).byteLength, 0);
  });
});

Deno.test("REST blockhashbyheight: internal-order bin, display hex and json, range errors", async () => {
  const chain = new FakeChain(3);
  await withServer({ rest: chain }, async ({ server }) => {
    const bin = await getBytes(server, "/rest/blockhashbyheight/2.bin");
    assert.equal(bin.status, 200);
    assert.deepEqual(bin.bytes, chain.hashes[2]);
    assert.equal(
      (await get(server, "/rest/blockhashbyheight/2.hex")).text,
      toHexReversed(chain.hashes[2]) + "\n",
    );
    const json = await get(server, "/rest/blockhashbyheight/+0.json");
    assert.equal(json.headers.get("content-type"), "application/json");
    assert.deepEqual(JSON.parse(json.text), { blockhash: toHexReversed(chain.hashes[0]) });

    const out = await get(server, "/rest/blockhashbyheight/3.bin");
    assert.equal(out.status, 404);
    assert.equal(out.text, "Block height out of range\r\n");
    for (const [h, shown] of [["-1", "-1"], ["abc", "abc"], ["1e3", "1e3"], ["4294967296", "4294967296"]]) {
      const r = await get(server, `/rest/blockhashbyheight/${h}.bin`);
      assert.equal(r.status, 400);
      assert.equal(r.text, `Invalid height: ${shown}\r\n`);
    }
    assert.equal(
      (await get(server, "/rest/blockhashbyheight/%3Cb%3E.bin")).text,
      "Invalid height: 3Cb3E\r\n",
    );
    assert.equal((await get(server, "/rest/blockhashbyheight/1")).status, 404);
  });
});

Deno.test("REST headers: both URL forms, count limits, unknown start is empty", async () => {
  const chain = new FakeChain(8);
  await withServer({ rest: chain }, async ({ server }) => {
    const start = toHexReversed(chain.hashes[1]);
    const concat = (from: number, n: number) => {
      const out = new Uint8Array(80 * n);
      chain.headerList.slice(from, from + n).forEach((h, i) => out.set(h, 80 * i));
      return out;
    };
    const old = await getBytes(server, `/rest/headers/3/${start}.bin`);
    assert.equal(old.status, 200);
    assert.equal(old.type, "application/octet-stream");
    assert.deepEqual(old.bytes, concat(1, 3));
    assert.deepEqual((await getBytes(server, `/rest/headers/${start}.bin?count=2`)).bytes, concat(1, 2));
    // Default count is 5; past the tip the list just ends.
    assert.deepEqual((await getBytes(server, `/rest/headers/${start}.bin`)).bytes, concat(1, 5));
    assert.deepEqual((await getBytes(server, `/rest/headers/${start}.bin?count=2000`)).bytes, concat(1, 7));
    assert.equal(
      (await get(server, `/rest/headers/${start}.hex?count=1`)).text,
      toHex(chain.headerList[1]) + "\n",
    );

    // The query is URL-decoded ("+" is a space, as libevent decodes it) before the strict decimal parse.
    for (
      const [count, shown] of [["0", "0"], ["2001", "2001"], ["x", "x"], ["-5", "-5"], ["%2B5", "+5"], [
        "+5",
        " 5",
      ]]
    ) {
      const r = await get(server, `/rest/headers/${start}.bin?count=${count}`);
      assert.equal(r.status, 400);
      assert.equal(r.text, `Header count is invalid or out of acceptable range (1-2000): ${shown}\r\n`);
    }
    assert.equal((await get(server, `/rest/headers/0/${start}.bin`)).status, 400);
    const bad = await get(server, "/rest/headers/2/zz.bin");
    assert.equal(bad.status, 400);
    assert.equal(bad.text, "Invalid hash: zz\r\n");
    const format = await get(server, "/rest/headers/a/b/c.bin");
    assert.equal(format.text, "Invalid URI format. Expected /rest/headers/<hash>.<ext>?count=<count>\r\n");
    const unknown = await getBytes(server, `/rest/headers/${"cd".repeat(32)}.bin`);
    assert.equal(unknown.status, 200);
    assert.equal(unknown.bytes.length, 0);
  });
});

Deno.test("REST chaininfo: json only", async () => {
  const chain = new FakeChain(2);
  await withServer({ rest: chain }, async ({ server }) => {
    const r = await get(server, "/rest/chaininfo.json");
    assert.equal(r.status, 200);
    assert.equal(r.headers.get("content-type"), "application/json");
    assert.ok(r.text.endsWith("\n"));
    assert.deepEqual(JSON.parse(r.text), chain.chainInfo());
    const bin = await get(server, "/rest/chaininfo.bin");
    assert.equal(bin.status, 404);
    assert.equal(bin.text, "output format not found (available: json)\r\n");
  });
});

Deno.test("REST faults: drop, busy and malformed apply to REST too", async () => {
  const chain = new FakeChain(2);
  await withServer({ rest: chain }, async ({ server, faults }) => {
    faults.dropNext = 1;
    assert.equal(await rawExchange(server.port, "GET /rest/chaininfo.json HTTP/1.1\r\n\r\n"), "");
    faults.busyNext = 1;
    assert.equal((await get(server, "/rest/chaininfo.json")).status, 503);
    faults.malformedNext = 1;
    const cut = await get(server, "/rest/chaininfo.json");
    assert.equal(cut.status, 200);
    assert.throws(() => JSON.parse(cut.text), SyntaxError);
    assert.equal((await get(server, "/rest/chaininfo.json")).status, 200);
  });
});
