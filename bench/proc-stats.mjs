/**
 * CPU and memory of server processes from /proc (Linux only).
 *
 * CPU is the scheduler's runtime of every thread (`/proc/<pid>/task/<tid>/schedstat`, field 1, ns):
 * the same quantity as utime+stime in `/proc/<pid>/stat`, but with nanosecond resolution instead
 * of 10 ms ticks (which is too coarse for a 25-message phase at N = 1 000). Threads that exit
 * during a phase would be lost from that sum, so utime+stime is read too as a cross-check.
 */
import { readFileSync, readdirSync } from 'node:fs';

const TICK_NS = 1e9 / 100; // CLK_TCK is 100 on Linux

/** Runtime in ns of all threads of `pid` (0 when the process is gone). */
export function cpuNs(pid) {
  let sum = 0;
  let tids;
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return 0;
  }
  for (const tid of tids) {
    try {
      sum += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'latin1').split(' ')[0]);
    } catch {
      /* thread exited between readdir and read */
    }
  }
  return sum;
}

/** utime+stime of `pid` (all threads, including exited ones) in ns, 10 ms resolution. */
export function cpuTicksNs(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) * TICK_NS; // fields 14 and 15 of stat(5)
  } catch {
    return 0;
  }
}

/** utime and stime (ns, 10 ms resolution) summed over pids: the kernel share of the CPU. */
export function groupUserSysNs(pids) {
  let user = 0;
  let sys = 0;
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      user += Number(f[11]) * TICK_NS;
      sys += Number(f[12]) * TICK_NS;
    } catch {
      /* gone */
    }
  }
  return { user, sys };
}

/** Sum of cpuNs over pids. */
export function groupCpuNs(pids) {
  let s = 0;
  for (const p of pids) s += cpuNs(p);
  return s;
}

export function groupTicksNs(pids) {
  let s = 0;
  for (const p of pids) s += cpuTicksNs(p);
  return s;
}

/**
 * Wake-up counters of `pid`: `read(2)` calls (`/proc/<pid>/io` syscr: libuv reads its Redis
 * sockets with read(2); uWS's recv(2) is not counted) and voluntary context switches (each sleep
 * in epoll ended by new data or a timer). Zeros when the process is gone.
 */
export function wakeCounts(pid) {
  try {
    const io = readFileSync(`/proc/${pid}/io`, 'latin1');
    const status = readFileSync(`/proc/${pid}/status`, 'latin1');
    return {
      reads: Number(/syscr:\s+(\d+)/.exec(io)?.[1] ?? 0),
      wakeups: Number(/voluntary_ctxt_switches:\s+(\d+)/.exec(status)?.[1] ?? 0),
    };
  } catch {
    return { reads: 0, wakeups: 0 };
  }
}

/** Resident set size in bytes (VmRSS). */
export function rssBytes(pid) {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'latin1'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Busy and total ticks of the whole machine (all cores) from /proc/stat. */
export function machineTicks() {
  const f = readFileSync('/proc/stat', 'latin1').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const idle = f[3] + f[4]; // idle + iowait
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0); // user … steal (guest is inside user)
  return { busy: total - idle, total };
}

/** Cores' worth of CPU used by processes other than `pids` over `ms` (samples /proc). */
export async function foreignLoad(ms, pids = []) {
  const m0 = machineTicks();
  const o0 = groupTicksNs(pids);
  await new Promise((r) => setTimeout(r, ms));
  const m1 = machineTicks();
  const o1 = groupTicksNs(pids);
  const busyNs = (m1.busy - m0.busy) * TICK_NS - (o1 - o0);
  return Math.max(0, busyNs / (ms * 1e6));
}
