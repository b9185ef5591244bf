// The parse Worker: turns raw blocks into block records (block_record.ts) in shared memory while the main
// thread applies earlier ones. Jobs arrive as messages naming a slot; the result goes into that slot and the
// slot's state word flips from WORKING, which the main thread is waiting on (Atomics.wait). Every failure is
// reported through the slot: the main thread blocks on the state word and would never see an error event.
import { ChainFormatError } from "../chain/errors.ts";
import { encodeBlockRecord } from "./block_record.ts";
import {
  type ParseJob,
  type ParserInit,
  SLOT_DONE,
  SLOT_FAILED,
  SLOT_TOO_BIG,
  slotState,
  writeFailure,
} from "./block_parser.ts";

let control: Int32Array | undefined;
let busy: Float64Array | undefined;
let slots: Uint8Array | undefined;
let slotBytes = 0;

// Typed by hand: the worker lib's globals would clash with the window lib the rest of the code is checked with.
const scope = self as unknown as {
  onmessage: ((e: MessageEvent<ParserInit | ParseJob>) => void) | null;
  postMessage(message: unknown): void;
};

scope.onmessage = (e) => {
  const msg = e.data;
  if (msg.type === "init") {
    control = new Int32Array(msg.control);
    busy = new Float64Array(msg.busy);
    slots = new Uint8Array(msg.slots);
    slotBytes = msg.slotBytes;
    Atomics.store(control, 0, 1);
    Atomics.notify(control, 0);
    scope.postMessage("ready");
    return;
  }
  if (control === undefined || slots === undefined || busy === undefined) return;
  const started = performance.now();
  const base = msg.slot * slotBytes;
  let state: number;
  try {
    const n = encodeBlockRecord(msg.raw, slots, base, slotBytes);
    state = n >= 0 ? SLOT_DONE : SLOT_TOO_BIG;
  } catch (err) {
    // The message is rebuilt on the other side, which appends the offset again.
    const f = err instanceof ChainFormatError
      ? { code: err.code, message: err.message.replace(/ \(at byte \d+\)$/, ""), offset: err.offset }
      : { code: "parse-worker", message: `the parse worker failed: ${(err as Error)?.message ?? err}` };
    writeFailure(slots, base, slotBytes, f);
    state = SLOT_FAILED;
  }
  busy[0] += performance.now() - started;
  Atomics.store(control, slotState(msg.slot), state);
  Atomics.notify(control, slotState(msg.slot));
};
