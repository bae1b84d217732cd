"""A throwaway single-node SLURM cluster for tests: install, start, wait until idle, tear down.

Debian's Slurm with munge, no systemd, no accounting database, no cgroups. Everything the cluster writes
(config, state, spool, logs, PID files) lives in one temporary folder that is removed afterwards. Outside it
are only: a copy of slurm.conf at /etc/slurm/slurm.conf (see claim_etc_conf; removed afterwards), munge's
socket folder /run/munge (created, and removed, only when no munged answers) and the packages installed by
apt, which stay. The daemons listen on free ports and are stopped by the PIDs started here, never by name.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

PACKAGES = ("slurm-wlm", "munge")
BINARIES = (
    "slurmctld",
    "slurmd",
    "sbatch",
    "squeue",
    "scontrol",
    "sinfo",
    "scancel",
    "srun",
    "munged",
    "munge",
)
MUNGE_DIR = Path("/run/munge")
ETC_CONF = Path("/etc/slurm/slurm.conf")

SLURM_CONF = """\
# Written by tests/slurm.py (pid {pid}) for a throwaway single-node cluster; removed at teardown.
ClusterName=blindlca-test
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=slurm
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
StateSaveLocation={root}/ctld
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/run/slurmctld.pid
SlurmdPidFile={root}/run/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=500
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=600
InactiveLimit=0
KillWait=5
GresTypes=gpu
NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory} Gres=gpu:1 State=UNKNOWN
PartitionName=test Nodes={node} Default=YES MaxTime=INFINITE State=UP
"""
# A file-less `Name=gpu Count=1` is rejected and drains the node; /dev/null stands in for the device.
GRES_CONF = "Name=gpu File=/dev/null\n"


class SlurmUnavailable(Exception):
    """SLURM cannot be installed here (not root, or no apt): the caller skips."""


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as e:
        return f"<{path}: {e}>"


def ensure_installed() -> None:
    """Install slurm-wlm and munge with apt if any of their programs is missing."""
    if all(shutil.which(b) for b in BINARIES):
        return
    if os.geteuid() != 0:
        raise SlurmUnavailable("SLURM is not installed and installing it needs root")
    if not shutil.which("apt-get"):
        raise SlurmUnavailable("SLURM is not installed and there is no apt-get to install it")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES]):
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise RuntimeError(
                f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
            )
    missing = [b for b in BINARIES if not shutil.which(b)]
    if missing:
        raise RuntimeError(f"apt installed {PACKAGES} but these programs are still missing: {missing}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node_memory_mb() -> int:
    """RealMemory as slurmd measures it: configuring more than the machine has drains the node."""
    out = subprocess.run(["slurmd", "-C"], capture_output=True, text=True).stdout
    found = re.search(r"RealMemory=(\d+)", out)
    if found:
        return int(found.group(1))
    kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
    return kb // 1024 - 512


def munge_works() -> bool:
    cred = subprocess.run(["munge", "-n"], capture_output=True)
    if cred.returncode != 0:
        return False
    return subprocess.run(["unmunge"], input=cred.stdout, capture_output=True).returncode == 0


@dataclass
class Daemon:
    name: str
    proc: subprocess.Popen
    log: Path


@dataclass
class SlurmCluster:
    """A running single-node cluster. `env` points SLURM's commands (and sbatch'ed jobs) at it."""

    root: Path
    node: str
    cpus: int
    env: dict[str, str]
    daemons: list[Daemon] = field(default_factory=list)
    made_munge_dir: bool = False
    made_munge_key: bool = False

    def run(self, *cmd: str, check: bool = True) -> str:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=self.env, timeout=60)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc.stdout

    def logs(self, lines: int = 30) -> str:
        """The ends of the daemons' output and log files, for failure messages."""
        files = sorted({*(self.root / "log").glob("*"), *(self.root / "munge").glob("*.log")})
        return "\n".join(f"--- {f}:\n{tail(f, lines)}" for f in files)

    def jobs(self) -> list[dict[str, str]]:
        """Every job slurmctld still knows (finished ones for MinJobAge), as `scontrol show job -o` fields."""
        out = self.run("scontrol", "show", "job", "-o")
        if "No jobs in the system" in out:
            return []
        rows = []
        for line in out.splitlines():
            # Values have no spaces except Command=/WorkDir=/Comment= paths; split on " Key=".
            fields = re.findall(r"(?:^|\s)(\w+(?::\w+)?)=(.*?)(?=\s\w+(?::\w+)?=|$)", line)
            rows.append({k: v.strip() for k, v in fields})
        return rows

    def _start(self, name: str, cmd: list[str], user: str | None = None) -> Daemon:
        log = self.root / "log" / f"{name}.out"
        with open(log, "wb") as fh:
            proc = subprocess.Popen(
                cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env, user=user
            )
        daemon = Daemon(name, proc, log)
        self.daemons.append(daemon)
        return daemon

    def _wait(self, what: str, ready, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for d in self.daemons:
                if d.proc.poll() is not None:
                    raise RuntimeError(
                        f"{d.name} exited ({d.proc.returncode}) while waiting for {what}\n{self.logs()}"
                    )
            if ready():
                return
            time.sleep(0.5)
        raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}\n{self.logs()}")

    def start(self) -> None:
        munge = pwd.getpwnam("munge")
        # munge: reuse a munged that answers, else start one as the munge user, in the foreground.
        if not munge_works():
            if not Path("/etc/munge/munge.key").exists():
                subprocess.run(["mungekey", "--create"], check=True, capture_output=True)
                self.made_munge_key = True
            if not MUNGE_DIR.exists():
                MUNGE_DIR.mkdir(mode=0o755)
                self.made_munge_dir = True
            os.chown(MUNGE_DIR, munge.pw_uid, munge.pw_gid)
            mdir = self.root / "munge"
            mdir.mkdir(mode=0o700)
            os.chown(mdir, munge.pw_uid, munge.pw_gid)
            self._start(
                "munged",
                [
                    "munged",
                    "--foreground",
                    f"--log-file={mdir}/munged.log",
                    f"--pid-file={mdir}/munged.pid",
                    f"--seed-file={mdir}/munged.seed",
                ],
                user="munge",
            )
            self._wait("munged", munge_works, timeout=30)
        # slurmctld -c: clear any saved state; -D: stay in the foreground so its PID is the daemon's.
        self._start("slurmctld", ["slurmctld", "-D", "-c"])
        self._wait(
            "slurmctld",
            lambda: subprocess.run(["scontrol", "ping"], capture_output=True, env=self.env).returncode == 0,
        )
        self._start("slurmd", ["slurmd", "-D", "-N", self.node])
        self._wait("the node to become idle", lambda: self.node_state() == "idle")

    def node_state(self) -> str:
        proc = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True, env=self.env)
        return proc.stdout.strip()

    def stop(self) -> None:
        """Cancel leftover jobs, then stop the daemons started here by PID, newest first."""
        if any(d.name == "slurmctld" and d.proc.poll() is None for d in self.daemons):
            ids = self.run("squeue", "-h", "-o", "%i", check=False).split()
            if ids:
                self.run("scancel", *ids, check=False)
                deadline = time.monotonic() + 20
                while (
                    time.monotonic() < deadline and self.run("squeue", "-h", "-o", "%i", check=False).split()
                ):
                    time.sleep(0.5)
        for d in reversed(self.daemons):
            if d.proc.poll() is None:
                d.proc.send_signal(signal.SIGTERM)
                try:
                    d.proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    d.proc.kill()
                    d.proc.wait(timeout=10)
        if self.made_munge_dir:
            shutil.rmtree(MUNGE_DIR, ignore_errors=True)
        if self.made_munge_key:
            Path("/etc/munge/munge.key").unlink(missing_ok=True)


@contextmanager
def running_cluster() -> Iterator[SlurmCluster]:
    """Install if needed, start a cluster and yield it; always stop it and remove its folder.

    Raises SlurmUnavailable where SLURM cannot be installed or started here (not root, no apt).
    """
    if os.geteuid() != 0:
        raise SlurmUnavailable("starting munged and slurmd needs root")
    ensure_installed()
    root = Path(tempfile.mkdtemp(prefix="blindlca-slurm-"))
    try:
        root.chmod(0o755)  # the daemons read it after dropping to the slurm and munge users
        slurm = pwd.getpwnam("slurm")
        for sub, owner in (("ctld", slurm), ("spool", None), ("run", slurm), ("log", slurm)):
            (root / sub).mkdir()
            if owner:
                os.chown(root / sub, owner.pw_uid, owner.pw_gid)
        node = socket.gethostname().split(".")[0]
        cpus = os.cpu_count() or 1
        conf = SLURM_CONF.format(
            node=node,
            root=root,
            cpus=cpus,
            memory=node_memory_mb(),
            ctld_port=free_port(),
            slurmd_port=free_port(),
            pid=os.getpid(),
        )
        (root / "slurm.conf").write_text(conf)
        (root / "gres.conf").write_text(GRES_CONF)  # SLURM reads it from the folder of slurm.conf
        prefixes = ("SLURM_", "SBATCH_", "SRUN_", "SQUEUE_")
        env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
        env["SLURM_CONF"] = str(root / "slurm.conf")
        cluster = SlurmCluster(root=root, node=node, cpus=cpus, env=env)
        made_etc_dir = not ETC_CONF.parent.exists()
        try:
            claim_etc_conf(conf)
            cluster.start()
            yield cluster
        finally:
            cluster.stop()
            if ETC_CONF.exists() and ETC_CONF.read_text() == conf:
                ETC_CONF.unlink()
            if made_etc_dir and ETC_CONF.parent.exists() and not any(ETC_CONF.parent.iterdir()):
                ETC_CONF.parent.rmdir()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def claim_etc_conf(conf: str) -> None:
    """Put a copy of the config at /etc/slurm/slurm.conf, where nothing else may be.

    The daemons and the commands run here read SLURM_CONF, but the executor's job step
    (snakemake-executor-plugin-slurm-jobstep 0.6) drops every SLURM_* variable before it calls `srun`
    inside the job, so that srun only finds SLURM's default path. A copy left by an earlier run whose
    process is gone is replaced; any other slurm.conf there belongs to someone else and stops the test.
    """
    ETC_CONF.parent.mkdir(parents=True, exist_ok=True)
    if ETC_CONF.exists():
        old = ETC_CONF.read_text()
        owner = re.match(r"# Written by tests/slurm.py \(pid (\d+)\)", old)
        if not owner or Path(f"/proc/{owner.group(1)}").exists():
            raise RuntimeError(
                f"{ETC_CONF} exists and is not a stale copy of this test's config: another SLURM is "
                "configured on this machine. Job steps read that file, so this test cannot run beside it."
            )
        ETC_CONF.unlink()
    fd = os.open(ETC_CONF, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "w") as fh:
        fh.write(conf)
