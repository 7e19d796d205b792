/**
 * A one-line progress bar on standard error, drawn only when stderr is a terminal (never into pipes or
 * logs), at most ten times a second: `score [#######.....]  58%  120.4 MB  95.1 MB/s  41,203 docs`.
 */
export class Progress {
  private readonly label: string;
  private readonly total: number;
  private readonly enabled: boolean;
  private readonly t0 = Date.now();
  private last = 0;
  private bytes = 0;
  private docs = 0;

  /** `total` in bytes, 0 when unknown (stdin). Example: `new Progress('score', size)`. */
  constructor(label: string, total: number, enabled = Boolean(process.stderr.isTTY)) {
    this.label = label;
    this.total = total;
    this.enabled = enabled;
  }

  /** Adds processed bytes and documents. */
  tick(bytes: number, docs: number): void {
    this.bytes += bytes;
    this.docs += docs;
    if (!this.enabled) return;
    const now = Date.now();
    if (now - this.last < 100) return;
    this.last = now;
    this.draw(now);
  }

  private draw(now: number): void {
    const secs = Math.max(1e-3, (now - this.t0) / 1000);
    const mb = this.bytes / 1e6;
    let bar = '';
    if (this.total > 0) {
      const frac = Math.min(1, this.bytes / this.total);
      const w = 24;
      const filled = Math.round(frac * w);
      bar = `[${'#'.repeat(filled)}${'.'.repeat(w - filled)}] ${(frac * 100).toFixed(0).padStart(3)}%  `;
    }
    const line = `${this.label} ${bar}${mb.toFixed(1)} MB  ${(mb / secs).toFixed(1)} MB/s  ${this.docs.toLocaleString('en-US')} docs`;
    process.stderr.write(`\r${line}\x1b[K`);
  }

  /** Clears the bar. */
  done(): void {
    if (this.enabled) process.stderr.write('\r\x1b[K');
  }
}
