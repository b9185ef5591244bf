import assert from "node:assert/strict";
import { parseBlock } from "../../src/chain/block.ts";
import { ChainFormatError } from "../../src/chain/errors.ts";
import { isUnspendable } from "../../src/chain/script.ts";
import { Store } from "../../src/db/store.ts";
import { InlineParser, WorkerParser } from "../../src/sync/block_parser.ts";
import {
  encodeBlockRecord,
  getOutputValue,
  getU32,
  OUTPUT_UNSPENDABLE,
  RECORD_HASH,
  RECORD_HEADER,
  RECORD_INPUT_LEN,
  RECORD_OUTPUT_LEN,
  RECORD_TX_LEN,
  RECORD_TXS,
} from "../../src/sync/block_record.ts";
import { hashXInto } from "../../src/sync/hashx.ts";
import { BlockProcessor } from "../../src/sync/processor.ts";
import { blockFixture } from "../chain/fixtures.ts";
import { answers, expectedAnswers, replay, type SynthBlock, SynthChain } from "../db/synth_chain.ts";

const FIXTURES = ["bitcoin_mainnet_951658", "bitcoin_signet_31500"];

/** Checks a record field by field against parseBlock of the same bytes. */
function assertRecordMatches(raw: Uint8Array, rec: Uint8Array, off: number): void {
  const block = parseBlock(raw);
  assert.deepEqual(rec.slice(off + RECORD_HASH, off + RECORD_HASH + 32), block.hash);
  assert.deepEqual(rec.slice(off + RECORD_HEADER, off + RECORD_HEADER + 80), raw.slice(0, 80));
  assert.equal(getU32(rec, off + 4), block.txs.length);
  let p = off + RECORD_TXS;
  const hx = new Uint8Array(11);
  for (const tx of block.txs) {
    assert.deepEqual(rec.slice(p, p + 32), tx.txid);
    assert.equal(getU32(rec, p + 32), tx.inputs.length);
    assert.equal(getU32(rec, p + 36), tx.outputs.length);
    p += RECORD_TX_LEN;
    for (const input of tx.inputs) {
      assert.deepEqual(rec.slice(p, p + 32), input.prevTxid);
      assert.equal(getU32(rec, p + 32), input.prevVout);
      p += RECORD_INPUT_LEN;
    }
    for (const output of tx.outputs) {
      assert.equal(getOutputValue(rec, p), output.value);
      const unspendable = isUnspendable(output.script);
      assert.equal(rec[p + 19] === OUTPUT_UNSPENDABLE, unspendable);
      if (!unspendable) {
        hashXInto(output.script, hx, 0);
        assert.deepEqual(rec.slice(p + 8, p + 19), hx);
      }
      p += RECORD_OUTPUT_LEN;
    }
  }
  assert.equal(p - off, getU32(rec, off), "the length field covers the record exactly");
}

Deno.test("a block record carries exactly what parseBlock finds, and refuses to overrun its room", () => {
  for (const name of FIXTURES) {
    const raw = blockFixture(name).raw;
    const out = new Uint8Array(raw.length * 3 + 1000);
    const n = encodeBlockRecord(raw, out, 100, out.length - 100);
    assert.ok(n > RECORD_TXS, name);
    assertRecordMatches(raw, out, 100);
    const small = new Uint8Array(n - 1).fill(0xee);
    assert.equal(encodeBlockRecord(raw, small, 0, small.length), -n);
    assert.ok(small.every((b) => b === 0xee), "nothing written when it does not fit");
  }
});

Deno.test("the worker parser hands over the same records in order, falls back for big ones, and reports bad blocks like parseBlock", async () => {
  const raws = FIXTURES.map((n) => blockFixture(n).raw);
  const chain = SynthChain.create(3);
  chain.extend(30);
  // Ten times more blocks than slots, one block too big for a slot, and views into larger buffers.
  const blocks: Uint8Array[] = [...chain.blocks.map((b) => b.raw), ...raws];
  const padded = new Uint8Array(raws[1].length + 10);
  padded.set(raws[1], 5);
  blocks.push(padded.subarray(5, 5 + raws[1].length));
  // The mainnet block's record is the biggest: one byte less of room sends it back to this thread.
  const sizes = raws.map((r) => -encodeBlockRecord(r, new Uint8Array(0), 0, 0));
  const worker = new WorkerParser({ slots: 3, slotBytes: Math.max(...sizes) - 1, timeoutMs: 20_000 });
  try {
    assert.equal(await worker.ready(), true);
    const seen: number[] = [];
    worker.forEach(blocks, (i, rec, off) => {
      seen.push(i);
      assertRecordMatches(blocks[i], rec, off);
    });
    assert.deepEqual(seen, blocks.map((_, i) => i));
    assert.ok(worker.workerMs > 0, "the worker did the parsing");
    assert.equal(worker.inlineFallbacks, 1);

    const bad = chain.blocks[5].raw.slice(0, chain.blocks[5].raw.length - 3);
    let inlineError: ChainFormatError | undefined;
    try {
      new InlineParser().forEach([bad], () => {});
    } catch (e) {
      inlineError = e as ChainFormatError;
    }
    assert.ok(inlineError instanceof ChainFormatError);
    const applied: number[] = [];
    assert.throws(
      () => worker.forEach([blocks[0], blocks[1], bad, blocks[3], blocks[4]], (i) => applied.push(i)),
      (e) =>
        e instanceof ChainFormatError && e.code === inlineError!.code && e.message === inlineError!.message &&
        e.offset === inlineError!.offset,
    );
    assert.deepEqual(applied, [0, 1], "blocks before the bad one were handed over");
    // Jobs still running from the failed call are drained; the next call starts clean.
    const again: number[] = [];
    worker.forEach(blocks.slice(0, 7), (i, rec, off) => {
      again.push(i);
      assertRecordMatches(blocks[i], rec, off);
    });
    assert.deepEqual(again, [0, 1, 2, 3, 4, 5, 6]);
  } finally {
    worker.close();
  }
});

Deno.test("a processor parsing in a worker indexes exactly what the inline one does", async () => {
  const chain = SynthChain.create(11);
  chain.extend(80);
  const log = { info() {}, warn() {} };
  const raw = (b: SynthBlock) => ({ height: b.height, hash: b.hash, raw: b.raw });
  for (const parseWorker of [false, { slots: 4 }] as const) {
    const dir = await Deno.makeTempDir({ prefix: "coulomb-parse-" });
    const store = await Store.open(dir, { name: "regtest" }, { log });
    const p = new BlockProcessor(store, {
      reorgLimit: 10,
      cacheMb: 64,
      flushSize: 1_000_000,
      log,
      network: { name: "regtest" },
      parseWorker,
    });
    try {
      assert.equal(await p.ready(), parseWorker !== false);
      p.advance(chain.blocks.slice(0, 33).map(raw));
      await p.flush();
      p.advance(chain.blocks.slice(33).map(raw));
      await p.flush();
      assert.equal(store.state.height, 79);
      assert.deepEqual(
        await answers(store, chain.scripts),
        expectedAnswers(replay(chain.blocks), chain.scripts),
        `parseWorker ${JSON.stringify(parseWorker)}`,
      );
      if (parseWorker) assert.ok((p.timing.workerParseMs ?? 0) > 0);
    } finally {
      p.close();
      await store.close();
      await Deno.remove(dir, { recursive: true });
    }
  }
});

Deno.test("a worker that cannot start leaves parsing on this thread, says so once, and takes nothing down", async () => {
  const warnings: string[] = [];
  const worker = new WorkerParser({
    moduleUrl: new URL("./no_such_worker_module.ts", import.meta.url),
    warn: (m) => warnings.push(m),
  });
  try {
    assert.equal(await worker.ready(), false);
    const raws = FIXTURES.map((n) => blockFixture(n).raw);
    const seen: number[] = [];
    worker.forEach(raws, (i, rec, off) => {
      seen.push(i);
      assertRecordMatches(raws[i], rec, off);
    });
    assert.deepEqual(seen, [0, 1]);
    assert.equal(worker.workerMs, 0);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0], /parse worker cannot run .*parsing blocks on the main thread/);
  } finally {
    worker.close();
  }
});
