// Guarantee: hostile input against the wired server (malformed JSON, wrong types, unknown methods, lines over
// MAX_RECV, endless batches, a client that never reads its replies, more idle connections than MAX_SESSIONS,
// requests before server.version) is answered or cut off as ElectrumX would, never crashes anything, and after
// each act a well-behaved session on the same server still gets correct answers (checked against the model).
import assert from "node:assert/strict";
import { simnet, withTempDir } from "./harness.ts";
import { LineClient, type Reply, WAIT_MS } from "./server_client.ts";
import { ElectrumModel, hex } from "./server_model.ts";
import { LogCapture, type Stack, startStack, within } from "./server_stack.ts";

const MAX_SESSIONS = 1000;
const MAX_SEND = 350_000;
const ENC = new TextEncoder();

/** The well-behaved session's round of questions, each answer checked against the model. */
async function assertHealthy(
  good: LineClient,
  model: ElectrumModel,
  stack: Stack,
  busy: string[],
): Promise<void> {
  assert.equal(good.closed, false, "the good session is still open");
  const tip = stack.node.height;
  assert.deepEqual(await good.request("blockchain.headers.subscribe"), {
    height: tip,
    hex: hex(stack.node.blockInfo(stack.node.tipHash)!.header),
  });
  const replies = await good.batch(busy.flatMap((sh) => [
    ["blockchain.scripthash.get_history", [sh]] as const,
    ["blockchain.scripthash.get_balance", [sh]] as const,
  ]));
  busy.forEach((sh, i) => {
    assert.deepEqual(replies[2 * i].result, model.history(sh), `history of ${sh}`);
    assert.deepEqual(replies[2 * i + 1].result, model.balance(sh), `balance of ${sh}`);
  });
  assert.equal(await good.request("server.ping"), null);
}

function errorOf(m: unknown): { code: number; message: string } | undefined {
  return (m as Reply | undefined)?.error;
}

Deno.test("hostile clients are answered or cut off while a well-behaved session keeps getting correct answers", async (t) => {
  await withTempDir(async (dir) => {
    const sim = await simnet(`${dir}/sim`, { blocks: 130, seed: "server-hostile", txs: 1500 });
    sim.node.addMempoolTraffic(50);
    const model = ElectrumModel.of(sim.node);
    const logs = await LogCapture.start("info");
    const stack = await startStack(sim, `${dir}/db`, {
      MAX_SESSIONS: String(MAX_SESSIONS),
      MAX_SEND: String(MAX_SEND),
      // No throttling delays (tests/server covers them), so that costly clients reach the hard limit quickly.
      REQUEST_SLEEP: "0",
    });
    const server = stack.serving.server;
    const busy = model.scripthashes()
      .sort((a, b) => model.history(b).length - model.history(a).length)
      .slice(0, 20);
    const opened: LineClient[] = [];
    const connect = async () => {
      const c = await LineClient.connect(stack.port);
      opened.push(c);
      return c;
    };
    const good = await connect();
    const healthy = () => assertHealthy(good, model, stack, busy);
    try {
      await good.hello("1.6", "good wallet");
      await healthy();

      await t.step(
        "malformed JSON and bad UTF-8: -32700 with id null; ten of them cost the session",
        async () => {
          const c = await connect();
          await c.hello();
          await c.sendRaw('{"jsonrpc":"2.0","id":1,"method":\n[1,2,\n');
          await c.sendRaw(new Uint8Array([0xff, 0xfe, 0x7b, 0x0a]));
          assert.deepEqual(await c.nextUnmatched(), {
            jsonrpc: "2.0",
            error: { code: -32700, message: "invalid JSON" },
            id: null,
          });
          assert.deepEqual(errorOf(await c.nextUnmatched()), { code: -32700, message: "invalid JSON" });
          assert.deepEqual(errorOf(await c.nextUnmatched()), {
            code: -32700,
            message: "messages must be encoded in UTF-8",
          });
          assert.equal(await c.request("server.ping"), null, "still served");
          // Each parse error costs 1000 (aiorpcX); the hard limit of 10000 ends the session with -101.
          await c.sendRaw("garbage\n".repeat(12));
          await within(c.ended, "the session is closed for excessive resource usage");
          const last = c.unmatched.at(-1);
          assert.deepEqual(errorOf(last), { code: -101, message: "excessive resource usage" });
          await healthy();
        },
      );

      await t.step("wrong types and unknown methods get their error, the session stays", async () => {
        const c = await connect();
        await c.hello();
        await c.sendRaw('42\n{"jsonrpc":"2.0","id":{"a":1},"method":"server.ping"}\n');
        assert.deepEqual(errorOf(await c.nextUnmatched()), {
          code: -32600,
          message: "request object must be a dictionary",
        });
        assert.deepEqual(errorOf(await c.nextUnmatched()), {
          code: -32600,
          message: 'invalid "id": {"a":1}',
        });
        const calls: [string, unknown, number, string | RegExp][] = [
          ["blockchain.block.header", "zero", -32602, /^invalid request arguments: /],
          ["blockchain.scripthash.get_balance", [123], 1, "123 is not a valid script hash"],
          ["blockchain.scripthash.get_history", { scripthash: [1] }, 1, "[1] is not a valid script hash"],
          ["blockchain.transaction.get", [null], 1, "None should be a transaction hash"],
          ["blockchain.estimatefee", ["soon"], 1, "soon should be a non-negative integer"],
          ["blockchain.block.headers", [0, -5], 1, "-5 should be a non-negative integer"],
          ["blockchain.transaction.get_merkle", [true, 1], 1, "True should be a transaction hash"],
          [
            "blockchain.block.header",
            [0, 1, 2, 3],
            -32602,
            /^4 arguments passed to method blockchain\.block\.header/,
          ],
          ["blockchain.transaction.broadcast", [{ hex: "00" }], 1, "{'hex': '00'} should be a hex string"],
          ["mempool.get_fee_histogram", { extra: 1 }, -32602, /does not take parameter "extra"/],
          ["blockchain.address.subscribe", ["x"], -32601, 'unknown method "blockchain.address.subscribe"'],
          ["server.shutdown", [], -32601, 'unknown method "server.shutdown"'],
          ["", [], -32601, 'unknown method ""'],
        ];
        const replies = await c.batch(calls.map(([m, p]) => [m, p] as const));
        calls.forEach(([method, , code, message], i) => {
          const e = replies[i].error;
          assert.ok(e, `${method} answered ${JSON.stringify(replies[i])}`);
          assert.equal(e.code, code, `${method}: ${e.message}`);
          if (typeof message === "string") assert.equal(e.message, message);
          else assert.match(e.message, message);
        });
        // An integral string is an integer to ElectrumX.
        assert.equal(
          await c.request("blockchain.block.header", ["7"]),
          await good.request("blockchain.block.header", [7]),
        );
        assert.equal(c.closed, false);
        await healthy();
      });

      await t.step(
        "a line over MAX_RECV is dropped without a reply and the stream resynchronises",
        async () => {
          const c = await connect();
          await c.hello();
          const chunk = "x".repeat(100_000);
          for (let i = 0; i < 25; i++) await c.sendRaw(chunk); // 2.5 MB, over the default 1 MB
          await c.sendRaw('"}\n');
          // A well-formed request that is merely too big is dropped the same way.
          await c.sendRaw(
            JSON.stringify({
              jsonrpc: "2.0",
              id: 999,
              method: "blockchain.transaction.broadcast",
              params: ["00".repeat(600_000)],
            }) +
              "\n",
          );
          assert.equal(await c.request("server.ping"), null);
          assert.deepEqual(c.unmatched, [], "no reply to either dropped line");
          assert.equal(c.lines, 2, "only server.version and the ping were answered");
          await healthy();
        },
      );

      await t.step(
        "endless batches: an oversized batch is refused, a stream of costly ones ends in -101",
        async () => {
          const c = await connect();
          await c.hello();
          const pings = Array.from(
            { length: 1001 },
            (_, i) => ({ jsonrpc: "2.0", id: i, method: "server.ping" }),
          );
          await c.sendRaw(JSON.stringify(pings) + "\n");
          assert.deepEqual(errorOf(await c.nextUnmatched()), {
            code: -32600,
            message: "batch too large (1001 items, at most 1000)",
          });
          // A client that reads its replies but never stops: batch after batch until the hard limit.
          const calls = Array.from(
            { length: 1000 },
            (_, i) => ["blockchain.scripthash.get_balance", [busy[i % busy.length]]] as const,
          );
          let batches = 0, excessive = false;
          while (!c.closed && !excessive && batches < 100) {
            const replies = await c.batch(calls);
            batches++;
            excessive = replies.some((r) =>
              r.error?.code === -101 && r.error.message === "excessive resource usage"
            );
          }
          assert.ok(excessive, `-101 after ${batches} batches`);
          await within(c.ended, "closed after -101");

          // One that floods batches without reading: cut off the same way (its reply may be lost to the reset
          // that closing a socket with unread input causes, so the log says why).
          const mark = logs.lines.length;
          const flood = await connect();
          await flood.hello();
          const heavy = JSON.stringify(
            calls.map(([method, params], id) => ({ jsonrpc: "2.0", id, method, params })),
          ) + "\n";
          try {
            for (let i = 0; i < 200 && !flood.closed; i++) await flood.sendRaw(heavy);
          } catch {
            // The server hung up while we were still writing.
          }
          await within(flood.ended, "the flood is cut off");
          await logs.waitFor(
            /closing for excessive resource usage \(cost \d+, COST_HARD_LIMIT 10000\)/,
            mark,
          );
          await healthy();
        },
      );

      await t.step(
        "a client that never reads its replies is disconnected; output stays bounded",
        async () => {
          const conn = await Deno.connect({ hostname: "127.0.0.1", port: stack.port });
          const hello = JSON.stringify({
            jsonrpc: "2.0",
            id: 0,
            method: "server.version",
            params: ["slow", "1.4"],
          });
          await conn.write(ENC.encode(hello + "\n"));
          // ~21 KB of headers per reply in 1.4's hex form at a base cost of 2.6 each; thousands asked, none read.
          const count = stack.node.height + 1;
          const line = (i: number) =>
            JSON.stringify({
              jsonrpc: "2.0",
              id: i + 1,
              method: "blockchain.block.headers",
              params: [0, count],
            });
          const burst = ENC.encode(Array.from({ length: 100 }, (_, i) => line(i)).join("\n") + "\n");
          const mark = logs.lines.length;
          let cutOff = false;
          const writing = (async () => {
            for (let round = 0; round < 20_000 && !cutOff; round++) {
              try {
                let rest = burst;
                while (rest.length > 0) rest = rest.subarray(await conn.write(rest));
              } catch {
                cutOff = true;
              }
            }
          })();
          await within(writing, "writing until the server hangs up");
          assert.ok(cutOff, "the server closed the connection of the client that does not read");
          const why = await logs.waitFor(
            /closing: peer is not reading its replies \((\d+) bytes queued\)/,
            mark,
          );
          const queued = Number(/\((\d+) bytes queued\)/.exec(why)![1]);
          // Closed as soon as the queue passed 2 × MAX_SEND: at most one more reply (~21 KB) over it.
          assert.ok(queued > 2 * MAX_SEND && queued < 2 * MAX_SEND + 50_000, why);
          assert.equal(server.sessions().some((s) => s.client === "slow"), false);
          conn.close();
          await healthy();
        },
      );

      await t.step("requests before server.version: error 1, then the session is closed", async () => {
        const c = await connect();
        const r = await c.call("blockchain.scripthash.get_balance", [busy[0]]);
        assert.deepEqual(r.error, { code: 1, message: "use server.version to identify client" });
        await within(c.ended, "closed after the error");
        await healthy();
      });

      await t.step(
        "more idle connections than MAX_SESSIONS: the excess is refused, the good session served",
        async () => {
          const open = server.sessions().length;
          const mark = logs.lines.length;
          const idle: Deno.TcpConn[] = [];
          const refused: Promise<boolean>[] = [];
          const total = MAX_SESSIONS + 100;
          for (let i = 0; i < total; i += 100) {
            const batch = await Promise.all(
              Array.from({ length: 100 }, () => Deno.connect({ hostname: "127.0.0.1", port: stack.port })),
            );
            for (const conn of batch) {
              idle.push(conn);
              // A refused connection is closed by the server at once: its first read ends.
              refused.push(conn.read(new Uint8Array(16)).then((n) => n === null, () => false));
            }
          }
          const expectRefused = total - (MAX_SESSIONS - open);
          let count = 0;
          await within(
            new Promise<void>((resolve) => {
              for (const r of refused) {
                r.then((yes) => {
                  if (yes && ++count === expectRefused) resolve();
                });
              }
            }),
            `${expectRefused} refusals`,
          );
          assert.equal(server.sessions().length, MAX_SESSIONS);
          await logs.waitFor(/refused \d+ connection\(s\): MAX_SESSIONS \(1000\) sessions are open/, mark);
          await healthy();
          // Full: one more is refused too.
          const extra = await LineClient.connect(stack.port);
          await within(extra.ended, "refused while full");
          extra.close();
          for (const conn of idle) conn.close();
          await Promise.all(refused);
          // Room again once the idle sessions are gone: retry on refusal (each attempt is answered or refused).
          const deadline = Date.now() + WAIT_MS;
          let late: LineClient | undefined;
          while (!late && Date.now() < deadline) {
            const c = await LineClient.connect(stack.port);
            try {
              await c.hello();
              late = c;
            } catch {
              c.close();
            }
          }
          assert.ok(late, "a new session is accepted once the idle ones left");
          opened.push(late);
          assert.equal(count, expectRefused, "no accepted connection was closed by the server");
          await healthy();
        },
      );
    } finally {
      for (const c of opened) c.close();
      await stack.close();
      await sim.close();
      await logs.stop();
    }
  });
});
