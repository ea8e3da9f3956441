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
function machineBusyTicks() {
  const [, ...nums] = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/);
  const [user, nice, system, , , irq, softirq, steal] = nums.map(Number);
  return user + nice + system + irq + softirq + (steal ?? 0);
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
  const self0 = process.cpuUsage();
  const machine0 = machineBusyTicks();
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
      const busy = machineBusyTicks() - machine0;
      out.machineBusy = pct(busy);
      out.other = Math.max(0, pct(busy - ours));
      return out;
    },
  };
}
