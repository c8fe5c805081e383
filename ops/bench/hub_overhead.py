"""Hub overhead benchmark: a KIS quote called directly vs through the hub.

Run from the repository root::

    uv run python ops/bench/hub_overhead.py           # full run (a few minutes)
    uv run python ops/bench/hub_overhead.py --quick   # smoke run (under a minute)

What runs where (separate processes, so no component borrows another's event loop):

* this process       - the callers: per transport a direct client (``KisClient`` over
                       ``make_transport(transport)``, the code the dispatcher runs) and a
                       ``HubClient``;
* ``redis-server``   - an ``EmbeddedRedis`` in a temporary directory, no AOF;
* the simulators     - one per transport: ``python -m apihub_cli sim --port 0``, or, when that
                       one stalls keep-alive requests (see ``SIM_INLINE``), a small script around
                       ``run_simulator``; unthrottled (the default ``SimConfig`` has no limit);
* the dispatchers    - ``python -m apihub_dispatcher``, one per transport, each configured
                       through the environment and ``APIHUB_CONFIG`` (``[dispatcher]
                       transport``) on its own namespace; idle (blocked in ``XREADGROUP``)
                       while another path is being measured.

Every app key is random and used by one client only: the simulator, like KIS, issues at most
one token a minute per app key.

Measured, for both HTTP transports ("aiohttp" = httpx over httpx-aiohttp, "httpx" = httpx's
default transport), the four paths (direct/hub x aiohttp/httpx) taking turns in rotating
blocks so that a drift of the machine's speed hits them alike:

1. latency: sequential calls of FHKST01010100, p50/p99 direct vs through the hub; the hub
   overhead is hub minus direct of the same transport;
2. throughput: calls/s with 64 callers in flight, direct from one shared ``AsyncClient`` vs
   through the hub (one ``HubClient``), as a ratio to the same transport's direct figure and
   to the best direct figure;
3. CPU seconds each process spent per path, to show where the time goes, plus the CPU used by
   anything else meanwhile and a fixed CPU calibration before and after (shared VMs drift).

This is not a pytest test: it needs minutes and a quiet machine.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.metadata
import json
import math
import os
import platform
import secrets
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Final, Literal

import anyio
import msgspec
from _harness import (
    PARAMS,
    TR_ID,
    Child,
    child_env,
    console,
    cpu_seconds,
    fresh_app_key,
    percentile,
    start_service,
    start_sim,
    wait_for_group,
)
from rich.table import Table

from apihub_brokers import KisClient, TransportName, TrSpec, lookup_tr, make_transport
from apihub_core import TOKEN_KEEPER_GROUP, HubClient, HubError, Keys, Provider
from apihub_embedded import EmbeddedRedis, find_redis_server, redis_server_version
from apihub_runtime import AccessToken, AccountConfig, Secret

TRANSPORTS: Final[tuple[TransportName, ...]] = ("aiohttp", "httpx")
DISPATCHER_CONCURRENCY: Final = 256  # the DispatcherSettings default
HTTP_MAX_CONNECTIONS: Final = DISPATCHER_CONCURRENCY  # direct client sized like the dispatcher's
CALL_TIMEOUT_S: Final = 60.0

TARGET_OVERHEAD_P50_MS: Final = 1.0
TARGET_OVERHEAD_P99_MS: Final = 5.0
TARGET_THROUGHPUT_RATIO: Final = 0.8


DISTURBED_SHARE: Final = 0.10

Role = Literal["bench", "redis", "sim", "dispatcher"]
Via = Literal["direct", "hub"]


# -- results ---------------------------------------------------------------------------------


@dataclass
class Phase:
    """One measured run: which path and transport, how many calls, how long, which CPU."""

    path: Via
    transport: TransportName
    kind: Literal["latency", "throughput"]
    calls: int
    errors: int
    wall_s: float
    latencies_ms: list[float] = field(repr=False)
    cpu_s: dict[str, float]
    first_error: str = ""

    @property
    def label(self) -> str:
        """``direct aiohttp`` / ``hub aiohttp`` (the hub's transport is the dispatcher's)."""
        return f"{self.path} {self.transport}"

    @property
    def rate(self) -> float:
        """Successful calls per second."""
        return (self.calls - self.errors) / self.wall_s if self.wall_s else 0.0

    def pct(self, q: float) -> float:
        """The ``q``-th percentile (0..100) of the call latencies, in ms."""
        return percentile(self.latencies_ms, q)

    def summary(self) -> dict[str, Any]:
        """JSON-friendly figures (no raw samples)."""
        data = asdict(self)
        del data["latencies_ms"]
        data.update(
            label=self.label,
            calls_per_s=round(self.rate, 1),
            p50_ms=round(self.pct(50), 3),
            p90_ms=round(self.pct(90), 3),
            p99_ms=round(self.pct(99), 3),
            max_ms=round(max(self.latencies_ms, default=math.nan), 3),
            mean_ms=round(sum(self.latencies_ms) / max(1, len(self.latencies_ms)), 3),
        )
        return data


# -- processes -------------------------------------------------------------------------------


def start_dispatcher(
    workdir: Path,
    redis_url: str,
    sim_url: str,
    namespace: str,
    transport: TransportName,
    profile_dir: Path | None = None,
) -> tuple[Child, Child]:
    """Start a token-keeper and ``python -m apihub_dispatcher`` for ``namespace`` with a fresh
    app key; return both (keeper first).

    With ``profile_dir`` it runs under cProfile and leaves ``dispatcher-<transport>.prof`` there
    (the timings of such a run are inflated by the profiler).
    """
    config = workdir / f"apihub-{namespace}.toml"
    config.write_text(
        f'[dispatcher]\ntransport = "{transport}"\nconcurrency = {DISPATCHER_CONCURRENCY}\n',
        encoding="utf-8",
    )
    app_key, app_secret = fresh_app_key()
    env = child_env(
        {
            "REDIS_URL": redis_url,
            "APIHUB_NAMESPACE": namespace,
            "APIHUB_KIS_BASE_URL": sim_url,
            "APIHUB_KIS_APP_KEY": app_key,
            "APIHUB_KIS_APP_SECRET": app_secret,
            "APIHUB_CONFIG": str(config),
            "APIHUB_DATA_DIR": str(workdir / "data"),
            # The simulator is unthrottled here and this measures the hub's own cost, so the
            # gatekeeper runs (one permit per call) with a budget that never makes anyone wait.
            "APIHUB_KIS_RATE_PER_S": "1000000",
        }
    )
    keeper = start_service(
        "apihub_token_keeper",
        f"token-keeper-{transport}",
        env,
        workdir / f"token-keeper-{namespace}.log",
        redis_url,
        Keys(namespace).tokens,
        TOKEN_KEEPER_GROUP,
    )
    argv = [sys.executable, "-m", "apihub_dispatcher"]
    if profile_dir is not None:
        profile = profile_dir.resolve() / f"dispatcher-{transport}.prof"
        argv[1:1] = ["-m", "cProfile", "-o", str(profile)]
    child = Child(f"dispatcher-{transport}", argv, env, workdir / f"dispatcher-{namespace}.log")
    try:
        wait_for_group(child, redis_url, Keys(namespace).requests, "dispatcher")
    except BaseException:
        child.stop()
        keeper.stop()
        raise
    return keeper, child


# -- the calls -------------------------------------------------------------------------------

Call = Callable[[], Awaitable[None]]


@dataclass
class Sample:
    """What a run of calls produced."""

    wall_s: float
    latencies_ms: list[float]
    errors: int
    first_error: str


async def run_sequential(call: Call, calls: int) -> Sample:
    """``calls`` calls timed one after another."""
    latencies: list[float] = []
    errors, first_error = 0, ""
    started = time.perf_counter()
    for _ in range(calls):
        t0 = time.perf_counter()
        try:
            await call()
        except HubError as exc:
            errors += 1
            first_error = first_error or f"{type(exc).__name__}: {exc}"
        else:
            latencies.append((time.perf_counter() - t0) * 1000.0)
    return Sample(time.perf_counter() - started, latencies, errors, first_error)


async def run_concurrent(call: Call, calls: int, concurrency: int) -> Sample:
    """``calls`` calls by ``concurrency`` workers, each starting its next as one finishes."""
    latencies: list[float] = []
    errors, first_error = 0, ""
    remaining = calls

    async def worker() -> None:
        nonlocal remaining, errors, first_error
        while remaining > 0:
            remaining -= 1
            t0 = time.perf_counter()
            try:
                await call()
            except HubError as exc:
                errors += 1
                first_error = first_error or f"{type(exc).__name__}: {exc}"
            else:
                latencies.append((time.perf_counter() - t0) * 1000.0)

    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(concurrency):
            tg.start_soon(worker)
    return Sample(time.perf_counter() - started, latencies, errors, first_error)


@dataclass
class Plan:
    """How many calls each phase makes."""

    latency_calls: int
    latency_warmup: int
    latency_blocks: int
    throughput_calls: int
    throughput_rounds: int
    throughput_warmup: int
    concurrency: int


class Meter:
    """CPU seconds of the bench's processes, and of everything else, between two points."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self._start = {role: cpu_seconds(pid) for role, pid in pids.items()}
        self._busy = machine_busy_seconds()

    def stop(self) -> dict[str, float]:
        """CPU seconds each process used since the meter was made; ``other`` is the rest of
        the machine (another workload running meanwhile shows up there)."""
        used = {
            role: round(cpu_seconds(pid) - self._start[role], 3) for role, pid in self.pids.items()
        }
        ours = sum(v for v in used.values() if not math.isnan(v))
        used["other"] = round(max(0.0, machine_busy_seconds() - self._busy - ours), 3)
        return used


def machine_busy_seconds() -> float:
    """Non-idle CPU seconds of the whole machine since boot (all cores), from ``/proc/stat``."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return math.nan
    # cpu user nice system idle iowait irq softirq steal ...; guest time is already in user.
    ticks = [int(v) for v in first[1:9]]
    busy = sum(ticks) - ticks[3] - ticks[4]
    return busy / os.sysconf("SC_CLK_TCK")


def kis_account(sim_url: str) -> AccountConfig:
    """A KIS account on the simulator with a never-used app key."""
    app_key, app_secret = fresh_app_key()
    return AccountConfig(
        provider=Provider.KIS,
        name="default",
        app_key=Secret(app_key),
        app_secret=Secret(app_secret),
        base_url=sim_url,
    )


@dataclass
class Tally:
    """Samples and CPU of one path, summed over the blocks of a phase."""

    wall_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str = ""
    cpu_s: dict[str, float] = field(default_factory=dict)

    def add(self, sample: Sample, cpu_s: dict[str, float]) -> None:
        """Fold one block in."""
        self.wall_s += sample.wall_s
        self.latencies_ms += sample.latencies_ms
        self.errors += sample.errors
        self.first_error = self.first_error or sample.first_error
        for role, value in cpu_s.items():
            self.cpu_s[role] = round(self.cpu_s.get(role, 0.0) + value, 3)

    def phase(
        self, path: Via, transport: TransportName, kind: Literal["latency", "throughput"]
    ) -> Phase:
        """The finished phase."""
        calls = len(self.latencies_ms) + self.errors
        return Phase(
            path,
            transport,
            kind,
            calls,
            self.errors,
            self.wall_s,
            self.latencies_ms,
            self.cpu_s,
            self.first_error,
        )


@dataclass
class Stack:
    """The processes behind one transport: its simulator and its dispatcher."""

    transport: TransportName
    sim_url: str
    namespace: str
    pids: dict[str, int]


Key = tuple[Via, TransportName]


async def bench_all(redis_url: str, stacks: list[Stack], plan: Plan) -> list[Phase]:
    """Every path (direct and hub, per transport) measured in rotation.

    direct: the broker client the dispatcher uses (``KisClient`` over ``make_transport``),
    called from this process. hub: ``HubClient.execute`` from this process; that transport's
    dispatcher process makes the HTTP call with the same client code.

    Latency runs in ``plan.latency_blocks`` blocks per path and throughput in
    ``plan.throughput_rounds`` rounds per path, the order of the paths rotating from one block
    or round to the next, so a drift in the machine's speed (shared VMs drift) hits every path
    alike. Each throughput round starts with a warm-up at full concurrency that fills the
    connection pools.
    """
    spec = lookup_tr(Provider.KIS, TR_ID)
    assert spec is not None
    calls: dict[Key, Call] = {}
    pids: dict[Key, dict[str, int]] = {}
    async with contextlib.AsyncExitStack() as stack:
        for st in stacks:
            account = kis_account(st.sim_url)
            # The dispatcher's own path: the broker client straight over the transport.
            http = make_transport(st.transport, max_connections=HTTP_MAX_CONNECTIONS)
            stack.push_async_callback(http.aclose)
            kis = await stack.enter_async_context(KisClient(http))
            hub = await stack.enter_async_context(
                HubClient.from_url(redis_url, namespace=st.namespace)
            )
            token = await kis.issue_token(account)
            calls[("direct", st.transport)] = _direct_call(kis, spec, account, token)
            calls[("hub", st.transport)] = _hub_call(hub)
            pids[("direct", st.transport)] = pids[("hub", st.transport)] = st.pids
        keys = list(calls)
        for key in keys:
            for _ in range(plan.latency_warmup):
                await calls[key]()
        latency = {key: Tally() for key in keys}
        per_block = max(1, plan.latency_calls // plan.latency_blocks)
        for block in range(plan.latency_blocks):
            for key in _rotated(keys, block):
                meter = Meter(pids[key])
                sample = await run_sequential(calls[key], per_block)
                latency[key].add(sample, meter.stop())
        phases = [latency[key].phase(*key, "latency") for key in keys]
        show_progress(phases)
        throughput = {key: Tally() for key in keys}
        per_round = max(1, plan.throughput_calls // plan.throughput_rounds)
        for round_ in range(plan.throughput_rounds):
            for key in _rotated(keys, round_):
                await run_concurrent(calls[key], plan.throughput_warmup, plan.concurrency)
                meter = Meter(pids[key])
                sample = await run_concurrent(calls[key], per_round, plan.concurrency)
                throughput[key].add(sample, meter.stop())
        done = [throughput[key].phase(*key, "throughput") for key in keys]
        show_progress(done)
        return phases + done


def _rotated(keys: list[Key], step: int) -> list[Key]:
    shift = step % len(keys)
    return keys[shift:] + keys[:shift]


def _direct_call(kis: KisClient, spec: TrSpec, account: AccountConfig, token: AccessToken) -> Call:
    async def call() -> None:
        reply = await kis.call(spec, PARAMS, account=account, token=token, timeout=CALL_TIMEOUT_S)
        # The hub hands callers the parsed body; so does the direct path.
        msgspec.json.decode(reply.body)

    return call


def _hub_call(hub: HubClient) -> Call:
    async def call() -> None:
        await hub.execute(Provider.KIS, TR_ID, PARAMS, timeout=CALL_TIMEOUT_S)

    return call


def cpu_calibration_ms() -> float:
    """Best of five timings of a fixed pure-Python workload: the machine's speed right now.

    Shared VMs drift; compare this figure between runs before comparing their timings.
    """
    best = math.inf
    for _ in range(5):
        t0 = time.perf_counter()
        sum(i * i for i in range(300_000))
        msgspec.json.decode(msgspec.json.encode([{"k": str(i), "v": i} for i in range(20_000)]))
        best = min(best, (time.perf_counter() - t0) * 1000.0)
    return round(best, 2)


# -- orchestration ---------------------------------------------------------------------------


@dataclass
class Machine:
    """Where the figures were measured."""

    date: str
    host: str
    nproc: int
    cpu_model: str
    platform: str
    python: str
    redis_server: str
    redis_binary: str
    loadavg_before: str
    packages: dict[str, str]
    calibration_ms_before: float = math.nan
    calibration_ms_after: float = math.nan


def machine_info(redis_binary: Path) -> Machine:
    """nproc, CPU, Python, redis-server and the HTTP stack's versions."""
    cpu_model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.partition(":")[2].strip()
                break
    packages: dict[str, str] = {}
    for name in (
        *("httpx", "httpx-aiohttp", "aiohttp", "redis", "hiredis"),
        *("uvicorn", "h11", "starlette", "anyio", "msgspec"),
    ):
        try:
            packages[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            packages[name] = "-"
    return Machine(
        date=dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        host=platform.node(),
        nproc=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 0,
        cpu_model=cpu_model,
        platform=platform.platform(),
        python=f"{platform.python_implementation()} {platform.python_version()}",
        redis_server=".".join(map(str, redis_server_version(redis_binary))),
        redis_binary=str(redis_binary),
        loadavg_before=loadavg(),
        packages=packages,
        calibration_ms_before=cpu_calibration_ms(),
    )


def loadavg() -> str:
    """The 1/5/15-minute load averages."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def _raise_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def run(
    plan: Plan,
    workdir: Path,
    profile_dir: Path | None = None,
) -> tuple[Machine, list[Phase]]:
    """Start Redis, and per transport a simulator and a dispatcher; measure; stop them all."""
    binary = find_redis_server()
    machine = machine_info(binary)
    print_machine(machine)
    with EmbeddedRedis(workdir / "redis", appendonly=False, binary=binary) as server:
        assert server.pid is not None
        children: list[Child] = []
        try:
            stacks: list[Stack] = []
            for transport in TRANSPORTS:
                # A simulator per transport: the two transports share no server state or
                # connections; both paths of one transport share its simulator.
                sim, sim_url = start_sim(workdir, transport)
                children.append(sim)
                namespace = f"bench-{transport}-{secrets.token_hex(4)}"
                keeper, dispatcher = start_dispatcher(
                    workdir, server.url, sim_url, namespace, transport, profile_dir
                )
                children += [keeper, dispatcher]
                console.print(
                    f"[bold]{transport}[/]: simulator {sim_url} (pid {sim.pid}), "
                    f"dispatcher pid {dispatcher.pid}"
                )
                pids = {
                    "bench": os.getpid(),
                    "redis": server.pid,
                    "sim": sim.pid,
                    "dispatcher": dispatcher.pid,
                }
                stacks.append(Stack(transport, sim_url, namespace, pids))
            phases = anyio.run(bench_all, server.url, stacks, plan)
        finally:
            # Dispatchers first (they drain against a live simulator and keeper), then the
            # token-keepers, then the simulators.
            for prefix in ("dispatcher", "token-keeper", "sim"):
                for child in children:
                    if child.name.startswith(prefix):
                        child.stop()
    machine.calibration_ms_after = cpu_calibration_ms()
    return machine, phases


# -- reporting -------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    """A coloured PASS/MISS."""
    return "[green]PASS[/]" if ok else "[red]MISS[/]"


def fmt(value: float, digits: int = 2) -> str:
    """A number, or "-" for NaN."""
    return "-" if math.isnan(value) else f"{value:.{digits}f}"


def print_machine(machine: Machine) -> None:
    """The machine block of the report."""
    table = Table(title="Machine", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("date", machine.date)
    table.add_row("nproc", str(machine.nproc))
    table.add_row("CPU", machine.cpu_model)
    table.add_row("platform", machine.platform)
    table.add_row("Python", machine.python)
    table.add_row("redis-server", f"{machine.redis_server} ({machine.redis_binary})")
    table.add_row("load avg (before)", machine.loadavg_before)
    table.add_row("CPU calibration", f"{machine.calibration_ms_before:.1f} ms (lower = faster)")
    table.add_row("packages", ", ".join(f"{k} {v}" for k, v in machine.packages.items()))
    console.print(table)
    console.print(
        "Processes: callers in this bench process (pid "
        f"{os.getpid()}); redis-server, the simulator and the dispatcher each in their own "
        "process. Per transport one simulator and one dispatcher, all started before measuring "
        "(a dispatcher idles in XREADGROUP while the others run); the four paths are measured "
        "in rotating blocks (latency) and rounds (throughput) so machine drift hits them alike.\n"
    )


def show_progress(phases: list[Phase]) -> None:
    """One line per finished phase."""
    for p in phases:
        errors = f", [red]{p.errors} errors[/] ({p.first_error})" if p.errors else ""
        if p.kind == "latency":
            console.print(
                f"  latency     {p.label:<26} p50 {fmt(p.pct(50))} ms  "
                f"p99 {fmt(p.pct(99))} ms{errors}"
            )
        else:
            console.print(
                f"  throughput  {p.label:<26} {p.rate:,.0f} calls/s  "
                f"p50 {fmt(p.pct(50), 1)} ms  p99 {fmt(p.pct(99), 1)} ms{errors}"
            )


def find(phases: list[Phase], path: Via, transport: str, kind: str) -> Phase | None:
    """The phase of ``path``/``transport``/``kind``, if it ran."""
    for p in phases:
        if p.path == path and p.transport == transport and p.kind == kind:
            return p
    return None


def report(plan: Plan, phases: list[Phase]) -> None:
    """Latency, throughput and CPU tables with the targets."""
    lat = Table(
        title=(
            f"Latency, sequential: {plan.latency_calls} calls per path in {plan.latency_blocks} "
            f"rotating blocks, after {plan.latency_warmup} warm-up calls (ms). "
            "Overhead = hub - direct of the same transport."
        ),
        title_justify="left",
    )
    for col in ("path", "p50", "p90", "p99", "max", "overhead p50", "overhead p99"):
        lat.add_column(col, justify="left" if col == "path" else "right")
    lat.add_column(f"p50 ≤ {TARGET_OVERHEAD_P50_MS:g} ms")
    lat.add_column(f"p99 ≤ {TARGET_OVERHEAD_P99_MS:g} ms")
    for transport in TRANSPORTS:
        direct = find(phases, "direct", transport, "latency")
        hub = find(phases, "hub", transport, "latency")
        for p in (direct, hub):
            if p is None:
                continue
            row = [p.label, fmt(p.pct(50)), fmt(p.pct(90)), fmt(p.pct(99))]
            row.append(fmt(max(p.latencies_ms, default=math.nan)))
            if p.path == "hub" and direct is not None:
                d50, d99 = p.pct(50) - direct.pct(50), p.pct(99) - direct.pct(99)
                row += [fmt(d50), fmt(d99)]
                row += [verdict(d50 <= TARGET_OVERHEAD_P50_MS)]
                row += [verdict(d99 <= TARGET_OVERHEAD_P99_MS)]
            else:
                row += ["", "", "", ""]
            lat.add_row(*row)
    console.print(lat)

    directs = [p for p in phases if p.path == "direct" and p.kind == "throughput"]
    best = max(directs, key=lambda p: p.rate, default=None)
    thr = Table(
        title=(
            f"Throughput: {plan.throughput_calls} calls per path in {plan.throughput_rounds} "
            f"rotating rounds, {plan.concurrency} in flight "
            f"(target: hub ≥ {TARGET_THROUGHPUT_RATIO:g}× direct)"
        ),
        title_justify="left",
    )
    for col in ("path", "calls/s", "p50 ms", "p99 ms", "errors"):
        thr.add_column(col, justify="left" if col == "path" else "right")
    thr.add_column("× same-transport direct", justify="right")
    thr.add_column(f"× best direct ({best.label if best else '-'})", justify="right")
    for transport in TRANSPORTS:
        direct = find(phases, "direct", transport, "throughput")
        for p in (direct, find(phases, "hub", transport, "throughput")):
            if p is None:
                continue
            row = [p.label, f"{p.rate:,.0f}", fmt(p.pct(50), 1), fmt(p.pct(99), 1), str(p.errors)]
            if p.path == "hub" and direct is not None and best is not None:
                same, vs_best = p.rate / direct.rate, p.rate / best.rate
                row.append(f"{same:.3f}× {verdict(same >= TARGET_THROUGHPUT_RATIO)}")
                row.append(f"{vs_best:.3f}× {verdict(vs_best >= TARGET_THROUGHPUT_RATIO)}")
            else:
                row += ["", ""]
            thr.add_row(*row)
    console.print(thr)

    cpu = Table(
        title=(
            "CPU time per call in ms, by process (util = our processes' share of all cores; "
            "other = CPU used by anything else on the machine meanwhile)"
        ),
        title_justify="left",
    )
    roles: tuple[Role, ...] = ("bench", "dispatcher", "sim", "redis")
    for col in ("phase", "path", *roles, "total", "wall ms/call", "util", "other"):
        cpu.add_column(col, justify="left" if col in ("phase", "path") else "right")
    ncpu = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    for p in phases:
        per_call = [p.cpu_s.get(role, math.nan) * 1000.0 / p.calls for role in roles]
        total_s = sum(p.cpu_s.get(role, 0.0) for role in roles)
        other = p.cpu_s.get("other", math.nan)
        cpu.add_row(
            p.kind,
            p.label,
            *(fmt(v, 3) for v in per_call),
            fmt(total_s * 1000.0 / p.calls, 3),
            fmt(p.wall_s * 1000.0 / p.calls, 3),
            f"{100.0 * total_s / (p.wall_s * ncpu):.0f}%",
            "-" if math.isnan(other) else f"{100.0 * other / (p.wall_s * ncpu):.0f}%",
        )
    console.print(cpu)
    disturbed = [
        f"{p.kind} {p.label}"
        for p in phases
        if p.cpu_s.get("other", 0.0) / (p.wall_s * ncpu) > DISTURBED_SHARE
    ]
    if disturbed:
        console.print(
            f"[yellow]Other work used more than {DISTURBED_SHARE:.0%} of the machine during: "
            f"{', '.join(disturbed)}; rerun on a quiet machine for figures to quote.[/]"
        )


def parse_args(argv: list[str] | None = None) -> tuple[Plan, argparse.Namespace]:
    """Command-line options; ``--quick`` shrinks every phase."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--latency-calls", type=int, help="sequential calls measured")
    parser.add_argument("--warmup", type=int, help="sequential warm-up calls")
    parser.add_argument(
        "--blocks", type=int, default=10, help="rotating blocks of each path's latency run"
    )
    parser.add_argument(
        "--rounds", type=int, default=2, help="rotating rounds of each throughput run"
    )
    parser.add_argument("--throughput-calls", type=int, help="calls in each throughput run")
    parser.add_argument("--concurrency", type=int, default=64, help="callers in flight")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--keep-logs", action="store_true", help="keep the child processes' logs")
    parser.add_argument(
        "--profile-dispatcher",
        type=Path,
        metavar="DIR",
        help="run the dispatcher under cProfile, writing .prof files to DIR (skews timings)",
    )
    args = parser.parse_args(argv)
    quick = bool(args.quick)
    plan = Plan(
        latency_calls=args.latency_calls or (200 if quick else 1000),
        latency_warmup=args.warmup if args.warmup is not None else (20 if quick else 100),
        latency_blocks=args.blocks,
        throughput_rounds=args.rounds,
        throughput_calls=args.throughput_calls or (1000 if quick else 5000),
        throughput_warmup=args.concurrency * 2,
        concurrency=args.concurrency,
    )
    return plan, args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the report; exit 1 if a phase had errors."""
    plan, args = parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _raise_on_sigterm)
    started = time.monotonic()
    if args.profile_dispatcher:
        args.profile_dispatcher.mkdir(parents=True, exist_ok=True)
    try:
        with _workdir(keep=bool(args.keep_logs)) as workdir:
            machine, phases = run(plan, workdir, args.profile_dispatcher)
    finally:
        signal.signal(signal.SIGTERM, previous)
    console.print()
    report(plan, phases)
    console.print(f"Load average before: {machine.loadavg_before}; after: {loadavg()}.")
    console.print(
        f"CPU calibration before: {machine.calibration_ms_before:.1f} ms; "
        f"after: {machine.calibration_ms_after:.1f} ms."
    )
    if args.profile_dispatcher:
        console.print(
            f"[yellow]The dispatcher ran under cProfile (profiles in {args.profile_dispatcher}): "
            "hub figures of this run are inflated.[/]"
        )
    console.print(f"\nTotal run time {time.monotonic() - started:.0f} s.")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": asdict(machine),
                    "plan": asdict(plan),
                    "phases": [p.summary() for p in phases],
                },
                indent=2,
                ensure_ascii=False,
            )
            + "\n",
            encoding="utf-8",
        )
        console.print(f"Figures written to {args.json}.")
    return 1 if any(p.errors for p in phases) else 0


@contextlib.contextmanager
def _workdir(*, keep: bool) -> Iterator[Path]:
    if keep:
        path = Path(tempfile.mkdtemp(prefix="apihub-bench-"))
        console.print(f"Logs kept in {path}")
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="apihub-bench-") as name:
        yield Path(name)


if __name__ == "__main__":
    sys.exit(main())
