#!/usr/bin/env python3
"""Many subscribers: import, server start, memory per worker, reloads.

For each --subscribers count, in a temporary directory: writes a provisioning file
of that many subscribers (8 profiles; every subscriber with a password and PAP and
CHAP, every third also MS-CHAPv2, every fourth a caller ID, every fifth a line,
every tenth a framed IP), then per round:

  * `vpop import` into a new SQLite database: wall time and peak RSS;
  * the same file again (nothing changes): wall time and peak RSS;
  * `vpop serve --workers W`: time until every worker is ready and a subscriber is
    accepted, and each worker's RSS;
  * --reloads SIGHUPs, one after the other: time until every worker has reloaded,
    and the workers' RSS after the last;
  * `vpop import` of a one-subscriber change while the server runs: time until the
    import reports the change in effect on the running server, and that the changed
    subscriber is then accepted.

Memory per subscriber is a worker's RSS above that of a worker serving a single
subscriber (measured once per run), divided by the count. With --pap-only N, it
also imports N subscribers with PAP only (a PBKDF2 hash each) and reports the rate.
Every process started here is stopped by PID. The last line is one JSON object.

    python bench/subscribers_scale.py --subscribers 100000 --rounds 3
    python bench/subscribers_scale.py --subscribers 1000000 --rounds 1
    python bench/subscribers_scale.py --subscribers 0 --pap-only 2000
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import loadgen  # noqa: E402  (next to this file)
from auth_vs_freeradius import VPOP_CONFIG, free_ports, stop, vpop_command as vpop  # noqa: E402

from vpop.aaa.credentials import hash_password  # noqa: E402
from vpop.radius import codec  # noqa: E402

SECRET = "testing123"
HOST = "127.0.0.1"
PROFILES = 8
READY_TIMEOUT = 1800.0  # a million subscribers on a slow disk

# --- the provisioning file --------------------------------------------------------------

def username(i: int) -> str:
    return f"user{i:07d}@example.net"


def password(i: int) -> str:
    return f"pw-{(i * 2654435761) % 2**32:08x}"


def write_plan(path: Path, count: int, *, pap_only: bool = False, first: int = 0) -> None:
    with path.open("w") as f:
        f.write(f'[[nas]]\nname = "localhost"\naddress = "{HOST}/32"\n'
                f'secret = "{SECRET}"\n\n')
        for p in range(PROFILES):
            f.write(f'[[profile]]\nname = "p{p}"\nrate_down_kbps = {(p + 1) * 10000}\n'
                    f'rate_up_kbps = {(p + 1) * 2000}\naddress_pool = "pool{p % 3}"\n'
                    f'session_timeout = 86400\nidle_timeout = 1800\nclass = "c{p}"\n\n')
        for i in range(first, first + count):
            methods = ('"pap"' if pap_only else '"pap", "chap", "mschapv2"' if i % 3 == 0
                       else '"pap", "chap"')
            f.write(f'[[subscriber]]\nusername = "{username(i)}"\npassword = "{password(i)}"\n'
                    f'methods = [{methods}]\nprofile = "p{i % PROFILES}"\n')
            if i % 4 == 0:
                f.write(f'caller_ids = ["+49 30 {i:08d}"]\n')
            if i % 5 == 0:
                f.write(f'lines = [{{ circuit_id = "bras{i % 16} eth 0/{i % 7}/{i % 5}:{i}" }}]\n')
            if i % 10 == 0:
                f.write(f'framed_ip = "10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"\n')
            f.write("\n")


# --- processes ----------------------------------------------------------------------------

def timed(command: list[str], cwd: Path) -> tuple[float, float, str]:
    """(wall seconds, peak RSS in MiB of the process, its output); fails on an error."""
    start = time.monotonic()
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.monotonic() - start
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited with {process.returncode}:\n{output}")
    return seconds, usage.ru_maxrss / 1024, output


def accepted(port: int, user: str, secret_word: str) -> bool:
    plan = loadgen.Plan(kind="auth", host=HOST, port=port, secret=SECRET.encode(), user=user,
                        password=secret_word.encode(), nas_ip=socket.inet_aton(HOST),
                        window=1, sockets=1, timeout=1, warmup=0, duration=None, count=1)
    authenticator = os.urandom(16)
    packet = loadgen.access_request(1, authenticator, plan)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(1.0)
        s.connect((HOST, port))
        try:
            s.send(packet)
            data = s.recv(4096)
        except OSError:
            return False
    return codec.reply_ok(data, authenticator, SECRET.encode()) and \
        data[0] == codec.ACCESS_ACCEPT


class Server:
    def __init__(self, home: Path, config: Path, port: int, workers: int):
        self.home, self.config, self.port, self.workers = home, config, port, workers
        self.log = home / "vpop.log"
        self.process: subprocess.Popen | None = None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def count(self, pattern: str) -> int:
        return len(re.findall(pattern, self.log_text()))

    def start(self, user: str, secret_word: str) -> float:
        """Seconds from spawn until every worker is ready and `user` is accepted."""
        self.log.unlink(missing_ok=True)
        out = (self.home / "serve.out").open("ab")
        began = time.monotonic()
        self.process = subprocess.Popen(vpop("--config", str(self.config), "serve"),
                                        cwd=self.home, stdout=out, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
        out.close()
        self.wait_for(r"worker \d+ ready", self.workers, began)
        while not accepted(self.port, user, secret_word):
            self.check(began)
            time.sleep(0.05)
        return time.monotonic() - began

    def check(self, began: float) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"vpop serve exited with {self.process.returncode}:\n"
                               f"{self.log_text()[-3000:]}")
        if time.monotonic() - began > READY_TIMEOUT:
            raise RuntimeError(f"vpop serve not ready within {READY_TIMEOUT:g} s")

    def wait_for(self, pattern: str, count: int, began: float) -> None:
        while self.count(pattern) < count:
            self.check(began)
            time.sleep(0.02)

    def worker_pids(self) -> list[int]:
        if self.workers == 1:
            return [self.process.pid]
        return sorted(loadgen.descendants([self.process.pid]) - {self.process.pid})

    def worker_rss(self) -> list[float]:
        return [round(loadgen.rss_mb([pid]), 1) for pid in self.worker_pids()]

    def reload(self) -> float:
        """SIGHUP; seconds until every worker has logged its reload."""
        before = self.count(r"reloaded")
        began = time.monotonic()
        self.process.send_signal(signal.SIGHUP)
        self.wait_for(r"reloaded", before + self.workers, began)
        return time.monotonic() - began

    def stop(self) -> None:
        stop(self.process)


def setup(root: Path, name: str, workers: int) -> tuple[Path, Path, int]:
    home = root / name
    home.mkdir()
    port = free_ports(3, set())
    config = home / "vpop.toml"
    config.write_text(VPOP_CONFIG.format(host=HOST, auth=port, acct=port + 1, coa=port + 2,
                                         workers=workers, db=home / "vpop.db", requests="false",
                                         log=home / "vpop.log"))
    subprocess.run(vpop("--config", str(config), "db", "upgrade"), check=True, cwd=home,
                   stdout=subprocess.DEVNULL)
    return home, config, port


# --- the measurements ----------------------------------------------------------------------

def measure_round(root: Path, plan: Path, count: int, number: int, workers: int,
                  reloads: int) -> dict:
    home, config, port = setup(root, f"n{count}-r{number}", workers)
    result: dict = {"subscribers": count, "load_average": os.getloadavg()[0]}
    result["import_s"], result["import_peak_mb"], _ = timed(
        vpop("--config", str(config), "import", str(plan)), home)
    result["reimport_s"], result["reimport_peak_mb"], _ = timed(
        vpop("--config", str(config), "import", str(plan)), home)
    server = Server(home, config, port, workers)
    probe = count // 2
    try:
        result["start_s"] = server.start(username(probe), password(probe))
        result["worker_rss_mb"] = server.worker_rss()
        result["reload_s"], result["reload_rss_mb"] = [], []
        for _ in range(reloads):
            result["reload_s"].append(server.reload())
            result["reload_rss_mb"].append(server.worker_rss())
        assert accepted(port, username(probe), password(probe)), "not accepted after reloads"
        # A change while the server runs: the import waits until it is in effect.
        change = home / "change.toml"
        write_plan(change, 1, first=count)
        seconds, _, output = timed(vpop("--config", str(config), "import", str(change)), home)
        result["change_in_effect"] = "in effect on the running server" in output
        result["change_s"] = seconds
        result["change_accepted"] = accepted(port, username(count), password(count))
        result["after_change_rss_mb"] = server.worker_rss()
    finally:
        server.stop()
    return result


def measure_empty(root: Path, workers: int) -> float:
    """A worker's RSS serving one subscriber: the base memory per subscriber counts from."""
    home, config, port = setup(root, "one", workers)
    plan = home / "one.toml"
    write_plan(plan, 1)
    timed(vpop("--config", str(config), "import", str(plan)), home)
    server = Server(home, config, port, workers)
    try:
        server.start(username(0), password(0))
        return statistics.median(server.worker_rss())
    finally:
        server.stop()


def measure_pap_only(root: Path, count: int) -> dict:
    home, config, _ = setup(root, f"pap-{count}", 1)
    plan = home / "pap.toml"
    write_plan(plan, count, pap_only=True)
    began = time.perf_counter()
    for i in range(20):
        hash_password(password(i), salt=os.urandom(16))
    one = (time.perf_counter() - began) / 20
    seconds, peak, _ = timed(vpop("--config", str(config), "import", str(plan)), home)
    again, _, _ = timed(vpop("--config", str(config), "import", str(plan)), home)
    return {"pap_only": count, "hash_ms_one_core": round(one * 1000, 1),
            "import_s": round(seconds, 1), "per_s": round(count / seconds),
            "reimport_s": round(again, 1), "cores": os.cpu_count()}


def summary(rounds: list[dict], empty: float) -> dict:
    def med(key):
        return round(statistics.median(r[key] for r in rounds), 2)
    count = rounds[0]["subscribers"]
    workers = statistics.median(x for r in rounds for x in r["worker_rss_mb"])
    after = statistics.median(x for r in rounds for x in r["reload_rss_mb"][-1]) \
        if rounds[0]["reload_rss_mb"] else None
    return {
        "subscribers": count, "rounds": len(rounds),
        "import_s": med("import_s"), "import_peak_mb": med("import_peak_mb"),
        "reimport_s": med("reimport_s"), "reimport_peak_mb": med("reimport_peak_mb"),
        "start_s": med("start_s"), "worker_rss_mb": round(workers, 1),
        "bytes_per_subscriber": round((workers - empty) * 2**20 / count) if count else None,
        "reload_s": round(statistics.median(x for r in rounds for x in r["reload_s"]), 2)
        if rounds[0]["reload_s"] else None,
        "rss_after_reloads_mb": round(after, 1) if after is not None else None,
        "change_s": med("change_s"),
        "change_in_effect": all(r["change_in_effect"] for r in rounds),
        "change_accepted": all(r["change_accepted"] for r in rounds),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, nargs="+", default=[100_000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--reloads", type=int, default=5)
    parser.add_argument("--pap-only", type=int, default=0,
                        help="also import this many PAP-only subscribers")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="vpop-scale-"))
    print(f"working in {root}", file=sys.stderr)
    out: dict = {"workers": args.workers, "cpus": os.cpu_count(), "sizes": []}
    try:
        counts = [c for c in args.subscribers if c > 0]
        if counts:
            out["worker_rss_one_subscriber_mb"] = empty = measure_empty(root, args.workers)
            print(f"a worker serving 1 subscriber: {empty:.1f} MiB", file=sys.stderr)
        for count in counts:
            plan = root / f"plan-{count}.toml"
            write_plan(plan, count)
            rounds = []
            for number in range(args.rounds):
                result = measure_round(root, plan, count, number, args.workers, args.reloads)
                print(json.dumps(result), file=sys.stderr)
                rounds.append(result)
            out["sizes"].append(summary(rounds, empty))
            print(json.dumps(out["sizes"][-1]), file=sys.stderr)
            plan.unlink()
        if args.pap_only:
            out["pap_only"] = measure_pap_only(root, args.pap_only)
    finally:
        if not args.keep:
            subprocess.run(["rm", "-rf", str(root)], check=False)
    out["self_peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
