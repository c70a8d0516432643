"""gunicorn settings for `make serve` and the systemd unit (override any with GUNICORN_CMD_ARGS)."""

import multiprocessing

from ftdash import data_dir, metrics_dir
from ftdash.env import env_int, env_str

# In the master, before any worker starts: an unusable data directory is one sentence, not one
# per worker that gunicorn keeps restarting. PROMETHEUS_MULTIPROC_DIR is set here too, so that
# every worker the master forks writes its metrics where /metrics/instance reads them.
metrics_dir.prepare(data_dir.prepare())

# Read by the same strict helpers as every setting: FTDASH_WORKERS=four stops start-up naming it.
bind = f"{env_str('HOST', '127.0.0.1')}:{env_int('PORT', 8000, minimum=1)}"
workers = env_int("FTDASH_WORKERS", min(4, multiprocessing.cpu_count() * 2 + 1), minimum=1)
# Polls are short; a slow upstream call is bounded by FTDASH_API_TOTAL_TIMEOUT, well below this.
timeout = 60
graceful_timeout = 20
accesslog = "-"
# Invite links are secrets: the access log shows an invite's ID, never its path.
logger_class = "ftdash.log_redaction.RedactingGunicornLogger"
# Forwarded headers are judged by ftdash itself (FTDASH_BEHIND_PROXY, FTDASH_TRUSTED_PROXIES),
# so gunicorn must not turn X-Forwarded-Proto into https on its own.
secure_scheme_headers = {}
forwarded_allow_ips = ""
# One control socket per process tree, not a shared one in $HOME that several ftdash servers fight over.
control_socket_disable = True
