// tmi.js sending a burst as a bot: identity {username, password: 'oauth:TOKEN'}, `say()` for
// every command at once, as shipped (tmi.js paces nothing: say() writes the PRIVMSG at once;
// it has no option to declare a verified bot or a moderator role). Usage:
//   node tmi_egress.mjs --host 127.0.0.1 --port 80 --login BOT --token T --burst FILE
//                       [--timeout S]
import { createRequire } from 'node:module';
import { parseArgs, readBurst, report, sendBurst } from './egress_burst.mjs';

const require = createRequire(import.meta.url);
const tmi = require('tmi.js');
const { version } = require('tmi.js/package.json');

const args = parseArgs(process.argv.slice(2));
const { burst, channels } = readBurst(args.burst);
const client = new tmi.Client({
  options: { skipUpdatingEmotesets: true, skipMembership: true },
  connection: { server: args.host, port: Number(args.port), secure: false, reconnect: false },
  identity: { username: args.login, password: `oauth:${args.token}` },
  channels: [...channels], // a copy: tmi.js rewrites the array in place ('#' added)
  logger: { info() {}, warn() {}, error() {} },
});
// say() to a channel not yet joined still writes the PRIVMSG; wait for the JOINs, as a bot
// that starts talking after it joined would (listening before connect(): its promise can
// resolve after the JOINs).
const joined = new Set();
const allJoined = new Promise((resolve) => {
  client.on('join', (channel, username, self) => {
    if (self) joined.add(channel.replace(/^#/, ''));
    if (channels.every((c) => joined.has(c))) resolve();
  });
});
await client.connect();
await allJoined;
const figures = await sendBurst(burst, (c, t) => client.say(c, t), args.timeout);
await report(figures, { client: 'tmi.js', version, declared: 'nothing' });
client.disconnect().catch(() => {});
setTimeout(() => process.exit(0), 200);
