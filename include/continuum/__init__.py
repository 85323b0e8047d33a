"""Continuum: CI/CD/CT for machine-learning models and LLM prompts, run by Apache Airflow 3.

The package holds plain functions that know nothing of Airflow; `dags/` wires them.
Modules import their heavy dependencies (pandas, scikit-learn, MLflow, GX, Evidently)
themselves, so importing `continuum` or `continuum.specs` stays cheap at DAG parse time.
"""

__version__ = "0.1.0"

from continuum import settings as _settings

# Bounded client retries and the pickle guard, for every process that imports Continuum
# (CLI, Airflow task processes, the platform, tests); see settings.CLIENT_ENV.
_settings.apply_client_env()
