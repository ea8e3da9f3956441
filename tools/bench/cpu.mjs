// Where the CPU went during a measurement (Linux /proc; elsewhere it reports nothing):
// per process of the benchmark, the shared NATS server, the Postgres backends
// of the benchmark's database, and whatever else ran on the machine meanwhile
// (a sign that the numbers are disturbed by other work).
import { readdirSync, readFileSync } from 'node:fs';

const HZ = 100; // USER_HZ: /proc reports clock ticks of 1/100 s on Linux.
const available = (() => {
  try {
    readFileSync('/proc/stat', 'utf8');
    return true;
  } catch {
    return false;
  }
})();

/** utime + stime of a process, in ticks; undefined once it is gone. */
function processTicks(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state); utime is field 14, stime field 15.
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return undefined;
  }
}

/** Busy ticks of the whole machine (all CPUs), from /proc/stat. */
function machineTicks() {
  const [, ...nums] = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/);
  const [user, nice, system, , , irq, softirq, steal] = nums.map(Number);
  return { busy: user + nice + system + irq + softirq + (steal ?? 0), interrupts: irq + softirq };
}

function findPids(test) {
  const pids = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const comm = readFileSync(`/proc/${name}/comm`, 'utf8').trim();
      const cmdline = readFileSync(`/proc/${name}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (test(comm, cmdline)) pids.push(Number(name));
    } catch {
      /* gone */
    }
  }
  return pids;
}

/** ticks and name of every process now. */
function allProcesses() {
  const out = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const ticks = processTicks(name);
    if (ticks === undefined) continue;
    let comm = '?';
    try {
      comm = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0').filter(Boolean).slice(0, 3).join(' ').slice(0, 80) || readFileSync(`/proc/${name}/comm`, 'utf8').trim();
    } catch {
      /* gone */
    }
    out.set(Number(name), { ticks, comm });
  }
  return out;
}

/**
 * Starts counting; `stop()` returns the CPU used per group, in % of one core
 * (200 % = both cores of a 2-core machine busy).
 * groups: { name: pid[] | () => pid[] }; `database` finds that database's Postgres backends.
 */
export function cpuMeter({ groups, database }) {
  if (!available) return { stop: () => undefined };
  const resolved = Object.fromEntries(Object.entries(groups).map(([k, v]) => [k, typeof v === 'function' ? v() : v]));
  resolved.natsServer = findPids((comm) => comm === 'nats-server');
  if (database) resolved.postgres = findPids((comm, cmd) => comm === 'postgres' && cmd.includes(` ${database} `));
  const start = Object.fromEntries(Object.entries(resolved).map(([k, pids]) => [k, pids.map((p) => processTicks(p) ?? 0)]));
  const before = allProcesses();
  const self0 = process.cpuUsage();
  const machine0 = machineTicks();
  const t0 = process.hrtime.bigint();
  return {
    stop() {
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      const pct = (ticks) => Math.round(((ticks / HZ) / seconds) * 1000) / 10;
      const out = {};
      let ours = 0;
      for (const [k, pids] of Object.entries(resolved)) {
        let ticks = 0;
        pids.forEach((p, i) => {
          const now = processTicks(p);
          if (now !== undefined) ticks += now - start[k][i];
        });
        out[k] = pct(ticks);
        ours += ticks;
      }
      const self = process.cpuUsage(self0);
      const selfTicks = ((self.user + self.system) / 1e6) * HZ;
      out.benchProcess = pct(selfTicks);
      ours += selfTicks;
      const machine = machineTicks();
      const busy = machine.busy - machine0.busy;
      // Interrupt time (loopback TCP is mostly softirq work) is charged to no process.
      const interrupts = machine.interrupts - machine0.interrupts;
      out.interrupts = pct(interrupts);
      out.machineBusy = pct(busy);
      out.other = Math.max(0, pct(busy - ours - interrupts));
      // Who else was busy (processes that came and went in between are in `other` but not listed).
      const mine = new Set([process.pid, ...Object.values(resolved).flat()]);
      const others = new Map();
      for (const [pid, p] of allProcesses()) {
        if (mine.has(pid)) continue;
        const used = p.ticks - (before.get(pid)?.ticks ?? 0);
        if (used > 0) others.set(p.comm, (others.get(p.comm) ?? 0) + used);
      }
      const top = [...others].filter(([, t]) => pct(t) >= 5).sort((a, b) => b[1] - a[1]).slice(0, 3);
      if (top.length) out.otherTop = Object.fromEntries(top.map(([c, t]) => [c, pct(t)]));
      return out;
    },
  };
}
