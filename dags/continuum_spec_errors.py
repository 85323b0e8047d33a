"""
# Continuum spec errors

Reports every domain or assistant spec that cannot be used as an import error of this file, so
the Airflow UI shows the file and the field at fault, while `continuum_domains.py`
and `continuum_assistants.py` keep building the DAGs of every valid spec. This file defines no DAG.
"""

from continuum.llm.specs import load_assistants
from continuum.specs import load_domains

_errors = load_domains()[1] + load_assistants()[1]
if _errors:
    raise ValueError("Broken spec(s):\n" + "\n".join(str(error) for error in _errors))
