#!/bin/sh
# The image's entry point (under dumb-init, which forwards SIGTERM and reaps children).
#   webserver   Dagster UI + GraphQL on 0.0.0.0:$DAGSTER_WEBSERVER_PORT (3000)
#   daemon      Dagster daemon: the reconnect sensor, the schedules, the run queue
#   demo-ha     the labelled DEMO Home Assistant (recorded demo data, not a real home) on 8123
#   anything else runs as given, e.g. `homeiq-pipeline status`
set -eu

prepare_instance() {
    mkdir -p "$DAGSTER_HOME"
    # The project's dagster.yaml (or HOMEIQ_DAGSTER_YAML, e.g. /app/dagster.postgres.yaml), on
    # first start only: an edited copy in the volume is kept.
    if [ ! -e "$DAGSTER_HOME/dagster.yaml" ]; then
        cp "${HOMEIQ_DAGSTER_YAML:-/app/dagster.yaml}" "$DAGSTER_HOME/.dagster.yaml.$$"
        mv -f "$DAGSTER_HOME/.dagster.yaml.$$" "$DAGSTER_HOME/dagster.yaml"
    fi
    # Dagster's own storage does not upgrade itself: after an image upgrade, migrate it in place
    # (a no-op otherwise). The lock keeps the webserver and the daemon from doing it at once.
    if [ "${HOMEIQ_MIGRATE_DAGSTER:-1}" = 1 ]; then
        flock "$DAGSTER_HOME/.migrate.lock" dagster instance migrate >/dev/null
    fi
}

role="${1:-webserver}"
echo "$role" > /tmp/homeiq-role  # tells healthcheck.sh what to check
case "$role" in
    webserver)
        shift
        prepare_instance
        exec dagster-webserver -h 0.0.0.0 -p "$DAGSTER_WEBSERVER_PORT" -w /app/workspace.yaml "$@"
        ;;
    daemon)
        shift
        prepare_instance
        exec dagster-daemon run -w /app/workspace.yaml "$@"
        ;;
    demo-ha)
        shift
        exec homeiq-pipeline demo-server --host 0.0.0.0 --port 8123 "$@"
        ;;
    *)
        exec "$@"
        ;;
esac
