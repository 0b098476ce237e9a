#!/usr/bin/env python3
"""Runs one load command and records the CPU the service, PostgreSQL and the load generator used
while it ran, in cores (CPU seconds / wall seconds), and the service's peak RSS so far.

Usage: measure.py SERVICE_PID POSTMASTER_PID OUT_JSON -- COMMAND...

PostgreSQL's CPU is the postmaster's own, plus its live children's, plus what its exited
children left in its cumulative counters: backends that connect and leave during the run
(pgbench's) are counted too. The load generator's CPU is the command's, from the kernel's
accounting of waited-for children.
"""
import json
import os
import resource
import subprocess
import sys
import time

TICKS = os.sysconf("SC_CLK_TCK")


def stat_fields(pid):
    with open(f"/proc/{pid}/stat") as file:
        text = file.read()
    return text[text.rindex(")") + 2:].split()


def own_cpu_s(pid):
    try:
        fields = stat_fields(pid)
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def children_of(pid):
    path = f"/proc/{pid}/task/{pid}/children"
    try:
        with open(path) as file:
            return [int(child) for child in file.read().split()]
    except FileNotFoundError:
        return []


def postgres_cpu_s(postmaster):
    fields = stat_fields(postmaster)
    reaped = (int(fields[13]) + int(fields[14])) / TICKS
    return own_cpu_s(postmaster) + reaped + sum(own_cpu_s(child) for child in children_of(postmaster))


def peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as file:
        for line in file:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def children_cpu_s():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main():
    service, postmaster, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    command = sys.argv[sys.argv.index("--") + 1:]
    before = (time.monotonic(), own_cpu_s(service), postgres_cpu_s(postmaster), children_cpu_s())
    status = subprocess.run(command).returncode
    after = (time.monotonic(), own_cpu_s(service), postgres_cpu_s(postmaster), children_cpu_s())
    wall_s = after[0] - before[0]
    cores = [round((a - b) / wall_s, 2) for a, b in zip(after[1:], before[1:])]
    with open(out, "w") as file:
        json.dump({"wall_s": round(wall_s, 2), "cpu_service": cores[0], "cpu_postgres": cores[1],
                   "cpu_loadgen": cores[2], "service_peak_rss_mb": round(peak_rss_mb(service), 1)}, file)
    sys.exit(status)


if __name__ == "__main__":
    main()
