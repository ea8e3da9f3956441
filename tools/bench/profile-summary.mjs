#!/usr/bin/env node
// Summarises a V8 .cpuprofile (from `npm run bench -- --cpu-prof`):
//   node tools/bench/profile-summary.mjs .tmp/bench-prof/gateway-<id>.cpuprofile [--top=30] [--focus=name,name]
// Prints self time per package/area and per function, and the inclusive time of
// frames whose function name matches one of --focus (e.g. jwtVerify,findOne).
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { values: opt, positionals } = parseArgs({
  allowPositionals: true,
  options: { top: { type: 'string', default: '30' }, focus: { type: 'string', default: '' } },
});
if (!positionals.length) {
  console.error('usage: node tools/bench/profile-summary.mjs <file.cpuprofile> [--top=30] [--focus=a,b]');
  process.exit(2);
}

for (const file of positionals) {
  const profile = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

  const self = new Map();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i] ?? 0;
    self.set(id, (self.get(id) ?? 0) + dt);
    total += dt;
  });

  const area = (url) => {
    if (!url) return '(native / V8)';
    const nm = url.match(/node_modules\/((@[^/]+\/)?[^/]+)/);
    if (nm) return nm[1];
    const ws = url.match(/\/(services|libs)\/([^/]+)\//);
    if (ws) return `${ws[1]}/${ws[2]}`;
    if (url.startsWith('node:')) return url.split('/')[0] === 'node:internal' ? 'node:internal' : url;
    return url;
  };
  const label = (n) => {
    const cf = n.callFrame;
    const where = cf.url ? `${cf.url.replace(/^file:\/\/.*?node_modules\//, '').replace(/^file:\/\/\/work\/main\//, '')}:${cf.lineNumber + 1}` : '';
    return `${cf.functionName || '(anonymous)'} ${where}`.trim();
  };

  const idle = new Set(['(idle)', '(program)', '(garbage collector)']);
  const areas = new Map();
  const funcs = new Map();
  let idleTime = 0;
  for (const [id, t] of self) {
    const n = byId.get(id);
    const name = n.callFrame.functionName;
    if (name === '(idle)') {
      idleTime += t;
      continue;
    }
    const a = idle.has(name) ? name : area(n.callFrame.url);
    areas.set(a, (areas.get(a) ?? 0) + t);
    const l = label(n);
    funcs.set(l, (funcs.get(l) ?? 0) + t);
  }
  const busy = total - idleTime;
  const ms = (us) => (us / 1000).toFixed(0).padStart(7);
  const pc = (us) => `${((100 * us) / busy).toFixed(1).padStart(5)}%`;
  console.log(`\n${file}: ${(total / 1e6).toFixed(1)} s profiled, ${(busy / 1e6).toFixed(1)} s busy (${((100 * busy) / total).toFixed(0)}%)`);
  console.log('\nself time by package / area (share of busy time):');
  for (const [a, t] of [...areas].sort((x, y) => y[1] - x[1]).slice(0, Number(opt.top))) console.log(`  ${ms(t)} ms ${pc(t)}  ${a}`);
  console.log('\nself time by function:');
  for (const [f, t] of [...funcs].sort((x, y) => y[1] - x[1]).slice(0, Number(opt.top))) console.log(`  ${ms(t)} ms ${pc(t)}  ${f}`);

  const focus = opt.focus.split(',').map((s) => s.trim()).filter(Boolean);
  if (focus.length) {
    // Inclusive time: a sample counts once for each focus name on its stack.
    const incl = new Map(focus.map((f) => [f, 0]));
    profile.samples.forEach((id, i) => {
      const dt = profile.timeDeltas[i] ?? 0;
      const seen = new Set();
      for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
        const name = byId.get(cur).callFrame.functionName;
        if (incl.has(name) && !seen.has(name)) {
          seen.add(name);
          incl.set(name, incl.get(name) + dt);
        }
      }
    });
    console.log('\ninclusive time of focus frames:');
    for (const [f, t] of incl) console.log(`  ${ms(t)} ms ${pc(t)}  ${f}`);
  }
}
