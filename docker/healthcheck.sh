#!/bin/sh
# The image's health check (HEALTHCHECK CMD-SHELL): what is checked depends on the role the
# container was started with (entrypoint.sh writes it). Exit 0 = healthy.
role="$(cat "${HOMEIQ_ROLE_FILE:-/tmp/homeiq-role}" 2>/dev/null || echo none)"
# The compose watcher touches this every second while every home is watched (--heartbeat-file).
heartbeat="${HOMEIQ_WATCH_HEARTBEAT:-/tmp/homeiq-watch-heartbeat}"
case "$role" in
    webserver)
        exec python3 -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/server_info' % os.environ.get('DAGSTER_WEBSERVER_PORT', '3000'), timeout=10)"
        ;;
    daemon)
        # Every daemon (sensors, schedules, run queue) wrote a heartbeat recently.
        exec dagster-daemon liveness-check
        ;;
    demo-ha)
        exec python3 -c "import socket; socket.create_connection(('127.0.0.1', 8123), timeout=5).close()"
        ;;
    *)
        # The watcher: unhealthy once its heartbeat is over a minute old (held after a rejected
        # token or an untrusted certificate, or hung). A one-off command has no heartbeat file.
        [ -e "$heartbeat" ] || exit 0
        exec python3 -c "import os, sys, time; sys.exit(time.time() - os.stat(sys.argv[1]).st_mtime > 60)" "$heartbeat"
        ;;
esac
