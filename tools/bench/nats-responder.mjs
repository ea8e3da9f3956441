// The far end of the bare NATS round-trip benchmark: answers every request on
// <subject> with its own payload. Started by tools/bench/run.mjs as a child
// process: `node nats-responder.mjs <nats-url> <subject>`; prints "ready" once
// subscribed, and exits on SIGTERM or when the parent closes its stdin.
import { connect } from '@nats-io/transport-node';

const [url, subject] = process.argv.slice(2);
if (!url || !subject) {
  console.error('usage: node nats-responder.mjs <nats-url> <subject>');
  process.exit(2);
}

const nc = await connect({ servers: url.split(','), name: `bench-responder-${process.pid}` });
nc.subscribe(subject, {
  callback: (err, msg) => {
    if (!err) msg.respond(msg.data);
  },
});
await nc.flush();
process.stdout.write('ready\n');

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  await nc.drain().catch(() => undefined);
  process.exit(0);
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
// The parent holds our stdin open; if it dies, so do we.
process.stdin.on('end', stop);
process.stdin.on('error', stop);
process.stdin.resume();
