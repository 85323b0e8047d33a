"""LLMOps: assistants whose prompts are versioned, whose conversations are logged and re-scored.

Submodules: specs (assistant YAML), logs (conversation schema and line validation),
redact (personal data), scorers, compare (confidence intervals and the promotion
rule), prompts (MLflow Prompt Registry), simulate (seeded conversation logs),
backends/replay/judge/optimizer (optional, with an OpenAI-compatible endpoint),
evaluation (the steps the prompt-evaluation DAG runs).
"""
