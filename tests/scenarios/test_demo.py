"""`continuum demo` tells the whole story, models and prompts, through the real DAGs."""

from __future__ import annotations

import pytest

from continuum import cli

pytestmark = pytest.mark.slow


def test_demo_on_one_domain_and_the_assistants(loop, capsys):
    assert cli.main(["demo", "insurance_claim_risk"]) == 0
    out = capsys.readouterr().out
    rows = {line.split("  ")[1].strip(): line for line in out.splitlines() if line.startswith("insurance_claim_risk")}
    assert set(rows) == {"first batch", "stable batch", "drifted batch", "broken batch"}
    assert "no_champion" in rows["first batch"] and " yes " in rows["first batch"]
    assert "drift " in rows["drifted batch"] and "blessed" in rows["drifted batch"]
    assert "quarantine/insurance_claim_risk/" in rows["broken batch"]
    llm = [line for line in out.splitlines() if line.startswith(("shopping_assistant", "claims_assistant"))]
    assert len(llm) == 4
    unsafe, safe = llm[0], llm[1]
    assert "v1 -> v1" in unsafe and "guardrail" in unsafe
    assert "v1 -> v4" in safe and " yes " in safe
    assert "insufficient evidence" in llm[2]
