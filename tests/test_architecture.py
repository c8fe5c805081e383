"""The package map holds: who may import whom, and what each package offers.

Checked by reading the source (``ast``) and the ``pyproject.toml`` of every workspace member, so a
new module, service or dependency is checked without touching this file; only a change of a
public surface needs an update here, on purpose.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import shutil
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Member:
    """One workspace member: its folder, distribution name, import name and kind."""

    path: Path
    dist: str
    package: str
    kind: str  # "lib" or "service"
    depends_on: frozenset[str]


def _members() -> list[Member]:
    members = []
    for kind, folder in (("lib", "libs"), ("service", "services")):
        for pyproject in sorted((REPO / folder).glob("*/pyproject.toml")):
            project = tomllib.loads(pyproject.read_text())["project"]
            (src,) = (pyproject.parent / "src").iterdir()
            deps = frozenset(
                dep.split(";")[0].split("[")[0].split(">")[0].split("=")[0].strip()
                for dep in project.get("dependencies", [])
            )
            members.append(Member(pyproject.parent, project["name"], src.name, kind, deps))
    return members


MEMBERS = _members()
BY_PACKAGE = {member.package: member for member in MEMBERS}
BY_DIST = {member.dist: member for member in MEMBERS}
SERVICES = {member.package for member in MEMBERS if member.kind == "service"}
COMPOSITION_ROOT = "apihub_cli"


def _python_files() -> list[Path]:
    roots = [REPO / "libs", REPO / "services", REPO / "tests", REPO / "ops"]
    return sorted(p for root in roots for p in root.rglob("*.py") if ".venv" not in p.parts)


def _owner(path: Path) -> str | None:
    """The package whose folder holds ``path`` (its sources or its tests), if any."""
    for member in MEMBERS:
        if member.path in path.parents:
            return member.package
    return None


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every absolute import in ``path`` as (line, dotted name), ``from a import b`` as ``a.b``."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def test_every_member_is_found() -> None:
    assert {"apihub_core", "apihub_runtime", "apihub_dispatcher", "apihub_cli"} <= set(BY_PACKAGE)


def test_no_package_imports_another_packages_private_modules() -> None:
    offences = []
    for path in _python_files():
        owner = _owner(path)
        for line, name in _imports(path):
            top, *rest = name.split(".")
            if top not in BY_PACKAGE or top == owner:
                continue
            if any(part.startswith("_") for part in rest):
                offences.append(f"{path.relative_to(REPO)}:{line}: {name}")
    assert offences == [], "\n".join(offences)


def test_libraries_never_depend_on_services() -> None:
    offences = []
    for member in MEMBERS:
        if member.kind != "lib":
            continue
        offences += [
            f"{member.dist} depends on the service {dep}"
            for dep in member.depends_on
            if dep in BY_DIST and BY_DIST[dep].kind == "service"
        ]
        for path in (member.path / "src").rglob("*.py"):
            offences += [
                f"{path.relative_to(REPO)}:{line}: imports the service {name}"
                for line, name in _imports(path)
                if name.split(".")[0] in SERVICES
            ]
    assert offences == [], "\n".join(offences)


def test_services_meet_only_through_libraries() -> None:
    offences = []
    for member in MEMBERS:
        if member.kind != "service" or member.package == COMPOSITION_ROOT:
            continue
        for path in (member.path / "src").rglob("*.py"):
            offences += [
                f"{path.relative_to(REPO)}:{line}: {name}"
                for line, name in _imports(path)
                if name.split(".")[0] in SERVICES - {member.package}
            ]
    assert offences == [], "\n".join(offences)


def test_imports_are_declared_dependencies() -> None:
    """A member imports another member only if its pyproject says so (no accidental coupling
    that works only because the workspace installs everything)."""
    offences = []
    for member in MEMBERS:
        for path in (member.path / "src").rglob("*.py"):
            for line, name in _imports(path):
                top = name.split(".")[0]
                declared = top not in BY_PACKAGE or top == member.package
                if not declared and BY_PACKAGE[top].dist not in member.depends_on:
                    offences.append(f"{path.relative_to(REPO)}:{line}: {name} (undeclared)")
    assert offences == [], "\n".join(offences)


def test_the_wire_contract_depends_on_no_other_member() -> None:
    assert not BY_PACKAGE["apihub_core"].depends_on & set(BY_DIST)
    assert BY_PACKAGE["apihub_runtime"].depends_on & set(BY_DIST) == {"apihub-core"}


# -- the repository stands on its own --------------------------------------------------------

# Citations of the private notes kept outside the repository: their file names, and their section
# numbers (a section sign, a letter A-D and a digit). Built from pieces so that this file does not
# match itself.
_PRIVATE_NOTES = re.compile(
    "|".join(
        [
            "FAC" + "TS",
            "PLAT" + r"FORM\.md",
            "STY" + r"LE\.md",
            "shared/" + "broker-api",
            "\u00a7" + r"\s*[A-D]\d",
        ]
    )
)


def _tracked_text_files() -> list[Path]:
    git = shutil.which("git")
    if git is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    listed = subprocess.run(
        [git, "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.decode()
    paths = [REPO / name for name in listed.split("\0") if name and name != "uv.lock"]
    return [path for path in paths if path.is_file() and b"\0" not in path.read_bytes()]


def test_no_file_cites_the_private_notes() -> None:
    """Code and docs state a fact and its public source (the broker's portal or repository, a
    measurement on this machine), never a private note the reader cannot open."""
    offences = []
    for path in _tracked_text_files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        offences += [
            f"{path.relative_to(REPO)}:{number}: {line.strip()}"
            for number, line in enumerate(text.splitlines(), 1)
            if _PRIVATE_NOTES.search(line)
        ]
    assert offences == [], "\n".join(offences)


# -- public surfaces ---------------------------------------------------------------------------

SURFACES: dict[str, set[str]] = {
    "apihub_core": {
        "ARCHIVE_STREAM_MAXLEN",
        "COLLECTOR_STREAM_MAXLEN",
        "GAP_STREAM_MAXLEN",
        "ArchiveEvent",
        "ArchiveQuarantined",
        "ArchiveWritten",
        "CollectorCycleSkipped",
        "CollectorEvent",
        "GapBackfillFailed",
        "GapBackfillRequested",
        "GapConfirmedEmpty",
        "GapDetected",
        "GapEvent",
        "GapHealed",
        "MarketEvent",
        "MarketInconsistency",
        "SnapshotQuarantined",
        "SnapshotRecorded",
        "decode_archive_event",
        "decode_collector_event",
        "decode_gap_event",
        "BREAKER_STREAM_MAXLEN",
        "DATA_FIELD",
        "DEAD_LETTER_MAXLEN",
        "DISCOVERY_FILE",
        "DISPATCHER_GROUP",
        "IDEMPOTENCY_TTL_S",
        "ORDER_MARKER_TTL_S",
        "PRIORITIES",
        "RATE_LIMIT_STREAM_MAXLEN",
        "REPLY_MAXLEN",
        "REPLY_TTL_S",
        "REQUEST_ID_TTL_S",
        "REQUEST_STREAM_MAXLEN",
        "RESPONSE_STREAM_MAXLEN",
        "SCHEMA_VERSION",
        "TOKEN_KEEPER_GROUP",
        "TOKEN_STREAM_MAXLEN",
        "TYPE_FIELD",
        "AnyEvent",
        "BreakerState",
        "BreakerStateChanged",
        "CircuitOpen",
        "ConfigurationError",
        "DeadLettered",
        "EntryDecodeError",
        "EntryFields",
        "ErrorClass",
        "Event",
        "HubClient",
        "HubError",
        "HubUnavailable",
        "Keys",
        "Outcome",
        "OutcomeUnknown",
        "Priority",
        "Provider",
        "RateLimitEvent",
        "RateLimitRejected",
        "RateLimitWaited",
        "RequestFailed",
        "RequestInvalid",
        "OrderReconciled",
        "Passthrough",
        "RequestSubmitted",
        "RequestTimeout",
        "Response",
        "ResponseReceived",
        "StreamBatches",
        "StreamEntry",
        "SyncHubClient",
        "TokenDeferred",
        "TokenEvent",
        "TokenFailed",
        "TokenInvalidated",
        "TokenIssued",
        "TokenRefreshed",
        "TokenRequested",
        "UpstreamAuthError",
        "UpstreamError",
        "UpstreamRateLimitHit",
        "UpstreamRateLimited",
        "UpstreamRejected",
        "UpstreamTransient",
        "advertised_hub_url",
        "decode_any",
        "decode_outcome",
        "decode_request",
        "decode_token_event",
        "describe_redis_failure",
        "encode_entry",
        "encode_event",
        "error_for",
        "error_type_for",
        "event_type_name",
        "extract_trace",
        "failure_for",
        "find_hub_url",
        "hub_code",
        "inject_trace",
        "masked_url",
        "now_ms",
        "pool_exhausted",
        "raise_for_failure",
        "read_discovery_file",
        "redis_client",
        "start_span",
        "tracer",
        "tracing_enabled",
        "wire_code",
    },
    "apihub_runtime": {
        "DEMO_WATCHLIST",
        "ArchiveSettings",
        "BackfillSettings",
        "CollectorMode",
        "CollectorSettings",
        "MarketClock",
        "MarketSettings",
        "SentinelSettings",
        "WatchEntry",
        "COMMIT_NOTE_FIELD",
        "AccessToken",
        "AccountConfig",
        "AccountRate",
        "Append",
        "BreakerSettings",
        "Catalog",
        "CatalogSettings",
        "Committer",
        "Delivery",
        "DeliveryReleased",
        "DispatcherSettings",
        "DrainReport",
        "ExitCode",
        "FencedLock",
        "Lease",
        "RateLimiterSettings",
        "Secret",
        "Service",
        "Settings",
        "SharedTokenSource",
        "StopSignals",
        "StoredToken",
        "StreamConsumer",
        "TokenKeeperSettings",
        "TokenKeyError",
        "TokenSource",
        "TokenStore",
        "TrSpec",
        "configure_logging",
        "configure_tracing",
        "consumer_name",
        "dead_letter_event",
        "default_rate",
        "ensure_group",
        "exit_code_for",
        "load_settings",
        "load_token_key",
        "run_process",
        "service_main",
        "serve",
    },
    "apihub_embedded": {
        "DISCOVERY_FILE",
        "EmbeddedRedis",
        "EmbeddedRedisError",
        "RedisServerNotFound",
        "discover_redis_url",
        "find_redis_server",
        "redis_server_version",
    },
    "apihub_brokers": {
        "KIS_ERROR_CODES",
        "KIWOOM_ERROR_CODES",
        "BrokerClient",
        "BrokerReply",
        "Catalog",
        "CatalogRow",
        "ErrorCodes",
        "KisClient",
        "KiwoomClient",
        "TrSpec",
        "TransportName",
        "builtin_catalog",
        "catalog_markdown",
        "Candidate",
        "Inquiry",
        "OrderTerms",
        "Verdict",
        "candidate_rows",
        "judge",
        "order_terms",
        "reconciliation_inquiries",
        "rows_of",
        "catalog_rows",
        "check_next_key",
        "classify_kis_response",
        "classify_kiwoom_response",
        "client_for",
        "configured_catalog",
        "known_trs",
        "lookup_tr",
        "make_http_client",
        "make_transport",
    },
    "apihub_governance": {
        "RATE_LIMIT_CODE",
        "Admission",
        "Bucket",
        "CircuitBreaker",
        "Gatekeeper",
        "JitterEstimator",
        "LocalLimiter",
        "Outcome",
        "Permit",
        "Window",
        "buckets_for",
    },
    "apihub_marketdata": {
        "INTERVALS",
        "KST",
        "MARKET_DATA_TRS",
        "NORMALISE_REASONS",
        "SOURCE_TYPES",
        "CalendarError",
        "Candle",
        "Interval",
        "MarketData",
        "MarketDataError",
        "NormaliseError",
        "Session",
        "Snapshot",
        "SourceType",
        "Tick",
        "TradingCalendar",
        "carries_market_data",
        "krx_calendar",
        "normalise",
    },
    "apihub_archive": {
        "DEFAULT_COMPRESS_AFTER_DAYS",
        "DEFAULT_DATABASE",
        "DEFAULT_JSONL_MAX_BYTES",
        "DEFAULT_LOCK_WAIT_S",
        "EXPORT_TABLES",
        "SCHEMA_VERSION",
        "TABLES",
        "ArchiveBusy",
        "ArchiveCorrupt",
        "ArchiveError",
        "ArchiveNotFound",
        "ArchiveQueryError",
        "ArchiveReader",
        "ArchiveStats",
        "ArchiveStore",
        "ArchiveWriteError",
        "Coverage",
        "CrashPoint",
        "FileRecord",
        "Item",
        "Observation",
        "Rejection",
        "WriteReport",
        "entry_order",
        "read_candles",
    },
    "apihub_backfill": {
        "BackfillError",
        "BackfillJob",
        "Holder",
        "JobRecord",
        "JobSpec",
        "JobStatus",
        "PAGE_ROWS",
        "Page",
        "PageClaims",
        "Progress",
        "bar_length",
        "eta_seconds",
        "expected_bars",
        "list_jobs",
        "pages_for",
        "plan_pages",
        "symbols_of",
    },
    "apihub_sentinel": {
        "GROUP",
        "Gap",
        "GapStore",
        "Sentinel",
        "open_sentinel",
        "run_sentinel",
        "tracked_series",
    },
    "apihub_testing": {"RedisServer", "async_wait_until", "redis_strings", "wait_until"},
    "apihub_broker_sim": {
        "KIS_ORDER",
        "KIS_PRICE",
        "KIWOOM_DAILY",
        "KST",
        "SimClock",
        "SimConfig",
        "SimServer",
        "SimState",
        "ThreadedSimServer",
        "appkey_fingerprint",
        "create_app",
        "run_simulator",
    },
    "apihub_dispatcher": {
        "Answer",
        "Attempt",
        "AwaitProbe",
        "Decision",
        "Dispatcher",
        "GiveUp",
        "Requeue",
        "Retry",
        "RetryPolicy",
        "Tally",
        "decide",
        "open_dispatcher",
        "run_dispatcher",
    },
    "apihub_reconciler": {
        "GROUP",
        "RECHECK_AFTER_S",
        "OrderRequest",
        "Reconciler",
        "load_order_request",
        "open_reconciler",
        "reconcile",
        "run_reconciler",
    },
    "apihub_archiver": {
        "GROUP",
        "Archiver",
        "ArchiverStats",
        "RebuildReport",
        "holds_archive",
        "open_archiver",
        "project",
        "quarantined_event",
        "rebuild_archive",
        "received_at",
        "run_archiver",
        "wanted",
        "written_event",
    },
    "apihub_collector": {
        "COUNTERS",
        "Collector",
        "CollectorStatus",
        "observe",
        "open_collector",
        "read_status",
        "run_collector",
    },
    "apihub_token_keeper": {
        "SHUTDOWN_GRACE_S",
        "IssueWindow",
        "Issuer",
        "Need",
        "Reason",
        "Result",
        "TokenKeeper",
        "WindowBusy",
        "open_token_keeper",
        "run_token_keeper",
    },
    "apihub_cli": {"app"},
}


def _ruff_order(name: str) -> tuple[int, str]:
    # ruff's RUF022: SCREAMING_CASE constants, then CamelCase classes, then the rest.
    if name.isupper():
        return (0, name)
    if name[0].isupper():
        return (1, name)
    return (2, name)


def test_every_member_has_a_locked_surface() -> None:
    assert set(SURFACES) == set(BY_PACKAGE)


@pytest.mark.parametrize("package", sorted(SURFACES))
def test_the_public_surface_is_curated(package: str) -> None:
    module = importlib.import_module(package)
    exported = list(module.__all__)
    assert exported == sorted(exported, key=_ruff_order), "__all__ is not sorted"
    assert len(exported) == len(set(exported)), "__all__ has duplicates"
    public = {
        name
        for name, value in vars(module).items()
        if name.isidentifier() and not name.startswith("_") and not inspect.ismodule(value)
    }
    assert set(exported) == public, "__all__ differs from the package's public names"
    assert set(exported) == SURFACES[package], "the public surface changed: update SURFACES"


@pytest.mark.parametrize("package", sorted(SURFACES))
def test_every_public_class_and_function_is_documented(package: str) -> None:
    module = importlib.import_module(package)
    undocumented = [
        name
        for name in module.__all__
        if (inspect.isclass(getattr(module, name)) or inspect.isfunction(getattr(module, name)))
        and not inspect.getdoc(getattr(module, name))
    ]
    assert undocumented == []
