import { connect } from '@nats-io/transport-node';
import http from 'node:http';
import { performance } from 'node:perf_hooks';
const [prefix, base] = process.argv.slice(2);
const nc = await connect({ servers: 'nats://127.0.0.1:4222' });
const jj = (method, path, body, token) => new Promise((res) => { const r = http.request(base + path, { method, headers: { ...(token ? { authorization: 'Bearer ' + token } : {}), 'content-type': 'application/json' } }, (x) => { let s = ''; x.on('data', (d) => (s += d)); x.on('end', () => res(JSON.parse(s))); }); r.end(JSON.stringify(body)); });
const reg = await jj('POST', '/v1/auth/register', { email: `trace-${Date.now()}@example.eu`, password: 'Sommerwiese am Fluss 2026', firstName: 'T', lastName: 'R', locale: 'en' });
const token = reg.accessToken;
const agent = new http.Agent({ keepAlive: true });
let conv = await jj('POST', '/v1/conversations', { workspace: 'private' }, token);
const rows = [];
for (let i = 0; i < 60; i++) {
  if (i % 10 === 0) conv = await jj('POST', '/v1/conversations', { workspace: 'private' }, token);
  let t0 = 0; const ev = {};
  const tag = `tr${i}x${Math.random().toString(36).slice(2, 8)}`;
  const sub = nc.subscribe(`${prefix}.ally.rpc.chat.message.stream`, { callback: (e, m) => { const s = new TextDecoder().decode(m.data); if (s.includes(tag)) { ev.rpc = performance.now() - t0; const subj = /"subject":"([^"]+)"/.exec(s)[1]; const fs = nc.subscribe(`${prefix}.${subj}`, { callback: (e2, m2) => { const f = new TextDecoder().decode(m2.data); if (f.includes('"start"') && !ev.start) ev.start = performance.now() - t0; if (f.includes('"delta"') && !ev.delta) ev.delta = performance.now() - t0; } }); setTimeout(() => fs.unsubscribe(), 2000); if (m.reply) { const rs = nc.subscribe(m.reply, { max: 1, callback: () => { ev.reply = performance.now() - t0; } }); } } } });
  await nc.flush();
  await new Promise((res) => {
    const body = JSON.stringify({ content: '#tokens=50 ' + tag });
    const r = http.request(base + `/v1/conversations/${conv.id}/messages`, { method: 'POST', agent, headers: { authorization: 'Bearer ' + token, accept: 'text/event-stream', 'content-type': 'application/json', 'content-length': body.length } }, (x) => {
      x.on('data', (d) => { if (!ev.client && String(d).includes('delta')) ev.client = performance.now() - t0; });
      x.on('end', () => { ev.end = performance.now() - t0; res(); });
    });
    t0 = performance.now();
    r.end(body);
  });
  sub.unsubscribe();
  rows.push(ev);
  await new Promise((r) => setTimeout(r, 100));
}
const med = (k) => { const v = rows.map((r) => r[k]).filter((x) => x !== undefined).sort((a, b) => a - b); return v.length ? v[Math.floor(v.length / 2)].toFixed(1) : '-'; };
console.log('median ms from request: rpc seen', med('rpc'), 'reply', med('reply'), 'start frame', med('start'), 'first delta frame', med('delta'), 'client delta', med('client'), 'end', med('end'));
await nc.close();
