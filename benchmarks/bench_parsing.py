"""DAG parsing: every `dags/` file against a minimal TaskFlow DAG file, and the domain DAGs at 3, 30 and 300 domains.

What is timed is what the DAG processor does per file (with bytecode caches, see `child_env`): `DagBag(dag_folder=<file>)` in a fresh
interpreter that has already run `import airflow.sdk` (and imported DagBag). Each timed call uses
its own interpreter, started and imported during the set-up (untimed) and then told to parse, so
no call profits from modules or spec files another call already loaded.

Generated domains are copies of the shipped domain specs under new names (`gen0001_...`) in a
temporary directory on `CONTINUUM_DOMAINS_PATH`; the shipped specs are parsed as well.

Bars (issue #11, issue #12 bar 5):
- each `dags/` file with the shipped domains parses within +100 ms of the minimal file;
- the domain DAGs at 300 generated domains parse in under a third of the DAG processor's
  `dag_file_processor_timeout` (default 50 s);
- the parse time grows no faster than linearly: from 3 to 30 and from 30 to 300 domains it
  grows at most 10x (the domain count's ratio).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

from benchmarks import REPEATS, Comparison, Side, Sizes, data_dir, ratio, times

REPO = Path(__file__).resolve().parent.parent
DAGS = REPO / "dags"
DOMAINS_FILE = DAGS / "continuum_domains.py"
PER_FILE_BAR_S = 0.100
LINEAR = 10  # the domain counts grow 10x per step: 3 -> 30 -> 300

MINIMAL_DAG = """
import pendulum
from airflow.sdk import dag, task


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False, tags=["minimal", "bench"])
def minimal():
    @task
    def extract() -> int:
        return 1

    @task
    def transform(value: int) -> int:
        return value + 1

    @task
    def load(value: int) -> None:
        print(value)

    load(transform(extract()))


minimal()
"""

# Runs in the fresh interpreter: imports first (untimed), then "ready", then one parse on "go".
CHILD = r"""
import json, sys, time
import airflow.sdk  # noqa: F401
from airflow.dag_processing.dagbag import DagBag
print("ready", flush=True)
path = sys.stdin.readline().strip()
start = time.perf_counter()
bag = DagBag(dag_folder=path)
seconds = time.perf_counter() - start
print("PARSED " + json.dumps({"parse_s": seconds, "dags": len(bag.dags), "import_errors": len(bag.import_errors)}), flush=True)
"""


def processor_timeout_s() -> float:
    """The DAG processor's `dag_file_processor_timeout` as configured here (Airflow's default: 50 s)."""
    from airflow.configuration import conf

    return conf.getfloat("dag_processor", "dag_file_processor_timeout")


def generate_specs(count: int, directory: Path) -> list[str]:
    """`count` domain specs in `directory`: the shipped domain specs copied round-robin under new names."""
    import yaml

    from continuum.specs import BUILTIN_DOMAINS_DIR, read_yaml

    bases = [
        document
        for document in (read_yaml(path) for path in sorted(BUILTIN_DOMAINS_DIR.glob("*.yaml")))
        if isinstance(document, dict) and document.get("kind", "domain") == "domain"
    ]
    directory.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(count):
        document = {**bases[i % len(bases)]}
        document["name"] = name = f"gen{i:04d}_{document['name']}"
        (directory / f"{name}.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
        names.append(name)
    return names


def child_env(domains_path: Path | None) -> dict[str, str]:
    """The DAG processor's view: plugins/ importable (Airflow puts it on sys.path), a scratch AIRFLOW_HOME."""
    home = data_dir() / "airflow_home"
    home.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(REPO / "plugins"), os.environ.get("PYTHONPATH", "")) if p
        ),
    }
    # Bytecode caches on, as a DAG processor has them after its first parse (an image or a pip install
    # compiles them too); in a scratch prefix so neither the repository nor the venv is touched. Without
    # them (PYTHONDONTWRITEBYTECODE, as on the machine this was measured on) every parse compiled each
    # project module it imports from source: +150 to +250 ms per file, the same code warm cost +50 ms.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(data_dir() / "pycache")
    env.pop("CONTINUUM_DOMAINS_PATH", None)
    if domains_path is not None:
        env["CONTINUUM_DOMAINS_PATH"] = str(domains_path)
    return env


def _start(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )


def _ready(child: subprocess.Popen) -> None:
    line = child.stdout.readline()
    if line.strip() != "ready":
        raise RuntimeError(f"parse interpreter did not start (exit {child.wait()})")


@contextmanager
def parse(file: str, domains: int = 0):
    """Yields one timed parse of `file` (a path, or "minimal") per call, each in its own ready interpreter."""
    if file == "minimal":
        path = data_dir() / "minimal_dag.py"
        path.write_text(MINIMAL_DAG)
    else:
        path = Path(file)
    domains_path = None
    if domains:
        domains_path = data_dir() / f"specs_{domains}"
        if not domains_path.is_dir():
            partial = Path(tempfile.mkdtemp(dir=data_dir()))
            generate_specs(domains, partial)
            partial.rename(domains_path)
    env = child_env(domains_path)
    # Interpreters for the warm-up and every timed call, started together and waited for (untimed).
    children = [_start(env) for _ in range(REPEATS + 1)]
    try:
        for child in children:
            _ready(child)
        pending = iter(children)

        def once() -> dict:
            child = next(pending)
            # The answer line, not the process's exit: tearing down 600 DAGs at exit is no part of parsing.
            child.stdin.write(f"{path}\n")
            child.stdin.flush()
            line = child.stdout.readline()
            while line and not line.startswith("PARSED "):  # Airflow's log lines go to stdout too
                line = child.stdout.readline()
            if not line:
                raise RuntimeError(f"parse interpreter exited {child.wait()} without an answer")
            result = json.loads(line[len("PARSED ") :])
            return {
                "dags": result["dags"],
                "import_errors": result["import_errors"],
                "parse_s": round(result["parse_s"], 3),
                "domains": domains,
            }

        once()  # warm-up: the file system cache and the bytecode cache hold the files for every timed call alike
        yield once
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()


def _file_meaning(name: str):
    def meaning(s: dict, r: dict) -> str:
        extra = s["seconds"] - r["seconds"]
        verdict = "met" if extra <= PER_FILE_BAR_S and s["facts"]["import_errors"] == 0 else "missed"
        return (
            f"{name} with the shipped domains parses in {s['seconds'] * 1000:.0f} ms ({s['facts']['dags']} DAGs), "
            f"the minimal TaskFlow file in {r['seconds'] * 1000:.0f} ms: {extra * 1000:+.0f} ms, "
            f"{times(ratio(s, r))}. Bar: at most +{PER_FILE_BAR_S * 1000:.0f} ms per file; {verdict}."
        )

    return meaning


def _scale_meaning(small: int, large: int, budget_s: float):
    def meaning(s: dict, r: dict) -> str:
        grown = ratio(s, r)
        linear = grown is not None and grown <= large / small
        within = s["seconds"] < budget_s
        per_domain = (s["seconds"] - r["seconds"]) / (large - small) * 1000
        return (
            f"continuum_domains.py with {large} generated domains ({s['facts']['dags']} DAGs) parses in "
            f"{s['seconds']:.2f} s, with {small} in {r['seconds']:.2f} s: {times(grown)} for {large // small}x "
            f"the domains, {per_domain:.0f} ms per extra domain. Bars: growth at most {large // small}x "
            f"(linear), {'met' if linear else 'missed'}; under a third of dag_file_processor_timeout "
            f"({budget_s:.1f} s), {'met' if within else 'missed'}."
        )

    return meaning


def comparisons(sizes: Sizes) -> list[Comparison]:
    tiny = sizes.rows < Sizes().rows
    reference = Side(
        "minimal TaskFlow DAG file (one DAG, three tasks)",
        "benchmarks.bench_parsing:parse",
        {"file": "minimal"},
    )
    files = [DOMAINS_FILE] if tiny else sorted(DAGS.glob("*.py"))
    found = [
        Comparison(
            case="parsing",
            name=f"parse: {path.name} vs minimal DAG file",
            rows=0,
            subject=Side(f"DagBag({path.name})", "benchmarks.bench_parsing:parse", {"file": str(path)}),
            reference=reference,
            meaning=_file_meaning(path.name),
            notes="Fresh interpreter per parse, after `import airflow.sdk`; the shipped domain and assistant specs.",
        )
        for path in files
    ]
    counts = (1, 2) if tiny else (3, 30, 300)
    budget = processor_timeout_s() / 3
    for small, large in zip(counts, counts[1:], strict=False):
        found.append(
            Comparison(
                case="parsing",
                name=f"parse: {large} vs {small} generated domains",
                rows=large,
                subject=Side(
                    f"DagBag(continuum_domains.py), {large} generated domains",
                    "benchmarks.bench_parsing:parse",
                    {"file": str(DOMAINS_FILE), "domains": large},
                ),
                reference=Side(
                    f"DagBag(continuum_domains.py), {small} generated domains",
                    "benchmarks.bench_parsing:parse",
                    {"file": str(DOMAINS_FILE), "domains": small},
                ),
                meaning=_scale_meaning(small, large, budget),
                notes="Generated specs are copies of the shipped domain specs under new names; the shipped "
                "ones are parsed too. Linear growth means a ratio of at most the domain counts' ratio.",
            )
        )
    return found
