#!/bin/sh
# The image's health check (HEALTHCHECK CMD-SHELL): what is checked depends on the role the
# container was started with (entrypoint.sh writes it). Exit 0 = healthy.
role="$(cat /tmp/homeiq-role 2>/dev/null || echo none)"
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
        exit 0  # a one-off command: nothing to watch
        ;;
esac
