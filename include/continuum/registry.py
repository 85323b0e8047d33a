"""Model roles in the MLflow registry: `champion` serves, `previous` is the one before it.

Each domain has one registered model named after the domain. Roles move by
alias only, never by copying artefacts, so a rollback is one alias change and the
registry's history says who served when. Every reader here returns None for
"no such model" or "no such alias", because a domain that has never trained is
an ordinary state (the DAG decides `no_champion`), not an error.

mlflow is imported inside the functions: DAG files may import this module.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

log = logging.getLogger(__name__)

CHAMPION = "champion"
PREVIOUS = "previous"

# The longest gap between two runs of each Airflow preset (a month can be 31 days).
PRESETS: dict[str, timedelta] = {
    "@hourly": timedelta(hours=1),
    "@daily": timedelta(days=1),
    "@weekly": timedelta(days=7),
    "@monthly": timedelta(days=31),
    "@quarterly": timedelta(days=92),
    "@yearly": timedelta(days=366),
    "@annually": timedelta(days=366),
}
# Schedules that run once or on events: they never make a champion stale.
NO_INTERVAL = frozenset({"@once", "@continuous", "none"})
_CRON_SAMPLES = 1000  # consecutive firings inspected to find a cron's longest gap


class RegistryError(RuntimeError):
    """A role change the registry cannot make (no previous champion, unknown version)."""


class ModelRef(BaseModel):
    """One registered model version as the DAGs and the decision record see it."""

    name: str
    version: str
    run_id: str | None = None
    created_at: datetime
    metrics: dict[str, float] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)


def _client() -> MlflowClient:
    import mlflow

    return mlflow.MlflowClient()


def _aliases(client: MlflowClient, name: str) -> dict[str, str] | None:
    """alias -> version of registered model `name`, or None when the model does not exist.

    Reading the aliases from the registered model (rather than asking for one alias)
    avoids relying on which error code a store uses for a missing alias.
    """
    from mlflow.exceptions import MlflowException

    try:
        model = client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    return {alias: str(version) for alias, version in (model.aliases or {}).items()}


def _ref(client: MlflowClient, version: ModelVersion) -> ModelRef:
    from mlflow.exceptions import MlflowException

    run_metrics: dict[str, float] = {}
    if version.run_id:
        try:
            run_metrics = dict(client.get_run(version.run_id).data.metrics)
        except MlflowException as exc:  # a deleted run leaves the version usable
            log.warning("event=run_missing model=%s version=%s error=%s", version.name, version.version, exc)
    return ModelRef(
        name=version.name,
        version=str(version.version),
        run_id=version.run_id or None,
        created_at=datetime.fromtimestamp(version.creation_timestamp / 1000, tz=UTC),
        metrics=run_metrics,
        tags=dict(version.tags or {}),
    )


def _by_alias(name: str, alias: str) -> ModelRef | None:
    client = _client()
    version = (_aliases(client, name) or {}).get(alias)
    if version is None:
        return None
    return _ref(client, client.get_model_version(name, version))


def champion(name: str) -> ModelRef | None:
    """The version that serves `name`, or None if there is none yet."""
    return _by_alias(name, CHAMPION)


def previous(name: str) -> ModelRef | None:
    """The champion before the current one, or None."""
    return _by_alias(name, PREVIOUS)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class ChampionMoved(RegistryError):
    """The champion is no longer the one a challenger was judged against (compare-and-set lost)."""

    def __init__(self, name: str, expected: str | None, actual: str | None):
        self.expected, self.actual = expected, actual
        super().__init__(
            f"{name}: champion is v{actual} but the challenger was judged against v{expected}; "
            "judge it again against the current champion"
        )


def roles(name: str) -> dict[str, str | None]:
    """{"champion": version or None, "previous": version or None} as the registry holds them now."""
    aliases = _aliases(_client(), name) or {}
    return {CHAMPION: aliases.get(CHAMPION), PREVIOUS: aliases.get(PREVIOUS)}


def _set_roles(client: MlflowClient, name: str, champion: str | None, previous: str | None) -> None:
    """Write both aliases, `previous` first, so a crash in between leaves both roles valid versions.

    MLflow has no multi-alias transaction; callers serialise per domain (one decision
    DAG run at a time) and verify with `_verify` afterwards. None removes the alias.
    """
    existing = _aliases(client, name) or {}
    for alias, target in ((PREVIOUS, previous), (CHAMPION, champion)):
        if target is not None:
            client.set_registered_model_alias(name, alias, target)
        elif alias in existing:
            client.delete_registered_model_alias(name, alias)


def _verify(name: str, champion: str, previous: str | None) -> dict[str, str | None]:
    """Read the roles back: a concurrent writer or a store that dropped a write fails loudly."""
    now = roles(name)
    if now[CHAMPION] != champion or now[PREVIOUS] != previous:
        raise RegistryError(
            f"{name}: roles read back as champion=v{now[CHAMPION]} previous=v{now[PREVIOUS]}, expected "
            f"champion=v{champion} previous=v{previous}; another writer moved them, check the aliases in MLflow"
        )
    return now


_UNSET: Any = object()


def promote(name: str, version: str | int, expected: str | None = _UNSET) -> dict[str, str | None]:
    """Make `version` the champion; the old champion becomes `previous`. Returns the roles read back.

    `expected` makes it a compare-and-set: the champion must still be `expected` (a
    version, or None for "no champion"), the one the challenger was judged against,
    else ChampionMoved is raised and nothing moves. Promoting the current champion
    again changes nothing, so a retried task is safe.
    """
    from mlflow.exceptions import MlflowException

    client = _client()
    version = str(version)
    try:
        client.get_model_version(name, version)
    except MlflowException as exc:
        raise RegistryError(
            f"cannot promote {name} version {version}: no such registered version; "
            "train and register it first"
        ) from exc
    aliases = _aliases(client, name) or {}
    old = aliases.get(CHAMPION)
    if old == version:
        return {"champion": version, "previous": aliases.get(PREVIOUS)}
    if expected is not _UNSET and old != (None if expected is None else str(expected)):
        raise ChampionMoved(name, expected, old)
    _set_roles(client, name, version, old if old is not None else aliases.get(PREVIOUS))
    client.set_model_version_tag(name, version, "promoted_at", _now())
    log.info("event=promoted model=%s champion=%s previous=%s", name, version, old)
    return _verify(name, version, old if old is not None else aliases.get(PREVIOUS))


def restore(
    name: str, champion: str | None, previous: str | None, rolled_back: str | None = None
) -> dict[str, str | None]:
    """Put the roles back exactly as they were (automatic rollback of a promotion that failed its smoke test)."""
    client = _client()
    _set_roles(client, name, champion, previous)
    if rolled_back is not None and rolled_back != champion:
        client.set_model_version_tag(name, rolled_back, "rolled_back_at", _now())
    log.info("event=restored model=%s champion=%s previous=%s rolled_back=%s", name, champion, previous, rolled_back)
    return _verify(name, champion, previous)


def rollback(name: str) -> dict[str, str | None]:
    """Serve `previous` again; the rolled-back version loses its alias and gets a `rolled_back_at` tag.

    Afterwards there is no `previous`: rolling back twice needs a deliberate `promote`.
    """
    client = _client()
    aliases = _aliases(client, name) or {}
    target = aliases.get(PREVIOUS)
    if target is None:
        raise RegistryError(
            f"no previous champion to roll back to for {name}; promote a version explicitly instead"
        )
    current = aliases.get(CHAMPION)
    client.set_registered_model_alias(name, CHAMPION, target)
    client.delete_registered_model_alias(name, PREVIOUS)
    if current is not None and current != target:
        client.set_model_version_tag(name, current, "rolled_back_at", _now())
    log.info("event=rolled_back model=%s champion=%s rolled_back=%s", name, target, current)
    return {"champion": target, "rolled_back": current}


def version(name: str, number: str) -> ModelRef:
    """One registered version by number (raises MlflowException when it does not exist)."""
    client = _client()
    return _ref(client, client.get_model_version(name, str(number)))


def find_version(name: str, batch_id: str, role: str) -> ModelRef | None:
    """The version registered for `batch_id` in `role` (baseline, challenger), if any.

    Found by the run that registered it: the run carries the `batch_id` and `role`
    tags from its creation, so even a version whose own tags were never written (a
    task killed right after registration) is found, and a retry registers nothing new.
    """
    client = _client()
    if _aliases(client, name) is None:
        return None
    found = client.search_model_versions(f"name = '{name}'")
    for candidate in sorted(found, key=lambda v: int(v.version)):
        tags = dict(candidate.tags or {})
        if tags.get("batch_id") == batch_id and tags.get("role") == role:
            return _ref(client, candidate)
        if candidate.run_id and not tags.get("batch_id"):
            run_tags = client.get_run(candidate.run_id).data.tags
            if run_tags.get("batch_id") == batch_id and run_tags.get("role") == role:
                return _ref(client, candidate)
    return None


def load(name: str, number: str) -> Any:
    """The scikit-learn pipeline of version `number`, loaded as scoring loads it (`models:/<name>/<number>`).

    Loaded by model_loading (skops with Continuum's own type allow-list), never by pickle.
    """
    from continuum import model_loading

    return model_loading.load_sklearn(f"models:/{name}/{number}")


def load_champion(name: str) -> Any:
    """The champion's scikit-learn pipeline; raises RegistryError when there is no champion.

    Loaded by model_loading (skops with Continuum's own type allow-list), never by pickle.
    """
    from continuum import model_loading

    if champion(name) is None:
        raise RegistryError(f"{name} has no champion yet; train and promote a model first")
    return model_loading.load_sklearn(f"models:/{name}@{CHAMPION}")


def champion_age(name: str, now: datetime | None = None) -> timedelta | None:
    """How long ago the champion was registered (trained), or None without a champion.

    Registration time, not promotion time: a schedule asks for models trained on
    recent data, and a rolled-back old model is as old as its data.
    """
    ref = champion(name)
    if ref is None:
        return None
    return (now or datetime.now(UTC)) - ref.created_at


def schedule_interval(schedule: str | None) -> timedelta | None:
    """The longest gap between two runs of an Airflow schedule; None when it has no period.

    Accepts the presets (`@daily`, `@weekly`, ...), a cron expression (via croniter),
    `@once`/`@continuous`, or None.
    """
    if schedule is None or schedule.strip().lower() in NO_INTERVAL:
        return None
    text = schedule.strip().lower()
    if text in PRESETS:
        return PRESETS[text]
    hint = f"use one of {', '.join(PRESETS)}, a cron expression like '0 6 * * 1', or null"
    if text.startswith("@"):
        raise ValueError(f"unknown schedule preset '{schedule}'; {hint}")
    try:
        from croniter import croniter
    except ImportError as exc:
        raise ValueError(f"cannot read cron schedule '{schedule}' without croniter; {hint}") from exc
    if not croniter.is_valid(text):
        raise ValueError(f"'{schedule}' is not a valid cron expression; {hint}")
    # A fixed start keeps the answer the same on every call (leap years, month lengths).
    times = croniter(text, datetime(2024, 1, 1, tzinfo=UTC))
    previous_time = times.get_next(datetime)
    longest = timedelta(0)
    for _ in range(_CRON_SAMPLES):
        current = times.get_next(datetime)
        longest = max(longest, current - previous_time)
        previous_time = current
    return longest


def is_stale(name: str, schedule: str | None, now: datetime | None = None) -> bool:
    """Whether the champion is older than one schedule interval (retrain by schedule).

    No champion counts as stale; a schedule without a period (None, `@once`) never does.
    """
    interval = schedule_interval(schedule)
    if interval is None:
        return False
    age = champion_age(name, now=now)
    return age is None or age >= interval
