// @twurple/chat as a peer: `hostName` and `ssl: false` point it at the simulator; it has no
// port option (WebSocket without TLS is port 80), so the simulator serves WebSocket on 80.
// Anonymous (no auth provider, read-only). The handler only counts and records. Usage:
//   node twurple_peer.mjs --host 127.0.0.1 --channels 10 --expected N --out FILE
import { readFileSync } from 'node:fs';
import { ChatClient } from '@twurple/chat';
import { Recorder, parseArgs } from './recorder.mjs';

const pkg = new URL('./node_modules/@twurple/chat/package.json', import.meta.url);
const { version } = JSON.parse(readFileSync(pkg, 'utf8'));

const args = parseArgs(process.argv.slice(2));
const rec = new Recorder(args.expected, args.out);
const channels = Array.from({ length: args.channels }, (_, i) => `bench${i}`);
const client = new ChatClient({
  hostName: args.host,
  ssl: false,
  webSocket: true,
  channels,
  logger: { minLevel: 'critical' },
});
client.onMessage((channel, user, text, msg) => {
  rec.record(msg.id, text, msg.tags.get('tmi-sent-ts'));
});
client.onAction((channel, user, text, msg) => {
  rec.record(msg.id, `\u0001ACTION ${text}\u0001`, msg.tags.get('tmi-sent-ts'));
});
client.connect();
await rec.wait();
rec.finish({ version });
client.quit();
setTimeout(() => process.exit(0), 200);
