import assert from "node:assert/strict";
import {
  batchMessage,
  bindArgs,
  claimsJsonRpc2,
  errorMessage,
  INVALID_PARAMS,
  INVALID_REQUEST,
  methodInVersion,
  negotiateVersion,
  notificationMessage,
  parseRequest,
  prepareMethods,
  PROTOCOL_VERSIONS,
  responseTooLargeMessage,
  resultMessage,
  resultMessageBytes,
} from "../../src/server/rpc.ts";
import {
  ByteJson,
  type JsonWriter,
  type MethodSpec,
  parseVersion,
  RpcError,
  versionAtLeast,
} from "../../src/server/types.ts";

const spec = (params: string[], extra: Partial<MethodSpec> = {}): MethodSpec => ({
  params,
  cost: 1,
  handler: () => null,
  ...extra,
});

Deno.test("parseVersion and versionAtLeast compare dotted versions as integer tuples", () => {
  assert.deepEqual(parseVersion("1.4"), [1, 4]);
  assert.deepEqual(parseVersion("1.4.2"), [1, 4, 2]);
  assert.deepEqual(parseVersion("1.10"), [1, 10]);
  for (const bad of ["1", "", "1.", ".4", "1.4a", "v1.4", "1..4", " 1.4"]) {
    assert.equal(parseVersion(bad), null, bad);
  }
  assert.ok(versionAtLeast([1, 4, 2], [1, 4]));
  assert.ok(versionAtLeast([1, 4], [1, 4, 0]));
  assert.ok(!versionAtLeast([1, 4], [1, 4, 2]));
  assert.ok(versionAtLeast([1, 10], [1, 6]));
  assert.ok(!versionAtLeast([1, 5, 99], [1, 6]));
});

Deno.test("parseRequest accepts requests and notifications and rejects malformed ones with ElectrumX's codes", () => {
  assert.deepEqual(parseRequest({ jsonrpc: "2.0", method: "a", params: [1], id: 7 }, true), {
    id: 7,
    method: "a",
    params: [1],
  });
  assert.deepEqual(parseRequest({ method: "a", id: "x" }, false), { id: "x", method: "a", params: [] });
  assert.deepEqual(parseRequest({ jsonrpc: "2.0", method: "a", params: { k: 1 } }, true), {
    id: null,
    method: "a",
    params: { k: 1 },
  });
  assert.deepEqual(parseRequest({ jsonrpc: "1.0", method: "a", id: null }, false), {
    id: null,
    method: "a",
    params: [],
  });

  const bad = (payload: unknown, code: number, message: RegExp, id: unknown = null, strict = true) => {
    const r = parseRequest(payload, strict);
    assert.ok("invalid" in r, JSON.stringify(payload));
    assert.equal(r.invalid.code, code);
    assert.match(r.invalid.message, message);
    assert.equal(r.id, id);
  };
  bad(5, INVALID_REQUEST, /must be a dictionary/);
  bad(null, INVALID_REQUEST, /must be a dictionary/);
  bad({ method: "a", id: true }, INVALID_REQUEST, /invalid "id": true/);
  bad({ method: "a", id: [1] }, INVALID_REQUEST, /invalid "id"/);
  bad({ method: "a", id: { x: 1 } }, INVALID_REQUEST, /invalid "id"/);
  bad(JSON.parse('{"method": "a", "id": 1e400}'), INVALID_REQUEST, /too large to echo/);
  // A 2.0 session must send "2.0" every time; a 1.0 one may send "1.0", "2.0" or nothing, but nothing else.
  bad({ jsonrpc: "1.0", method: "a", id: 3 }, INVALID_REQUEST, /"jsonrpc" is not "2.0"/, 3);
  bad({ method: "a", id: 3 }, INVALID_REQUEST, /"jsonrpc" is not "2.0"/, 3);
  bad(
    { jsonrpc: "3.0", method: "a", id: 3 },
    INVALID_REQUEST,
    /"jsonrpc" is neither "2.0" nor "1.0"/,
    3,
    false,
  );
  bad({ jsonrpc: 2, method: "a", id: 3 }, INVALID_REQUEST, /"jsonrpc" is neither "2.0" nor "1.0"/, 3, false);
  bad({ jsonrpc: "2.0", id: 4 }, INVALID_REQUEST, /method/, 4);
  bad({ jsonrpc: "2.0", method: 12, id: 4 }, INVALID_REQUEST, /method/, 4);
  bad(
    { jsonrpc: "2.0", method: "a", params: "bar", id: 5 },
    INVALID_PARAMS,
    /invalid request arguments: bar/,
    5,
  );
  bad({ jsonrpc: "2.0", method: "a", params: null, id: 5 }, INVALID_PARAMS, /invalid request arguments/, 5);
});

Deno.test("claimsJsonRpc2: a session's first message (a batch's first item) decides its mode", () => {
  assert.equal(claimsJsonRpc2({ jsonrpc: "2.0", method: "a" }), true);
  assert.equal(claimsJsonRpc2([{ jsonrpc: "2.0", method: "a" }, { method: "b" }]), true);
  assert.equal(claimsJsonRpc2({ jsonrpc: "1.0", method: "a" }), false);
  assert.equal(claimsJsonRpc2({ method: "a" }), false);
  assert.equal(claimsJsonRpc2([{ method: "a" }, { jsonrpc: "2.0" }]), false);
  assert.equal(claimsJsonRpc2("2.0"), false);
  assert.equal(claimsJsonRpc2(null), false);
});

Deno.test("reply lines are compact JSON-RPC 2.0 with no newline", () => {
  const r = resultMessage(3, JSON.stringify({ a: [1, "x\ny"] }));
  assert.ok(!r.includes("\n"));
  assert.deepEqual(JSON.parse(r), { jsonrpc: "2.0", result: { a: [1, "x\ny"] }, id: 3 });
  assert.deepEqual(JSON.parse(resultMessage('id"', "null")), { jsonrpc: "2.0", result: null, id: 'id"' });
  assert.deepEqual(JSON.parse(errorMessage(null, -32700, 'bad "json"')), {
    jsonrpc: "2.0",
    error: { code: -32700, message: 'bad "json"' },
    id: null,
  });
  assert.deepEqual(JSON.parse(notificationMessage("blockchain.headers.subscribe", [{ height: 1 }])), {
    jsonrpc: "2.0",
    method: "blockchain.headers.subscribe",
    params: [{ height: 1 }],
  });
  assert.equal(responseTooLargeMessage(8_100_000), "response too large (over 8,100,000 bytes");
});

Deno.test("bindArgs checks counts and names with ElectrumX's messages and pads optionals", () => {
  const methods = prepareMethods(
    new Map([
      ["blockchain.block.header", spec(["height", "?cp_height"])],
      ["server.banner", spec([])],
      ["one", spec(["scripthash"])],
    ]),
  );
  const header = methods.get("blockchain.block.header")!;
  assert.deepEqual(bindArgs(header, [5]), [5, undefined]);
  assert.equal(bindArgs(header, [5]).length, 2);
  assert.deepEqual(bindArgs(header, [5, 8]), [5, 8]);
  assert.deepEqual(bindArgs(header, { height: 5 }), [5, undefined]);
  assert.deepEqual(bindArgs(header, { cp_height: 8, height: 5 }), [5, 8]);

  const fails = (m: string, params: unknown[] | Record<string, unknown>, message: string) =>
    assert.throws(() => bindArgs(methods.get(m)!, params), (e: unknown) => {
      assert.ok(e instanceof RpcError);
      assert.equal(e.code, INVALID_PARAMS);
      assert.equal(e.message, message);
      return true;
    });
  fails(
    "blockchain.block.header",
    [],
    '0 arguments passed to method "blockchain.block.header" but it requires 1',
  );
  fails(
    "blockchain.block.header",
    [1, 2, 3],
    "3 arguments passed to method blockchain.block.header taking at most 2",
  );
  fails("server.banner", [1], "1 argument passed to method server.banner taking at most 0");
  fails("one", [], '0 arguments passed to method "one" but it requires 1');
  fails(
    "blockchain.block.header",
    { cp_height: 1 },
    'method "blockchain.block.header" requires parameter "height"',
  );
  fails(
    "blockchain.block.header",
    { height: 1, zeta: 1, alpha: 2 },
    'method "blockchain.block.header" does not take parameters "alpha", "zeta"',
  );
});

Deno.test("prepareMethods parses version bounds; methods are gated per negotiated version", () => {
  const methods = prepareMethods(
    new Map([
      ["blockchain.relayfee", spec([], { maxVersion: "1.5.99" })],
      ["blockchain.transaction.broadcast_package", spec(["raw_txs", "?verbose"], { minVersion: "1.6" })],
      ["blockchain.scripthash.unsubscribe", spec(["scripthash"], { minVersion: "1.4.2" })],
      ["server.banner", spec([])],
    ]),
  );
  const has = (name: string, v: string) => methodInVersion(methods.get(name)!, parseVersion(v)!);
  assert.ok(has("blockchain.relayfee", "1.4"));
  assert.ok(has("blockchain.relayfee", "1.4.2"));
  assert.ok(!has("blockchain.relayfee", "1.6"));
  assert.ok(!has("blockchain.transaction.broadcast_package", "1.4.2"));
  assert.ok(has("blockchain.transaction.broadcast_package", "1.6"));
  assert.ok(!has("blockchain.scripthash.unsubscribe", "1.4.1"));
  assert.ok(has("blockchain.scripthash.unsubscribe", "1.4.2"));
  assert.ok(has("server.banner", "1.4"));
  assert.equal(methods.get("blockchain.transaction.broadcast_package")!.required, 1);

  assert.throws(
    () => prepareMethods(new Map([["x", spec([], { minVersion: "one" })]])),
    /not a dotted version/,
  );
  assert.throws(() => prepareMethods(new Map([["x", spec(["?a", "b"])]])), /required 'b' after an optional/);
});

Deno.test("negotiateVersion picks the newest common version and never 1.5", () => {
  const v = (requested: unknown) => negotiateVersion(requested)?.version ?? null;
  assert.deepEqual(PROTOCOL_VERSIONS, ["1.4", "1.4.1", "1.4.2", "1.4.3", "1.6"]);
  assert.equal(v(undefined), "1.4");
  assert.equal(v(null), "1.4");
  assert.equal(v("1.4"), "1.4");
  assert.equal(v("1.6"), "1.6");
  assert.equal(v(["1.4", "1.6"]), "1.6");
  assert.equal(v(["1.2", "1.4.2"]), "1.4.2");
  assert.equal(v("1.4.1"), "1.4.1");
  assert.equal(v("1.5"), null, "min = max = 1.5: nothing in common");
  assert.equal(v(["1.4", "1.5"]), "1.4.3", "1.5 does not exist; the newest below it is 1.4.3");
  assert.equal(v("1.4.3"), "1.4.3", "as ElectrumX: 1.4.2 plus a Namecoin-only method");
  assert.equal(v(["1.4", "1.7"]), "1.6");
  assert.equal(v(["1.4", "1.10"]), "1.6", "compared as integers, not strings");
  assert.equal(v("1.3"), null);
  assert.equal(v(["1.0", "1.3"]), null);
  assert.equal(v(["1.7", "2.0"]), null);
  assert.equal(v("garbage"), null, "a bad maximum counts as 0");
  assert.equal(v(["garbage", "1.6"]), "1.6", "a bad minimum is no constraint");
  assert.equal(v(1.4), null, "a number is not a version string");
  assert.equal(v(["1.4", "1.5", "1.6"]), null, "not a pair");
  assert.deepEqual(negotiateVersion(["1.4", "1.4.2"])?.tuple, [1, 4, 2]);
  // protocol.md: the lower maximum, echoed as computed, even where no version of that name was published.
  assert.equal(v("1.4.9"), "1.4.9");
  assert.equal(v(["1.4", "1.4.9"]), "1.4.9");
  assert.equal(v("1.4.2.1"), "1.4.2.1");
  assert.equal(v(["1.4", "1.6.1"]), "1.6");
  assert.equal(v("1.6.0"), "1.6");
  assert.equal(v(["1.4.5", "1.5"]), null, "1.5.x becomes 1.4.3, below this client's minimum");
  assert.equal(v("1.5.1"), null);
  assert.equal(v(["1.4.9", "1.5.2"]), null);
});

// A JsonWriter that writes `text` (ASCII) where it is told to, and records where that was.
function writer(text: string): JsonWriter & { at: number[] } {
  const at: number[] = [];
  return {
    byteLength: text.length,
    at,
    writeTo(out, offset) {
      at.push(offset);
      for (let i = 0; i < text.length; i++) out[offset + i] = text.charCodeAt(i);
    },
  };
}

Deno.test("resultMessageBytes: the UTF-8 of resultMessage, from text, bytes and writers, in a buffer of its own", () => {
  const dec = new TextDecoder();
  const w = writer('{"b":2}');
  const result = new ByteJson(['["é€",', new TextEncoder().encode('{"a":1},'), w, "]"]);
  // "é" and "€" take 2 and 3 bytes: the size is in bytes, not characters.
  assert.equal(result.byteLength, 25);
  assert.deepEqual(result.toJSON(), ["é€", { a: 1 }, { b: 2 }]);
  assert.deepEqual(w.at, [9 + 8]);
  w.at.length = 0;
  for (const id of [7, 'x"y€', null]) {
    const bytes = resultMessageBytes(id, result, 1000)!;
    assert.equal(dec.decode(bytes), resultMessage(id, '["é€",{"a":1},{"b":2}]'));
    assert.equal(bytes.byteOffset, 0);
    assert.equal(bytes.buffer.byteLength, bytes.length);
  }
  // The writer wrote in place, after the head and the two parts before it.
  assert.equal(w.at[0], '{"jsonrpc":"2.0","result":'.length + 9 + 8);
  // The limit counts the whole reply; nothing is built for one over it.
  const size = resultMessageBytes(1, result, Infinity)!.length;
  assert.equal(resultMessageBytes(1, result, size)!.length, size);
  const calls = w.at.length;
  assert.equal(resultMessageBytes(1, result, size - 1), undefined);
  assert.equal(w.at.length, calls);
});

Deno.test("batchMessage: text stays text; with any reply in bytes, the array is bytes", () => {
  assert.equal(batchMessage(['{"a":1}', '{"b":2}']), '[{"a":1},{"b":2}]');
  const enc = new TextEncoder();
  const mixed = batchMessage(['{"a":"€"}', enc.encode('{"b":2}'), '{"c":3}']);
  assert.ok(mixed instanceof Uint8Array);
  assert.equal(new TextDecoder().decode(mixed), '[{"a":"€"},{"b":2},{"c":3}]');
  assert.equal(new TextDecoder().decode(batchMessage([enc.encode("1")]) as Uint8Array), "[1]");
});
