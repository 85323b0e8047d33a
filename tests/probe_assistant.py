"""The smallest assistant spec the LLM tests build on: one builder, so a new required field is added once."""

from __future__ import annotations

from typing import Any

from continuum.llm.specs import AssistantSpec


def spec(name: str = "shop", **sections: Any) -> AssistantSpec:
    """A retail assistant scored on `outcome`; `sections` add or replace top-level sections."""
    return AssistantSpec.model_validate(
        {
            "name": name,
            "description": "d",
            "owner": "o",
            "business": "retail",
            "primary_score": "outcome",
            "price": {"input_per_1k": 0.001, "output_per_1k": 0.002},
            **sections,
        }
    )
