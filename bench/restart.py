#!/usr/bin/env python3
"""Downtime of an in-place upgrade (SIGUSR2: graceful stop, re-exec, same pid) against what a
supervisor does without it (SIGTERM, wait for the exit, start again), with a PHP HTTP worker.
Downtime: from the signal to the first answer by a new worker. Usage: restart.py RR_BINARY [runs]"""
import os, signal, socket, statistics, subprocess, sys, tempfile, time

rr, runs = os.path.abspath(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 7
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
worker = os.path.join(root, "tests/php/workers/http.php")

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

def worker_pid(port):
    """The PHP worker's pid, or None when nothing answers."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET /pid HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := s.recv(4096):
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        return body.decode() if head.startswith(b"HTTP/1.1 200") else None
    except OSError:
        return None

def new_worker(port, old, since):
    while (pid := worker_pid(port)) in (None, old):
        time.sleep(0.002)
    return time.monotonic() - since

def start(dir):
    return subprocess.Popen([rr, "serve", "-s", "-c", ".rr.yaml"], cwd=dir, stdout=subprocess.DEVNULL)

with tempfile.TemporaryDirectory() as dir:
    port = free_port()
    with open(os.path.join(dir, ".rr.yaml"), "w") as f:
        f.write(f"version: '3'\nserver:\n  command: php {worker}\nlogs:\n  mode: off\n"
                f"http:\n  address: 127.0.0.1:{port}\n  pool:\n    num_workers: 1\n")
    usr2, restart = [], []
    proc = start(dir)
    new_worker(port, None, time.monotonic())
    for _ in range(runs):
        old = worker_pid(port)
        t = time.monotonic()
        proc.send_signal(signal.SIGUSR2)
        usr2.append(new_worker(port, old, t))

        old = worker_pid(port)
        t = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait()
        proc = start(dir)
        restart.append(new_worker(port, old, t))
    proc.send_signal(signal.SIGTERM)
    proc.wait()

ms = lambda xs: statistics.median(xs) * 1000
print(f"runs: {runs}")
print(f"SIGUSR2 re-exec      median downtime {ms(usr2):7.1f} ms  (all: {', '.join(f'{x*1000:.0f}' for x in usr2)})")
print(f"SIGTERM + new start  median downtime {ms(restart):7.1f} ms  (all: {', '.join(f'{x*1000:.0f}' for x in restart)})")
print(f"ratio (restart / re-exec): {ms(restart) / ms(usr2):.2f}")
