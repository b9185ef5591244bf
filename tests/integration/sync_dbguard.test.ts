// Guarantee: the indexer never touches a database it must not use. A database of another network, or of a
// newer format, is refused at start-up with a message that says what to do, and every file of it is left
// byte-identical; the right configuration then still finds it intact.
import assert from "node:assert/strict";
import { ClassicLevel } from "classic-level";
import { toHex } from "../../src/chain/hex.ts";
import type { Simnet } from "../../scripts/simnet/main.ts";
import { indexerEnv, IndexerProcess, referenceOf, simnet, withStore, withTempDir } from "./harness.ts";
import { compareStore } from "./reference.ts";

/** Every file under `dir` (relative path → hex of its bytes). */
async function snapshot(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (d: string) => {
    for await (const e of Deno.readDir(d)) {
      const p = `${d}/${e.name}`;
      if (e.isDirectory) await walk(p);
      else out.set(p.slice(dir.length + 1), toHex(await Deno.readFile(p)));
    }
  };
  await walk(dir);
  return out;
}

/** Syncs `sim` into `db` with main.ts and stops it cleanly. */
async function syncOnce(db: string, sim: Simnet): Promise<void> {
  const proc = IndexerProcess.start(indexerEnv(db, sim));
  try {
    await proc.waitFor(new RegExp(`caught up to height ${sim.node.height}$`));
    proc.kill("SIGTERM");
    assert.equal((await proc.finish()).code, 0, proc.tail());
  } finally {
    await proc.close();
  }
}

/** Runs main.ts with `env` and expects it to refuse to start; returns the error line. */
async function expectRefusal(env: Record<string, string>): Promise<string> {
  const proc = IndexerProcess.start(env);
  try {
    const status = await proc.finish();
    assert.equal(status.code, 1, proc.tail());
    assert.equal(proc.find(/connected to daemon|prefilled|flushing/), undefined, "nothing ran");
    return (await proc.waitFor(/ERROR main cannot start: (.*)/)).match[1];
  } finally {
    await proc.close();
  }
}

Deno.test("a regtest database is refused with NET=testnet, left byte-identical, and still serves regtest", async () => {
  await withTempDir(async (dir) => {
    const sim = await simnet(`${dir}/sim`, { blocks: 120, seed: "dbguard-net", txs: 800 });
    const db = `${dir}/db`;
    try {
      await syncOnce(db, sim);
      const before = await snapshot(db);
      const message = await expectRefusal(indexerEnv(db, sim, { NET: "testnet" }));
      assert.match(message, /holds regtest data but Coulomb is configured for testnet/);
      assert.match(message, /set NET to match or point DB_DIRECTORY elsewhere/);
      assert.deepEqual(await snapshot(db), before);
      // With the right network it opens as before and answers exactly as a clean sync would.
      await syncOnce(db, sim);
      await withStore(
        db,
        async (store) => assert.deepEqual(await compareStore(store, referenceOf(sim.node)), []),
      );
    } finally {
      await sim.close();
    }
  });
});

Deno.test("a database written by a newer format version is refused and left byte-identical", async () => {
  await withTempDir(async (dir) => {
    const sim = await simnet(`${dir}/sim`, { blocks: 120, seed: "dbguard-version", txs: 800 });
    const db = `${dir}/db`;
    try {
      await syncOnce(db, sim);
      // What a future Coulomb with format 2 would have written: the marker and the state record both say 2.
      const marker = await Deno.readTextFile(`${db}/COULOMB`);
      assert.match(marker, /^version 1$/m);
      await Deno.writeTextFile(`${db}/COULOMB`, marker.replace(/^version 1$/m, "version 2"));
      const level = new ClassicLevel<Uint8Array, Uint8Array>(`${db}/leveldb`, {
        keyEncoding: "view",
        valueEncoding: "view",
      });
      const stateKey = Uint8Array.of(0x53);
      const state = (await level.get(stateKey))!.slice();
      assert.deepEqual([state[0], state[1]], [1, 0], "the state record starts with its version, u16 LE");
      state[0] = 2;
      await level.put(stateKey, state);
      await level.close();

      const before = await snapshot(db);
      const message = await expectRefusal(indexerEnv(db, sim));
      assert.match(message, /has format version 2 but this Coulomb reads up to 1/);
      assert.match(message, /upgrade Coulomb or point DB_DIRECTORY elsewhere/);
      assert.deepEqual(await snapshot(db), before);
    } finally {
      await sim.close();
    }
  });
});

Deno.test("a DB_DIRECTORY holding something else is refused and left byte-identical", async () => {
  await withTempDir(async (dir) => {
    const db = `${dir}/db`;
    await Deno.mkdir(db);
    await Deno.writeTextFile(`${db}/notes.txt`, "not a database");
    const before = await snapshot(db);
    // No daemon is needed: the directory is checked before anything connects.
    const message = await expectRefusal(indexerEnv(db, { url: "http://u:p@127.0.0.1:9/" }));
    assert.match(message, /is not empty and holds no Coulomb database/);
    assert.deepEqual(await snapshot(db), before);
  });
});
