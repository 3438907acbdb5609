# Sourced by .ci/run: installs PostgreSQL from Debian's packages when missing, starts a
# private cluster on loopback (port 55432, data under /tmp), and exports the URL the store
# tests and the multi-node tests use: POSTGRES_TEST_URL (a superuser, so each test
# can make its own database and the least-privilege roles).
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
pg_data=/tmp/ephemera-ci-postgres
if ! "$pg_bin/pg_isready" -q -h 127.0.0.1 -p 55432; then
  rm -rf "$pg_data" && mkdir -p "$pg_data" && chown postgres: "$pg_data"
  runuser -u postgres -- "$pg_bin/initdb" -D "$pg_data" -U postgres --auth=trust >/dev/null
  runuser -u postgres -- "$pg_bin/pg_ctl" -D "$pg_data" -l "$pg_data/server.log" -w \
    -o "-c listen_addresses=127.0.0.1 -c port=55432 -c unix_socket_directories=$pg_data -c max_connections=300" start >/dev/null
fi
export POSTGRES_TEST_URL="postgres://postgres@127.0.0.1:55432/postgres"
export POSTGRES_TEST_BIN="$pg_bin"
export POSTGRES_TEST_DATA="$pg_data"
