// A small Prometheus registry: counters, gauges and histograms with labels, rendered in the text exposition
// format (version 0.0.4). Hot paths resolve a labelled child once (`child(...)`) and then only add numbers;
// values that already live elsewhere (heights, session counts) are read by collectors at scrape time instead of
// being copied on every change.

/** Label values in the order of the metric's label names. */
export type LabelValues = readonly string[];

/** A sample a collector reports: label values (in the metric's label order) and a value. */
export interface Sample {
  readonly labels: LabelValues;
  readonly value: number;
}

interface Metric {
  readonly name: string;
  readonly help: string;
  readonly type: "counter" | "gauge" | "histogram";
  render(out: string[]): void;
}

const NAME_RE = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_RE = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** A monotonically increasing count of one label combination. */
export class CounterChild {
  value = 0;

  /** Adds `n` (default 1); negative or non-finite amounts are ignored, a counter never goes down. */
  inc(n = 1): void {
    if (n > 0 && Number.isFinite(n)) this.value += n;
  }
}

/** A value that goes up and down, of one label combination. */
export class GaugeChild {
  value = 0;

  /** Sets the value. */
  set(v: number): void {
    this.value = v;
  }
}

/** Observations of one label combination sorted into cumulative buckets. */
export class HistogramChild {
  /** Per-bucket (not cumulative) counts; the last slot is +Inf. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(private readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  /** Records one observation (NaN is ignored). */
  observe(v: number): void {
    if (Number.isNaN(v)) return;
    const b = this.bounds;
    let i = 0;
    while (i < b.length && v > b[i]) i++;
    this.counts[i]++;
    this.sum += v;
    this.count++;
  }
}

abstract class Family<C> implements Metric {
  abstract readonly type: "counter" | "gauge" | "histogram";
  protected readonly children = new Map<string, { labels: LabelValues; child: C }>();

  constructor(readonly name: string, readonly help: string, readonly labelNames: readonly string[]) {}

  protected abstract make(): C;

  /** The child of these label values, created on first use (keep it: lookups cost a string join). */
  child(...labels: string[]): C {
    if (labels.length !== this.labelNames.length) {
      throw new RangeError(`${this.name} takes ${this.labelNames.length} label values, got ${labels.length}`);
    }
    const key = labels.join("\u0000");
    let entry = this.children.get(key);
    if (!entry) {
      entry = { labels: [...labels], child: this.make() };
      this.children.set(key, entry);
    }
    return entry.child;
  }

  abstract render(out: string[]): void;

  protected header(out: string[]): void {
    out.push(`# HELP ${this.name} ${escapeHelp(this.help)}`, `# TYPE ${this.name} ${this.type}`);
  }
}

/** A family of single values (counters, gauges); with a collector its samples are read at scrape time. */
abstract class ValueFamily<C extends { value: number }> extends Family<C> {
  constructor(
    name: string,
    help: string,
    labelNames: readonly string[],
    private readonly collect?: () => number | readonly Sample[] | undefined,
  ) {
    super(name, help, labelNames);
  }

  /** The recorded children's values (not a collector's). */
  samples(): Sample[] {
    return [...this.children.values()].map(sampleOf);
  }

  render(out: string[]): void {
    renderSamples(this, out, this.collect, () => this.samples());
  }
}

/** A counter family (for totals kept elsewhere, pass a collector). */
export class Counter extends ValueFamily<CounterChild> {
  readonly type = "counter";

  protected make(): CounterChild {
    return new CounterChild();
  }

  /** Adds to the unlabelled (or given) child. */
  inc(n = 1, ...labels: string[]): void {
    this.child(...labels).inc(n);
  }
}

/** A gauge family (for values that live elsewhere, pass a collector). */
export class Gauge extends ValueFamily<GaugeChild> {
  readonly type = "gauge";

  protected make(): GaugeChild {
    return new GaugeChild();
  }

  /** Sets the unlabelled (or given) child. */
  set(v: number, ...labels: string[]): void {
    this.child(...labels).set(v);
  }
}

function sampleOf({ labels, child }: { labels: LabelValues; child: { value: number } }): Sample {
  return { labels, value: child.value };
}

/** Writes a counter's or gauge's header and samples; a metric whose collector has nothing is left out. */
function renderSamples(
  m: { name: string; help: string; type: string; labelNames: readonly string[] },
  out: string[],
  collect: (() => number | readonly Sample[] | undefined) | undefined,
  own: () => readonly Sample[],
): void {
  let samples: readonly Sample[];
  if (collect) {
    let got: number | readonly Sample[] | undefined;
    try {
      got = collect();
    } catch {
      // A collector that fails (e.g. during shutdown) drops its samples for this scrape only.
      got = undefined;
    }
    if (got === undefined) return;
    samples = typeof got === "number" ? [{ labels: [], value: got }] : got;
  } else {
    samples = own();
  }
  out.push(`# HELP ${m.name} ${escapeHelp(m.help)}`, `# TYPE ${m.name} ${m.type}`);
  for (const s of samples) out.push(`${m.name}${labelText(m.labelNames, s.labels)} ${formatValue(s.value)}`);
}

/** A histogram family with fixed bucket bounds. */
export class Histogram extends Family<HistogramChild> {
  readonly type = "histogram";
  readonly bounds: readonly number[];

  constructor(name: string, help: string, labelNames: readonly string[], bounds: readonly number[]) {
    super(name, help, labelNames);
    if (labelNames.includes("le")) throw new RangeError(`${name}: "le" is reserved for histogram buckets`);
    const sorted = [...bounds].filter((b) => Number.isFinite(b)).sort((a, b) => a - b);
    if (sorted.length === 0) throw new RangeError(`${name}: a histogram needs at least one finite bucket`);
    this.bounds = sorted;
  }

  protected make(): HistogramChild {
    return new HistogramChild(this.bounds);
  }

  /** Records an observation in the unlabelled (or given) child. */
  observe(v: number, ...labels: string[]): void {
    this.child(...labels).observe(v);
  }

  render(out: string[]): void {
    this.header(out);
    const names = [...this.labelNames, "le"];
    for (const { labels, child } of this.children.values()) {
      let cumulative = 0;
      for (let i = 0; i <= this.bounds.length; i++) {
        cumulative += child.counts[i];
        const le = i < this.bounds.length ? formatValue(this.bounds[i]) : "+Inf";
        out.push(`${this.name}_bucket${labelText(names, [...labels, le])} ${formatValue(cumulative)}`);
      }
      const l = labelText(this.labelNames, labels);
      out.push(
        `${this.name}_sum${l} ${formatValue(child.sum)}`,
        `${this.name}_count${l} ${formatValue(child.count)}`,
      );
    }
  }
}

/** Every metric of one process, rendered together at /metrics. */
export class Registry {
  readonly #metrics = new Map<string, Metric>();

  /** Registers a counter; `collect` (if given) supplies its samples at scrape time. */
  counter(
    name: string,
    help: string,
    labelNames: readonly string[] = [],
    collect?: () => number | readonly Sample[] | undefined,
  ): Counter {
    return this.#add(new Counter(name, help, checkLabels(name, labelNames), collect));
  }

  /** Registers a gauge; `collect` (if given) supplies its samples at scrape time. */
  gauge(
    name: string,
    help: string,
    labelNames: readonly string[] = [],
    collect?: () => number | readonly Sample[] | undefined,
  ): Gauge {
    return this.#add(new Gauge(name, help, checkLabels(name, labelNames), collect));
  }

  /** Registers a histogram with the given upper bucket bounds (+Inf is implied). */
  histogram(
    name: string,
    help: string,
    bounds: readonly number[],
    labelNames: readonly string[] = [],
  ): Histogram {
    return this.#add(new Histogram(name, help, checkLabels(name, labelNames), bounds));
  }

  /** The text exposition of every metric, in registration order. */
  render(): string {
    const out: string[] = [];
    for (const m of this.#metrics.values()) m.render(out);
    return out.length ? out.join("\n") + "\n" : "";
  }

  #add<M extends Metric>(m: M): M {
    if (!NAME_RE.test(m.name)) throw new RangeError(`invalid metric name '${m.name}'`);
    if (this.#metrics.has(m.name)) throw new RangeError(`metric ${m.name} is registered twice`);
    this.#metrics.set(m.name, m);
    return m;
  }
}

function checkLabels(metric: string, names: readonly string[]): readonly string[] {
  for (const n of names) {
    if (!LABEL_RE.test(n) || n.startsWith("__")) throw new RangeError(`${metric}: invalid label name '${n}'`);
  }
  return [...names];
}

function labelText(names: readonly string[], values: LabelValues): string {
  if (names.length === 0) return "";
  const parts = names.map((n, i) => `${n}="${escapeLabel(values[i] ?? "")}"`);
  return `{${parts.join(",")}}`;
}

/** A label value with backslash, double quote and newline escaped, as the text format requires. */
export function escapeLabel(v: string): string {
  return v.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n");
}

function escapeHelp(v: string): string {
  return v.replaceAll("\\", "\\\\").replaceAll("\n", "\\n");
}

/** A sample value as the text format spells it (NaN, +Inf, -Inf, or a JS number). */
export function formatValue(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return String(v);
}
