"""A two-node Ray cluster on loopback, a sweep on it, the second node killed mid-sweep (run by test_ray_cluster.py).

Runs as PID 1's child inside ``unshare -n -p --fork --mount-proc`` (made by the test): the network namespace
has only loopback, and every Ray process dies with the PID namespace when this script ends, so no
``ray stop`` (which kills by name, anyone's Ray) is ever needed. Prints one JSON line with what happened.

    unshare -n -p --fork --mount-proc python tests/ray_two_nodes.py STORE RAY_TMPDIR [--measure]
"""
import json
import os
import sqlite3
import subprocess
import sys
import time

PORT = 6379
ADDRESS = f"127.0.0.1:{PORT}"
SWEEP = ["sweep", "itnet", "--shared", "--grid", "N=1..4", "--grid", "L=1..3", "--input", "32x48", "--macs-budget",
         "5e6", "--format", "json"]
POINTS = 12
KILL_AFTER = 3


def ray_start(*args: str) -> None:
    # `ray start` by this interpreter: the nodes' workers run it too, so they import this graphcost
    command = [sys.executable, "-c", "import sys; from ray.scripts.scripts import main; sys.argv[0] = 'ray'; main()",
               "start", "--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--disable-usage-stats", *args]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=240)


def raylets() -> list:
    found = []
    for pid in sorted(int(p) for p in os.listdir("/proc") if p.isdigit()):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                if handle.read().split(b"\0")[0].endswith(b"/raylet"):
                    found.append(pid)
        except OSError:
            pass
    return found


def stored(path: str) -> int:
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute("SELECT COUNT(*) FROM results").fetchone()[0]
    except sqlite3.Error:
        return 0


def listening() -> list:
    """Local addresses of every listening TCP socket in this network namespace (/proc/net/tcp, tcp6)."""
    found = []
    for name in ("tcp", "tcp6"):
        with open(f"/proc/net/{name}") as handle:
            for line in handle.readlines()[1:]:
                fields = line.split()
                if fields[3] == "0A":  # LISTEN
                    found.append(fields[1].split(":")[0])
    return found


def sweep(store: str, extra=()) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "graphcost.cli", *SWEEP, "--executor", "ray", "--address", ADDRESS,
                             "--store", store, *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def measure(store_dir: str) -> dict:
    """Points/s of the same sweep on the head alone, then on both nodes (fresh stores)."""
    rates = {}
    for nodes in (1, 2):
        if nodes == 2:
            ray_start("--address", ADDRESS, "--resources", '{"second": 1}')
        start = time.perf_counter()
        out, err = sweep(os.path.join(store_dir, f"rate-{nodes}.sqlite")).communicate(timeout=900)
        rates[nodes] = POINTS / (time.perf_counter() - start)
    return rates


def main() -> int:
    store, ray_tmp, measuring = sys.argv[1], sys.argv[2], "--measure" in sys.argv
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    os.environ.update(RAY_TMPDIR=ray_tmp, RAY_AUTH_MODE="token",
                      RAY_AUTH_TOKEN="graphcost-two-node-test", RAY_USAGE_STATS_ENABLED="0")
    ray_start("--head", "--port", str(PORT), "--include-dashboard=false")
    if measuring:
        print(json.dumps({"points_per_s": measure(os.path.dirname(store))}), flush=True)
        return 0
    ray_start("--address", ADDRESS, "--resources", '{"second": 1}')
    head, second = raylets()[:2]
    proc = sweep(store)
    while proc.poll() is None and stored(store) < KILL_AFTER:
        time.sleep(0.05)
    killed_at = stored(store)
    os.kill(second, 9)  # the second node's raylet: its workers die with it
    out, err = proc.communicate(timeout=900)
    try:
        rows = json.loads(out)["rows"]
    except ValueError:
        rows = []
        err += f"\n[stdout is no JSON: {out[:500]!r}]"
    with sqlite3.connect(store) as conn:
        keys = [k for (k,) in conn.execute("SELECT key FROM results")]
    print(json.dumps({"rc": proc.returncode, "stderr": err[-3000:], "rows": len(rows), "stored": len(keys),
                      "unique": len(set(keys)), "killed_at": killed_at, "raylets": [head, second],
                      "listening": listening(), "failed": [r for r in rows if r.get("status") != "ok"]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
