// @twurple/chat sending a burst as a bot: StaticAuthProvider with the token, `say()` for every
// command at once through twurple's own limiter, as shipped. What its API lets a bot declare:
// `botLevel` ('verified' here when --verified) and `isAlwaysMod` (when --mod: the bot is a
// moderator in every channel of the burst). twurple validates the token at
// https://id.twitch.tv/oauth2/validate (no option to change it); that one URL is pointed at the
// simulator's /oauth2/validate (--oauth), everything else goes where twurple sends it. Usage:
//   node twurple_egress.mjs --host 127.0.0.1 --oauth http://127.0.0.1:P/oauth2 --login BOT
//        --token T --burst FILE [--verified 1] [--mod 1] [--timeout S]
import { readFileSync } from 'node:fs';
import { StaticAuthProvider } from '@twurple/auth';
import { ChatClient } from '@twurple/chat';
import { parseArgs, readBurst, report, sendBurst } from './egress_burst.mjs';

const pkg = new URL('./node_modules/@twurple/chat/package.json', import.meta.url);
const { version } = JSON.parse(readFileSync(pkg, 'utf8'));

const args = parseArgs(process.argv.slice(2));
const realFetch = globalThis.fetch;
const TWITCH_OAUTH = 'https://id.twitch.tv/oauth2/';
globalThis.fetch = (url, options) =>
  realFetch(String(url).replace(TWITCH_OAUTH, `${args.oauth.replace(/\/$/, '')}/`), options);

const { burst, channels } = readBurst(args.burst);
const verified = args.verified === '1';
const mod = args.mod === '1';
const client = new ChatClient({
  authProvider: new StaticAuthProvider('simulator-client-id', args.token),
  hostName: args.host,
  ssl: false,
  webSocket: true,
  channels,
  botLevel: verified ? 'verified' : 'none',
  isAlwaysMod: mod,
  logger: { minLevel: 'critical' },
});
const joined = new Set();
const allJoined = new Promise((resolve) => {
  client.onJoin((channel) => {
    joined.add(channel.replace(/^#/, ''));
    if (channels.every((c) => joined.has(c))) resolve();
  });
});
client.connect();
await allJoined;
const figures = await sendBurst(burst, (c, t) => client.say(c, t), args.timeout);
const declared = `botLevel: '${verified ? 'verified' : 'none'}', isAlwaysMod: ${mod}`;
await report(figures, { client: '@twurple/chat', version, declared });
client.quit();
setTimeout(() => process.exit(0), 200);
