"""The embedded local platform: what `make run` starts and what CLI commands borrow.

- `environment`: the environment variables of every component, computed from `CONTINUUM_HOME`.
- `s3server`: an S3 endpoint (moto) whose objects survive restarts (snapshot on disk).
- `airflow_settings`: connections, pools and variables from `airflow_settings.yaml`.
- `preflight`: checks that fail early with one line saying what to do.
- `platform`: the supervisor (`continuum platform run`).
- `services`: `embedded_services()` for CLI commands run outside `make run`.
"""
