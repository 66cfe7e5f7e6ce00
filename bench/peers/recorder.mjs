// What every Node peer's no-op handler does: count, keep [id, text] and the latency.
// Writes the pairs as JSON lines to `out`, latencies (ms) to `out + ".lat"`, and prints one
// JSON line of figures on stdout (same format as recorder.py).
import { writeFileSync } from 'node:fs';

export function parseArgs(argv) {
  const args = { channels: 10 };
  for (let i = 0; i < argv.length; i += 2) {
    args[argv[i].replace(/^--/, '')] = argv[i + 1];
  }
  args.channels = Number(args.channels);
  args.expected = Number(args.expected);
  return args;
}

const now = () => performance.timeOrigin + performance.now();

export class Recorder {
  constructor(expected, out, idleMs = 5000) {
    this.expected = expected;
    this.out = out;
    this.idleMs = idleMs;
    this.count = 0;
    this.pairs = [];
    this.latencies = [];
    this.first = 0;
    this.last = 0;
    this.cpu0 = null;
    this.resolveDone = null;
    this.done = new Promise((resolve) => {
      this.resolveDone = resolve;
    });
  }

  record(id, text, sentTs) {
    const t = now();
    if (this.count === 0) {
      this.first = t;
      this.cpu0 = process.cpuUsage();
    }
    this.count += 1;
    this.last = t;
    this.pairs.push([id, text]);
    const sent = Number(sentTs);
    if (Number.isFinite(sent) && sentTs !== undefined && sentTs !== null) {
      this.latencies.push(t - sent);
    }
    if (this.count >= this.expected) this.resolveDone();
  }

  async wait(startTimeoutMs = 60000) {
    const started = Date.now();
    let seen = -1;
    const timer = setInterval(() => {
      if (this.count && this.count === seen) this.resolveDone();
      if (!this.count && Date.now() - started > startTimeoutMs) this.resolveDone();
      seen = this.count;
    }, this.idleMs);
    await this.done;
    clearInterval(timer);
  }

  finish(extra) {
    const cpu = this.cpu0 ? process.cpuUsage(this.cpu0) : { user: 0, system: 0 };
    writeFileSync(this.out, this.pairs.map((p) => JSON.stringify(p)).join('\n') + '\n');
    writeFileSync(this.out + '.lat', this.latencies.map((x) => x.toFixed(3)).join('\n'));
    const stats = {
      count: this.count,
      wall_s: (this.last - this.first) / 1000,
      cpu_s: (cpu.user + cpu.system) / 1e6,
      rss_peak_mb: Math.round(process.resourceUsage().maxRSS / 102.4) / 10,
      ...extra,
    };
    process.stdout.write(JSON.stringify(stats) + '\n');
  }
}
