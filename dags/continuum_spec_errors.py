"""
# Continuum spec errors

Reports every domain spec that cannot be used as an import error of this file, so
the Airflow UI shows the file and the field at fault, while `continuum_domains.py`
keeps building the DAGs of every valid domain. This file defines no DAG.
"""

from continuum.specs import load_domains

_specs, _errors = load_domains()
if _errors:
    raise ValueError("Broken domain spec(s):\n" + "\n".join(str(error) for error in _errors))
