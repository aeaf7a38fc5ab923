#!/usr/bin/env bash
# A throwaway MIT Kerberos realm on loopback for the GSSAPI tests.
#
#   scripts/krb5-realm.sh install     install the Debian packages (idempotent, quiet)
#   scripts/krb5-realm.sh up DIR      create realm AMQP.TEST in DIR and start its KDC; prints
#                                     KEY=VALUE lines (the environment a test needs) on stdout
#   scripts/krb5-realm.sh down DIR    stop DIR's KDC (by its PID file) and delete DIR
#
# `up` uses nothing system-wide: krb5.conf and kdc.conf live in DIR and are named by
# KRB5_CONFIG / KRB5_KDC_PROFILE; the KDC listens on 127.0.0.1 on a free non-default port;
# rdns = false and dns_canonicalize_hostname = false, so host names are used as given.
# Principals: alice (the user), amqp/localhost (the service), amqp/otherhost (for the
# wrong-keytab case). Files in DIR: amqp.keytab (amqp/localhost), wrong.keytab
# (amqp/otherhost), alice.keytab, ccache (alice's ticket, via kinit), expired.ccache (a ticket
# of alice valid for 1 second; expired a second later).
# Printed: KRB5_CONFIG, KRB5_KDC_PROFILE, KRB5CCNAME, KRB5_KTNAME, KRB5_REALM, KRB5_DIR,
# KRB5_KDC_PORT.
set -euo pipefail

REALM=AMQP.TEST
log() { printf '[krb5-realm] %s\n' "$*" >&2; }

install() {
  local need=() p
  for p in krb5-kdc krb5-admin-server krb5-user libkrb5-dev libclang-dev libsasl2-modules-gssapi-mit; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
  done
  [ ${#need[@]} -eq 0 ] && return 0
  local SUDO=""
  if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null; then SUDO="sudo"; fi
  log "apt-get install ${need[*]}"
  # krb5-kdc and krb5-admin-server ship system services: never start them here.
  local made_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    made_policy=1
  fi
  $SUDO apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
  if [ -n "$made_policy" ]; then $SUDO rm -f /usr/sbin/policy-rc.d; fi
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

up() {
  local dir=$1
  for tool in kdb5_util kadmin.local krb5kdc kinit; do
    command -v "$tool" >/dev/null || { log "$tool not found (run: $0 install)"; exit 2; }
  done
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  local port
  port=$(free_port)
  cat >"$dir/krb5.conf" <<EOF
[libdefaults]
    default_realm = $REALM
    dns_lookup_kdc = false
    dns_lookup_realm = false
    rdns = false
    dns_canonicalize_hostname = false
    ignore_acceptor_hostname = true
    udp_preference_limit = 1
    default_ccache_name = FILE:$dir/ccache
[realms]
    $REALM = {
        kdc = 127.0.0.1:$port
    }
[domain_realm]
    localhost = $REALM
    otherhost = $REALM
EOF
  cat >"$dir/kdc.conf" <<EOF
[kdcdefaults]
    kdc_listen = 127.0.0.1:$port
    kdc_tcp_listen = 127.0.0.1:$port
[realms]
    $REALM = {
        database_name = $dir/principal
        key_stash_file = $dir/stash
        acl_file = $dir/kadm5.acl
        kdc_listen = 127.0.0.1:$port
        kdc_tcp_listen = 127.0.0.1:$port
        max_life = 1h
        supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal
    }
[logging]
    kdc = FILE:$dir/kdc.log
EOF
  : >"$dir/kadm5.acl"
  export KRB5_CONFIG=$dir/krb5.conf KRB5_KDC_PROFILE=$dir/kdc.conf KRB5CCNAME=FILE:$dir/ccache
  kdb5_util create -s -r "$REALM" -P "master-$$-$RANDOM" >"$dir/setup.log" 2>&1
  {
    kadmin.local -q "addprinc -randkey alice"
    kadmin.local -q "addprinc -randkey amqp/localhost"
    kadmin.local -q "addprinc -randkey amqp/otherhost"
    kadmin.local -q "ktadd -k $dir/amqp.keytab amqp/localhost"
    kadmin.local -q "ktadd -k $dir/wrong.keytab amqp/otherhost"
    kadmin.local -q "ktadd -k $dir/alice.keytab alice"
  } >>"$dir/setup.log" 2>&1
  krb5kdc -P "$dir/kdc.pid" >>"$dir/setup.log" 2>&1
  # The KDC forks; wait until it answers (kinit retries nothing on its own).
  local i
  for i in $(seq 1 50); do
    if kinit -k -t "$dir/alice.keytab" alice >>"$dir/setup.log" 2>&1; then break; fi
    [ "$i" = 50 ] && { log "KDC did not answer; see $dir/setup.log and $dir/kdc.log"; exit 1; }
    sleep 0.1
  done
  KRB5CCNAME=FILE:$dir/expired.ccache kinit -l 1s -k -t "$dir/alice.keytab" alice >>"$dir/setup.log" 2>&1
  cat <<EOF
KRB5_CONFIG=$dir/krb5.conf
KRB5_KDC_PROFILE=$dir/kdc.conf
KRB5CCNAME=FILE:$dir/ccache
KRB5_KTNAME=FILE:$dir/amqp.keytab
KRB5_REALM=$REALM
KRB5_DIR=$dir
KRB5_KDC_PORT=$port
EOF
}

down() {
  local dir=$1
  if [ -f "$dir/kdc.pid" ]; then
    kill "$(cat "$dir/kdc.pid")" 2>/dev/null || true
  fi
  rm -rf "$dir"
}

case "${1:-}" in
  install) install ;;
  up) up "${2:?usage: $0 up DIR}" ;;
  down) down "${2:?usage: $0 down DIR}" ;;
  *) echo "usage: $0 install | up DIR | down DIR" >&2; exit 2 ;;
esac
