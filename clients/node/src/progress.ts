// A small progress bar on stderr, drawn only where someone can see it (the
// twin of the Python SDK's mnemo._progress).

const WIDTH = 30;

export class Progress {
  count = 0;
  private enabled: boolean;
  private readonly start = performance.now();
  private drawn = 0;

  constructor(
    private readonly label: string,
    private readonly total: number | null = null,
    enabled: boolean | null = false,
    private readonly stream: NodeJS.WriteStream = process.stderr,
  ) {
    this.enabled = enabled ?? Boolean(stream.isTTY);
  }

  advance(n = 1): void {
    this.count += n;
    const now = performance.now();
    if (this.enabled && now - this.drawn >= 100) {
      this.drawn = now;
      this.draw(now);
    }
  }

  private draw(now: number, end = ""): void {
    const elapsed = Math.max((now - this.start) / 1000, 1e-9);
    const rate = `${Math.round(this.count / elapsed).toLocaleString("en-US")}/s`;
    const count = this.count.toLocaleString("en-US");
    let text: string;
    if (this.total) {
      const done = Math.min(this.count / this.total, 1);
      const bar = "#".repeat(Math.floor(done * WIDTH)).padEnd(WIDTH);
      text = `${this.label} [${bar}] ${count}/${this.total.toLocaleString("en-US")} ${rate}`;
    } else {
      text = `${this.label} ${count} ${rate}`;
    }
    this.stream.write(`\r${text}${end}`);
  }

  close(): void {
    if (this.enabled) {
      this.draw(performance.now(), "\n");
      this.enabled = false;
    }
  }
}
