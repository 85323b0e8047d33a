"""Conversation logs: the JSON Lines schema and the line-by-line validation.

One conversation per line (OpenAI chat format, multi-turn). A bad line never
stops the file: `parse_jsonl` returns the good conversations and a quarantine
record for every bad line, with a one-line reason a person can act on, so the
evaluation can count and store what it skipped. Extra keys are kept everywhere:
teams log what they need (a `scenario`, a `channel`, a `customer_id`).

Only pydantic (and the spec module's shared base) is imported: the DAG files may import this at parse time.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import Field, Strict, ValidationError, field_validator, model_validator

from continuum.specs import OpenModel

REQUIRED_KEYS: tuple[str, ...] = (
    "conversation_id",
    "assistant",
    "prompt",
    "model",
    "params",
    "started_at",
    "messages",
    "usage",
    "latency_ms",
)
ROLES: tuple[str, ...] = ("system", "user", "assistant", "tool")
RAW_LIMIT = 2000  # characters of a bad line kept in its quarantine record

StrictInt = Annotated[int, Strict()]
StrictFloat = Annotated[float, Strict()]  # accepts ints, rejects "0.3"
StrictBool = Annotated[bool, Strict()]
Number = StrictInt | StrictFloat  # keeps 1830 an int and 0.3 a float, as logged


class PromptRef(OpenModel):
    name: str = Field(min_length=1)
    version: StrictInt | str

    @field_validator("version")
    @classmethod
    def _as_text(cls, value: int | str) -> str:
        """MLflow numbers versions; logs write 3 or "3": one spelling makes grouping safe."""
        text = str(value).strip()
        if not text:
            raise ValueError("prompt version is empty")
        return text


class Params(OpenModel):
    temperature: Number = Field(ge=0, le=2)
    top_p: Number = Field(gt=0, le=1)


class ToolCall(OpenModel):
    name: str = Field(min_length=1)
    arguments: dict[str, Any]

    @field_validator("arguments", mode="before")
    @classmethod
    def _decode(cls, value: Any) -> Any:
        """OpenAI logs arguments as a JSON-encoded string; accept it when it holds an object."""
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                return value  # reported as "not a dict"
        return value


class Message(OpenModel):
    role: Literal["system", "user", "assistant", "tool"]
    content: str | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None

    @model_validator(mode="after")
    def _complete(self) -> Message:
        if self.role == "tool" and (not self.name or self.content is None):
            raise ValueError("a tool message needs 'name' and 'content'")
        if self.role == "assistant" and self.content is None and not self.tool_calls:
            raise ValueError("an assistant message needs 'content' or 'tool_calls'")
        if self.role in ("system", "user") and self.content is None:
            raise ValueError(f"a {self.role} message needs 'content'")
        if self.tool_calls and self.role != "assistant":
            raise ValueError("only assistant messages may carry 'tool_calls'")
        return self


class Usage(OpenModel):
    input_tokens: StrictInt = Field(ge=0)
    output_tokens: StrictInt = Field(ge=0)


class Feedback(OpenModel):
    rating: StrictInt = Field(ge=1, le=5)


class Outcome(OpenModel):
    success: StrictBool


class Conversation(OpenModel):
    conversation_id: str = Field(min_length=1)
    assistant: str
    prompt: PromptRef
    model: str = Field(min_length=1)
    params: Params
    started_at: datetime
    messages: list[Message] = Field(min_length=1)
    usage: Usage
    latency_ms: Number = Field(ge=0)
    feedback: Feedback | None = None
    outcome: Outcome | None = None

    @field_validator("started_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        """A timestamp without a zone is taken as UTC, the way log shippers write them."""
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def parse_jsonl(data: bytes, assistant: str) -> tuple[list[dict], list[dict]]:
    """The valid conversations of `assistant` in `data`, and a quarantine record per bad line.

    Valid conversations come back as JSON-safe dicts with the keys they were
    logged with (extra keys kept), the prompt version as text and `started_at`
    in UTC. Quarantine records are `{"line": n, "reason": ..., "raw": ...}`,
    `n` counting from 1. Blank lines are skipped. A repeated conversation_id
    keeps the first valid occurrence.
    """
    valid: list[dict] = []
    quarantined: list[dict] = []
    first_line: dict[str, int] = {}
    for number, raw_bytes in enumerate(data.split(b"\n"), start=1):
        raw = raw_bytes.decode("utf-8", errors="replace").rstrip("\r")
        if not raw.strip():
            continue
        try:
            text = raw_bytes.rstrip(b"\r").decode("utf-8")
            conversation = validate_record(json.loads(text), assistant)
        except InvalidRecord as exc:
            quarantined.append(_quarantine(number, str(exc), raw))
            continue
        except UnicodeDecodeError:
            quarantined.append(_quarantine(number, "not UTF-8 text; re-export the log as UTF-8", raw))
            continue
        except ValueError as exc:  # json.JSONDecodeError
            quarantined.append(_quarantine(number, f"invalid JSON: {exc}", raw))
            continue
        conversation_id = conversation["conversation_id"]
        if conversation_id in first_line:
            reason = (
                f"duplicate conversation_id '{conversation_id}' (first on line {first_line[conversation_id]})"
            )
            quarantined.append(_quarantine(number, reason, raw))
            continue
        first_line[conversation_id] = number
        valid.append(conversation)
    return valid, quarantined


class InvalidRecord(ValueError):
    """A record that is JSON but not a conversation of this assistant; the message is the reason."""


def validate_record(record: Any, assistant: str) -> dict:
    """`record` as a normalised, JSON-safe conversation dict, or InvalidRecord with a one-line reason."""
    if not isinstance(record, dict):
        raise InvalidRecord(
            f"not a JSON object (got {_json_type(record)}); write one conversation object per line"
        )
    missing = [key for key in REQUIRED_KEYS if key not in record]
    if missing:
        raise InvalidRecord(f"missing required keys: {', '.join(missing)}")
    if record["assistant"] != assistant:
        raise InvalidRecord(
            f"assistant '{record['assistant']}' does not match '{assistant}'; land it under its own assistant"
        )
    messages = record["messages"]
    if isinstance(messages, list) and not messages:
        raise InvalidRecord("messages is empty")
    if isinstance(messages, list):
        for index, message in enumerate(messages):
            role = message.get("role") if isinstance(message, dict) else None
            if isinstance(message, dict) and role not in ROLES:
                raise InvalidRecord(
                    f"unknown role {role!r} at messages[{index}] (allowed: {', '.join(ROLES)})"
                )
    try:
        return Conversation.model_validate(record).model_dump(mode="json", exclude_unset=True)
    except ValidationError as exc:
        raise InvalidRecord(_describe(exc)) from None


_UNION_BRANCHES = {"int": "an integer", "float": "a number", "str": "a string"}


def _describe(exc: ValidationError) -> str:
    """The first problem, where it is and what was expected; a union's branches read as one expectation."""
    errors = exc.errors()
    loc = list(errors[0]["loc"])
    message = errors[0]["msg"]
    if loc and loc[-1] in _UNION_BRANCHES:  # `version: int | str` reports one error per branch
        loc = loc[:-1]
        branches = [e for e in errors if list(e["loc"][:-1]) == loc and e["loc"][-1] in _UNION_BRANCHES]
        errors = [e for e in errors if e not in branches[1:]]
        names = {e["loc"][-1] for e in branches}
        wanted = (
            "a number"
            if names == {"int", "float"}
            else " or ".join(_UNION_BRANCHES[n] for n in sorted(names))
        )
        message = f"Input should be {wanted}"
    where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")
    extra = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"wrong type or value at {where or 'top level'}: {message}{extra}"


def _json_type(value: Any) -> str:
    names = {
        list: "array",
        str: "string",
        bool: "boolean",
        int: "number",
        float: "number",
        type(None): "null",
    }
    return names.get(type(value), type(value).__name__)


def _quarantine(line: int, reason: str, raw: str) -> dict:
    return {"line": line, "reason": " ".join(reason.split()), "raw": raw[:RAW_LIMIT]}
