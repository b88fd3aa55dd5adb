# Sourced by scripts that run the daemon against the private MariaDB
# (bench.sh, ab.sh, soak.sh); not run on its own.

# daemon_config LISTEN ADMIN USER PASSWORD IDENTITY prints the part of a
# daemon configuration they share: the listeners, warn-level logs, the
# private MariaDB (port $MPORT, the warden login) as backend `default`, and
# one client identity. Callers append what is theirs — more identities
# (indented under `identities:`), then `audit:` and the rest.
daemon_config() {
  cat <<YAML
listen: $1
admin_listen: $2
log_level: warn
backends:
  - name: default
    address: 127.0.0.1:$MPORT
    user: warden
    password: warden-pass
identities:
  clients:
    - user: $3
      password: $4
      name: $5
YAML
}

# start_haproxy PORT DIR starts HAProxy in TCP mode — the reference L4 relay
# the benchmarks compare with — on 127.0.0.1:PORT in front of the private
# MariaDB, as a daemon whose pid is in DIR/haproxy.pid.
start_haproxy() {
  cat > "$2/haproxy.cfg" <<CFG
global
  maxconn 4096
defaults
  mode tcp
  timeout connect 5s
  timeout client 1m
  timeout server 1m
listen mysql
  bind 127.0.0.1:$1
  server db 127.0.0.1:$MPORT
CFG
  haproxy -f "$2/haproxy.cfg" -D -p "$2/haproxy.pid"
}
