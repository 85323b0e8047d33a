# Continuum image: the official Airflow image plus the project's lock and package.
# docker-compose.yaml builds it for every Airflow service and for MLflow.
FROM apache/airflow:3.3.2-python3.11

# requirements.txt is a full lock (every transitive pin, apache-airflow==3.3.2 included),
# so it is installed as is, without Airflow's constraints file.
COPY --chown=airflow:0 requirements.txt /opt/airflow/requirements.txt
RUN pip install --no-cache-dir -r /opt/airflow/requirements.txt

# The package is installed editable from /opt/airflow, where AIRFLOW_HOME already is:
# continuum finds the built-in domain specs at include/domains relative to
# include/continuum/specs.py, and docker-compose mounts ./include over
# /opt/airflow/include, so the mounted code and specs are the ones that run.
# --no-deps: the lock above already holds every dependency.
COPY --chown=airflow:0 pyproject.toml README.md /opt/airflow/
COPY --chown=airflow:0 include /opt/airflow/include
RUN pip install --no-cache-dir --no-deps -e /opt/airflow

# Baked in as well, so the image runs without bind mounts (e.g. with the Helm chart).
COPY --chown=airflow:0 dags /opt/airflow/dags
COPY --chown=airflow:0 plugins /opt/airflow/plugins
# Pools, connections and variables: every deployment's init step loads this file with
# `python -m continuum.local.airflow_settings /opt/airflow/airflow_settings.yaml`.
COPY --chown=airflow:0 airflow_settings.yaml /opt/airflow/airflow_settings.yaml
