"""How long a run may take before deadline_missed: the spec, else recent runtimes, else the default."""

from __future__ import annotations

import pytest

from continuum import deadlines


def test_the_spec_minutes_win_over_any_history():
    assert deadlines.size(45, [10.0] * 10) == deadlines.Sizing(45.0, "spec")
    with pytest.raises(ValueError, match="positive"):
        deadlines.size(0, [])


def test_without_the_spec_it_is_a_margin_over_the_mean_of_recent_runs():
    minutes = [20, 30, 40]  # mean 30 minutes
    sizing = deadlines.size(None, [m * 60.0 for m in minutes])
    assert sizing == deadlines.Sizing(deadlines.MARGIN * 30, "recent_runs")


def test_only_the_newest_runs_count():
    newest = [600.0] * deadlines.RECENT_RUNS  # 10 minutes each
    sizing = deadlines.size(None, newest + [100 * 3600.0] * 5)  # much older, much slower runs
    assert sizing.minutes == deadlines.MARGIN * 10


def test_too_few_runs_give_the_default_and_fast_dags_the_floor():
    assert deadlines.size(None, [60.0] * (deadlines.MIN_RUNS - 1)) == deadlines.Sizing(deadlines.DEFAULT_MINUTES, "default")
    assert deadlines.size(None, [5.0] * 5) == deadlines.Sizing(deadlines.MIN_MINUTES, "recent_runs")


def test_deadline_minutes_is_validated_in_both_specs(tmp_path, monkeypatch):
    import yaml

    from continuum.llm.specs import load_assistants
    from continuum.specs import BUILTIN_DOMAINS_DIR, load_domains

    for name, kind in (("insurance_fraud", "domain"), ("claims_assistant", "assistant")):
        document = yaml.safe_load((BUILTIN_DOMAINS_DIR / f"{name}.yaml").read_text())
        document.update(name=f"bad_{kind}", deadline_minutes=-5)
        (tmp_path / f"bad_{kind}.yaml").write_text(yaml.safe_dump(document))
        document.update(name=f"good_{kind}", deadline_minutes=45)
        (tmp_path / f"good_{kind}.yaml").write_text(yaml.safe_dump(document))
    monkeypatch.setenv("CONTINUUM_DOMAINS_PATH", str(tmp_path))
    for load, kind in ((load_domains, "domain"), (load_assistants, "assistant")):
        specs, errors = load()
        [error] = [e for e in errors if e.path.name == f"bad_{kind}.yaml"]
        assert error.field == "deadline_minutes"
        assert next(s for s in specs if s.name == f"good_{kind}").deadline_minutes == 45
