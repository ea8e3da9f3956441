import { connect } from '@nats-io/transport-node';
import http from 'node:http';
import { performance } from 'node:perf_hooks';
const [prefix, base, token] = process.argv.slice(2);
const nc = await connect({ servers: 'nats://127.0.0.1:4222' });
let t0 = 0; const events = [];
nc.subscribe(`${prefix}.>`, { callback: (e, m) => events.push([performance.now() - t0, m.subject.replace(prefix + '.', '').slice(0, 40), m.data.length, new TextDecoder().decode(m.data).slice(0, 50)]) });
nc.subscribe(`_INBOX.>`, { callback: (e, m) => events.push([performance.now() - t0, 'INBOX', m.data.length, new TextDecoder().decode(m.data).slice(0, 50)]) });
await nc.flush();
const agent = new http.Agent({ keepAlive: true });
const j = (method, path, body) => new Promise((res) => { const r = http.request(base + path, { method, agent, headers: { authorization: 'Bearer ' + token, 'content-type': 'application/json' } }, (x) => { let s = ''; x.on('data', (d) => (s += d)); x.on('end', () => res(JSON.parse(s))); }); r.end(JSON.stringify(body)); });
const conv = await j('POST', '/v1/conversations', { workspace: 'private' });
for (let i = 0; i < 8; i++) {
  events.length = 0;
  const marks = [];
  await new Promise((res) => {
    const body = JSON.stringify({ content: '#tokens=50 hello ' + i });
    const r = http.request(base + `/v1/conversations/${conv.id}/messages`, { method: 'POST', agent, headers: { authorization: 'Bearer ' + token, accept: 'text/event-stream', 'content-type': 'application/json', 'content-length': body.length } }, (x) => {
      marks.push(['headers', performance.now() - t0]);
      let first = true;
      x.on('data', (d) => { if (first && String(d).includes('delta')) { marks.push(['first delta', performance.now() - t0]); first = false; } });
      x.on('end', () => { marks.push(['end', performance.now() - t0]); res(); });
    });
    t0 = performance.now();
    r.end(body);
  });
  await new Promise((r) => setTimeout(r, 50));
  if (i >= 5) {
    console.log('---');
    for (const e of events.slice(0, 6)) console.log(e[0].toFixed(2), e[1], e[2], e[3]);
    for (const m of marks) console.log(m[1].toFixed(2), m[0]);
  }
}
await nc.close();
