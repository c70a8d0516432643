"""gunicorn settings for `make serve` and the systemd unit (override any with GUNICORN_CMD_ARGS)."""

import multiprocessing
import os

from ftdash import data_dir

# In the master, before any worker starts: an unusable data directory is one sentence, not one
# per worker that gunicorn keeps restarting.
data_dir.prepare()

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("FTDASH_WORKERS", min(4, multiprocessing.cpu_count() * 2 + 1)))
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
