/**
 * A small Prometheus registry: counters, gauges computed at scrape time, histograms,
 * rendered in the text exposition format (version 0.0.4).
 *
 * @module
 */

type Labels = Record<string, string>;

function escapeLabel(value: string): string {
  return value.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n");
}

function escapeHelp(text: string): string {
  return text.replaceAll("\\", "\\\\").replaceAll("\n", "\\n");
}

function labelText(labels: Labels): string {
  const entries = Object.entries(labels);
  if (entries.length === 0) return "";
  return `{${entries.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(",")}}`;
}

function num(value: number): string {
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return Number.isNaN(value) ? "NaN" : String(value);
}

interface Metric {
  readonly name: string;
  readonly help: string;
  render(): string[] | Promise<string[]>;
}

export class Counter implements Metric {
  readonly #values = new Map<string, { labels: Labels; value: number }>();

  constructor(readonly name: string, readonly help: string) {}

  inc(labels: Labels = {}, by = 1): void {
    const key = labelText(labels);
    const entry = this.#values.get(key);
    if (entry) entry.value += by;
    else this.#values.set(key, { labels, value: by });
  }

  /** Current value (tests). */
  get(labels: Labels = {}): number {
    return this.#values.get(labelText(labels))?.value ?? 0;
  }

  render(): string[] {
    const lines = [`# HELP ${this.name} ${escapeHelp(this.help)}`, `# TYPE ${this.name} counter`];
    for (const { labels, value } of this.#values.values()) {
      lines.push(`${this.name}${labelText(labels)} ${num(value)}`);
    }
    return lines;
  }
}

/** A gauge whose samples are computed when scraped. */
export class Gauge implements Metric {
  constructor(
    readonly name: string,
    readonly help: string,
    readonly collect: () =>
      | number
      | Array<{ labels: Labels; value: number }>
      | Promise<number | Array<{ labels: Labels; value: number }>>,
  ) {}

  async render(): Promise<string[]> {
    const collected = await this.collect();
    const samples = typeof collected === "number" ? [{ labels: {}, value: collected }] : collected;
    return [
      `# HELP ${this.name} ${escapeHelp(this.help)}`,
      `# TYPE ${this.name} gauge`,
      ...samples.map((s) => `${this.name}${labelText(s.labels)} ${num(s.value)}`),
    ];
  }
}

export class Histogram implements Metric {
  readonly #counts: number[];
  #sum = 0;
  #count = 0;

  constructor(readonly name: string, readonly help: string, readonly buckets: readonly number[]) {
    this.#counts = buckets.map(() => 0);
  }

  observe(value: number): void {
    this.#sum += value;
    this.#count++;
    for (let i = 0; i < this.buckets.length; i++) if (value <= this.buckets[i]) this.#counts[i]++;
  }

  get count(): number {
    return this.#count;
  }

  render(): string[] {
    return [
      `# HELP ${this.name} ${escapeHelp(this.help)}`,
      `# TYPE ${this.name} histogram`,
      ...this.buckets.map((b, i) => `${this.name}_bucket{le="${num(b)}"} ${this.#counts[i]}`),
      `${this.name}_bucket{le="+Inf"} ${this.#count}`,
      `${this.name}_sum ${num(this.#sum)}`,
      `${this.name}_count ${this.#count}`,
    ];
  }
}

export class Registry {
  readonly #metrics: Metric[] = [];

  counter(name: string, help: string): Counter {
    return this.#add(new Counter(name, help));
  }

  gauge(name: string, help: string, collect: Gauge["collect"]): Gauge {
    return this.#add(new Gauge(name, help, collect));
  }

  histogram(name: string, help: string, buckets: readonly number[]): Histogram {
    return this.#add(new Histogram(name, help, buckets));
  }

  #add<M extends Metric>(metric: M): M {
    this.#metrics.push(metric);
    return metric;
  }

  /** Name, type and help of every metric (for the README's reference). */
  describe(): Array<{ name: string; type: string; help: string }> {
    return this.#metrics.map((m) => ({
      name: m.name,
      type: m instanceof Counter ? "counter" : m instanceof Histogram ? "histogram" : "gauge",
      help: m.help,
    }));
  }

  /** The text exposition of every metric. */
  async render(): Promise<string> {
    const parts = await Promise.all(this.#metrics.map((m) => m.render()));
    return parts.flat().join("\n") + "\n";
  }
}
