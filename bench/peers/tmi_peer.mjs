// tmi.js as a peer: `connection.server/port/secure` point it at the simulator's WebSocket
// (it needs the `irc` subprotocol echoed, which the simulator does). Anonymous login.
// The handler only counts and records. Usage:
//   node tmi_peer.mjs --host 127.0.0.1 --port 80 --channels 10 --expected N --out FILE
import { createRequire } from 'node:module';
import { Recorder, parseArgs } from './recorder.mjs';

const require = createRequire(import.meta.url);
const tmi = require('tmi.js');
const { version } = require('tmi.js/package.json');

const args = parseArgs(process.argv.slice(2));
const rec = new Recorder(args.expected, args.out);
const channels = Array.from({ length: args.channels }, (_, i) => `bench${i}`);
const client = new tmi.Client({
  options: { skipUpdatingEmotesets: true, skipMembership: true },
  connection: { server: args.host, port: Number(args.port), secure: false, reconnect: false },
  channels,
  logger: { info() {}, warn() {}, error() {} },
});
const onChat = (channel, tags, message) => {
  const text = tags['message-type'] === 'action' ? `\u0001ACTION ${message}\u0001` : message;
  rec.record(tags.id, text, tags['tmi-sent-ts']);
};
// tmi.js emits chat with bits as 'cheer' instead of 'message'
client.on('message', onChat);
client.on('cheer', (channel, tags, message) => onChat(channel, tags, message));
await client.connect();
await rec.wait();
rec.finish({ version });
client.disconnect().catch(() => {});
setTimeout(() => process.exit(0), 200);
