// Shared by the egress senders (tmi_egress.mjs, twurple_egress.mjs): the burst to send, read
// from a JSON file of [channel, text] pairs, and the one JSON line of figures they print.
import { readFileSync } from 'node:fs';

export function parseArgs(argv) {
  const args = {};
  for (let i = 0; i < argv.length; i += 2) {
    args[argv[i].replace(/^--/, '')] = argv[i + 1];
  }
  args.timeout = Number(args.timeout ?? 60) * 1000;
  return args;
}

export function readBurst(path) {
  const burst = JSON.parse(readFileSync(path, 'utf8'));
  const channels = [...new Set(burst.map(([channel]) => channel))];
  return { burst, channels };
}

// Calls say(channel, text) for every pair at once (a burst: each client's own queue or limiter
// decides the pace) and counts the calls that resolved, failed, or were still pending when
// `timeoutMs` ran out.
export async function sendBurst(burst, say, timeoutMs) {
  const figures = { startedAt: Date.now() / 1000, said: 0, failed: 0, errors: {} };
  figures.cpuAtStart = cpuSeconds();
  const calls = burst.map(([channel, text]) =>
    say(channel, text).then(
      () => {
        figures.said += 1;
      },
      (error) => {
        figures.failed += 1;
        const key = String(error?.message ?? error).slice(0, 80);
        figures.errors[key] = (figures.errors[key] ?? 0) + 1;
      },
    ),
  );
  let timer;
  const timeout = new Promise((resolve) => {
    timer = setTimeout(resolve, timeoutMs);
  });
  await Promise.race([Promise.all(calls), timeout]);
  clearTimeout(timer);
  figures.pending = burst.length - figures.said - figures.failed;
  figures.finishedAt = Date.now() / 1000;
  return figures;
}

export function cpuSeconds() {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
}

// After the burst: let the socket flush its writes, then the CPU the burst cost (from the
// first say() to now) goes into the figures, printed as one JSON line.
export async function report(figures, extra) {
  await new Promise((resolve) => setTimeout(resolve, 500));
  const cpuS = cpuSeconds() - figures.cpuAtStart;
  delete figures.cpuAtStart;
  console.log(JSON.stringify({ ...extra, ...figures, cpuS }));
}
