"""SSH submit-to-running: the ssh launcher vs a plain `ssh host true` plus an upload of the same files.

Starts the test sshd on 127.0.0.1 (tests/sshd_service.py; needs root and openssh-server). Each repetition uses a
fresh remote folder and a fresh connection, so nothing is skipped as already shipped:
- **platform:** `SshLauncher.submit` of the tiny SFT job's inputs (tiny model + data, the platform's verl/ folder,
  the rendered tp_job.sh), returning once the job-side record says `running` (connect, host-key check, SFTP, start
  detached, first status), timed in this process.
- **anchor:** `ssh -p PORT host true` then `scp -r` of the same files to a fresh folder, with OpenSSH's own tools.
- **Target:** median(platform) / median(anchor) <= 2.0.

Run: `.venv/bin/python benchmarks/bench_ssh_submit.py [--reps 5] [--no-readme]`
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _timing import REPO_ROOT, load_average, machine, record_result, today

sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "tests")]  # this checkout, and the test services
import sshd_service  # noqa: E402

TARGET = 2.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--no-readme", action="store_true")
    args = parser.parse_args()
    reason = sshd_service.unavailable()
    if reason:
        print(f"bench_ssh_submit: {reason}", file=sys.stderr)
        return 2

    from launchers.options import SshOptions
    from launchers.ssh import SshLauncher, drop_connections
    from trainer_platform.job import VerlJob
    from trainer_platform.models.tiny import ensure_tiny_model
    from trainer_platform.paths import verl_ext_dir
    from trainer_platform.runs import RUNNING, RunDir

    with tempfile.TemporaryDirectory(prefix="bench-ssh-") as tmp_s:
        tmp = Path(tmp_s)
        server = sshd_service.start(tmp / "sshd")
        home = tmp / "home"
        (home / ".ssh").mkdir(parents=True)
        (home / ".ssh" / "known_hosts").write_text(server.known_hosts_line)
        os.environ["HOME"] = str(home)
        model = ensure_tiny_model()
        data = sorted(Path(model).parent.parent.glob("data/*/*.parquet"))[:2]
        files = (str(model), *map(str, data))
        job = VerlJob(entry_point="bench", argv=("python", "-c", "import time; time.sleep(30)"), files=files)
        known = ["-o", f"UserKnownHostsFile={home}/.ssh/known_hosts", "-o", "BatchMode=yes", "-i", str(server.key_file)]
        platform: list[float] = []
        anchor: list[float] = []
        try:
            for rep in range(args.reps + 1):  # the first round is an untimed warm-up
                opts = SshOptions(
                    name="ssh",
                    host=server.host,
                    port=server.port,
                    user="root",
                    key_file=str(server.key_file),
                    remote_dir=f"{tmp}/remote-{rep}",
                    python="/usr/bin/python3",
                )
                run = RunDir.allocate(tmp / "runs", f"r{rep}")
                run.create({"job.json": json.dumps(job.to_dict())})
                drop_connections()
                start = time.perf_counter()
                handle = SshLauncher(opts).submit([job], [run])[0]
                took = time.perf_counter() - start
                assert run.read_status().state == RUNNING, run.read_status()
                SshLauncher().cancel(handle)
                dest = f"{tmp}/anchor-{rep}"
                start = time.perf_counter()
                subprocess.run(["ssh", "-p", str(server.port), *known, f"root@{server.host}", "true"], check=True)
                subprocess.run(
                    ["ssh", "-p", str(server.port), *known, f"root@{server.host}", "mkdir", "-p", dest], check=True
                )
                wrapper = run.path / "tp_job.sh"
                wrapper.write_text(SshLauncher(opts).render(job, run)["tp_job.sh"])
                subprocess.run(
                    [
                        "scp",
                        "-q",
                        "-r",
                        "-P",
                        str(server.port),
                        *known,
                        str(verl_ext_dir()),
                        *files,
                        str(wrapper),
                        f"root@{server.host}:{dest}/",
                    ],
                    check=True,
                )
                took_anchor = time.perf_counter() - start
                if rep:
                    platform.append(took)
                    anchor.append(took_anchor)
                print(f"rep {rep}{' (warm-up)' if not rep else ''}: platform {took:.2f} s, anchor {took_anchor:.2f} s")
        finally:
            drop_connections()
            sshd_service.stop(server)
    p, a = statistics.median(platform), statistics.median(anchor)
    ratio = p / a
    verdict = "pass" if ratio <= TARGET else "FAIL"
    print(f"median platform {p:.2f} s, anchor {a:.2f} s, ratio {ratio:.3f} (target <= {TARGET}) {verdict}")
    if not args.no_readme:
        record_result(
            "ssh_submit",
            [today(), machine(), load_average(), str(args.reps), f"{p:.2f}", f"{a:.2f}", f"{ratio:.3f}", verdict],
        )
    return 0 if verdict == "pass" else 1


if __name__ == "__main__":
    sys.exit(main())
