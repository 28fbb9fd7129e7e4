// Metrics layer, pure: counters, gauges and histograms keyed by label values, rendered in the
// Prometheus text exposition format (version 0.0.4). No dependency: the format is small, and the
// daemon needs only these three kinds.

export type Labels = Readonly<Record<string, string>>;

/** Label values as one map key; label names are fixed per family, so values alone suffice. */
function keyOf(names: readonly string[], labels: Labels): string {
  let k = '';
  for (const n of names) k += (labels[n] ?? '') + '\u0000';
  return k;
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function formatLabels(names: readonly string[], labels: Labels, extra?: [string, string]): string {
  const parts = names.map((n) => `${n}="${escapeLabel(labels[n] ?? '')}"`);
  if (extra !== undefined) parts.push(`${extra[0]}="${escapeLabel(extra[1])}"`);
  return parts.length === 0 ? '' : `{${parts.join(',')}}`;
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

interface Family {
  render(out: string[]): void;
}

abstract class Base<S> implements Family {
  protected readonly series = new Map<string, { labels: Labels; value: S }>();

  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: 'counter' | 'gauge' | 'histogram',
    readonly labelNames: readonly string[],
  ) {}

  protected slot(labels: Labels, init: () => S): S {
    const k = keyOf(this.labelNames, labels);
    let s = this.series.get(k);
    if (s === undefined) {
      s = { labels: { ...labels }, value: init() };
      this.series.set(k, s);
    }
    return s.value;
  }

  render(out: string[]): void {
    out.push(`# HELP ${this.name} ${this.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`);
    out.push(`# TYPE ${this.name} ${this.type}`);
    this.renderSeries(out);
  }

  protected abstract renderSeries(out: string[]): void;
}

export class Counter extends Base<{ v: number }> {
  constructor(name: string, help: string, labelNames: readonly string[] = []) {
    super(name, help, 'counter', labelNames);
  }

  inc(labels: Labels = {}, by = 1): void {
    this.slot(labels, () => ({ v: 0 })).v += by;
  }

  get(labels: Labels = {}): number {
    return this.series.get(keyOf(this.labelNames, labels))?.value.v ?? 0;
  }

  protected renderSeries(out: string[]): void {
    for (const s of this.series.values()) {
      out.push(`${this.name}${formatLabels(this.labelNames, s.labels)} ${formatValue(s.value.v)}`);
    }
  }
}

/** A family whose series are produced at scrape time by a callback (the source of truth lives elsewhere). */
class CollectedFamily implements Family {
  constructor(
    private readonly type: 'gauge' | 'counter',
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
    private readonly collect: () => Iterable<[Labels, number]>,
  ) {}

  render(out: string[]): void {
    out.push(`# HELP ${this.name} ${this.help}`);
    out.push(`# TYPE ${this.name} ${this.type}`);
    for (const [labels, v] of this.collect()) {
      out.push(`${this.name}${formatLabels(this.labelNames, labels)} ${formatValue(v)}`);
    }
  }
}

/** A gauge read at scrape time. */
export class Gauge extends CollectedFamily {
  constructor(
    name: string,
    help: string,
    labelNames: readonly string[],
    collect: () => Iterable<[Labels, number]>,
  ) {
    super('gauge', name, help, labelNames, collect);
  }
}

/** A counter whose value is read at scrape time (e.g. totals kept by sockets). */
export class CollectedCounter extends CollectedFamily {
  constructor(
    name: string,
    help: string,
    labelNames: readonly string[],
    collect: () => Iterable<[Labels, number]>,
  ) {
    super('counter', name, help, labelNames, collect);
  }
}

interface HistogramState {
  counts: number[];
  sum: number;
  count: number;
}

export class Histogram extends Base<HistogramState> {
  constructor(
    name: string,
    help: string,
    labelNames: readonly string[],
    readonly buckets: readonly number[],
  ) {
    super(name, help, 'histogram', labelNames);
  }

  observe(labels: Labels, value: number): void {
    const s = this.slot(labels, () => ({
      counts: new Array<number>(this.buckets.length).fill(0),
      sum: 0,
      count: 0,
    }));
    // Buckets are cumulative in the output; stored per bucket here and summed when rendering.
    let i = 0;
    while (i < this.buckets.length && value > (this.buckets[i] ?? Infinity)) i++;
    if (i < this.buckets.length) s.counts[i] = (s.counts[i] ?? 0) + 1;
    s.sum += value;
    s.count++;
  }

  countOf(labels: Labels): number {
    return this.series.get(keyOf(this.labelNames, labels))?.value.count ?? 0;
  }

  protected renderSeries(out: string[]): void {
    for (const s of this.series.values()) {
      let acc = 0;
      this.buckets.forEach((b, i) => {
        acc += s.value.counts[i] ?? 0;
        out.push(
          `${this.name}_bucket${formatLabels(this.labelNames, s.labels, ['le', formatValue(b)])} ${acc}`,
        );
      });
      out.push(
        `${this.name}_bucket${formatLabels(this.labelNames, s.labels, ['le', '+Inf'])} ${s.value.count}`,
      );
      out.push(`${this.name}_sum${formatLabels(this.labelNames, s.labels)} ${formatValue(s.value.sum)}`);
      out.push(`${this.name}_count${formatLabels(this.labelNames, s.labels)} ${s.value.count}`);
    }
  }
}

export class Registry {
  private readonly families: Family[] = [];

  add<F extends Family>(f: F): F {
    this.families.push(f);
    return f;
  }

  /** The whole exposition, newline-terminated. */
  render(): string {
    const out: string[] = [];
    for (const f of this.families) f.render(out);
    return out.join('\n') + '\n';
  }
}

export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
