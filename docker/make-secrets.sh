#!/bin/sh
# Creates the secrets docker/compose.yaml reads, under docker/secrets/ (gitignored). Never
# overwrites a file that exists, so running it again is harmless; delete a file to renew it.
#
#   sh docker/make-secrets.sh
#
# The folder is private (0700); the files in it are 0644 so that the containers' users (uid
# 10001 for the service, postgres for the database) can read the bind-mounted copies: with
# file-based secrets, compose keeps the host's owner and mode. Back up signing_key.pem (it is
# not in the database: without it, nothing new is signed with the key auditors know).
set -eu
cd "$(dirname "$0")"
mkdir -p secrets
chmod 0700 secrets
cd secrets

random() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }
create() { # name, then the content on stdin
  if [ -e "$1" ]; then
    echo "kept    docker/secrets/$1"
    cat >/dev/null
  else
    cat >"$1.partial" && chmod 0644 "$1.partial" && mv "$1.partial" "$1"
    echo "created docker/secrets/$1"
  fi
}

random 24 | create postgres_password          # the PostgreSQL superuser (postgres)
random 24 | create ledger_db_password         # the service's login role (ledger)
printf 'postgresql://ledger:%s@postgres:5432/ledger\n' "$(cat ledger_db_password)" \
  | create database_url
printf 'lk_%s\n' "$(random 32)" | create bootstrap_admin_key
random 16 | create grafana_admin_password     # Grafana's admin (the `monitoring` profile)
if [ ! -e signing_key.pem ]; then
  # Ed25519, PKCS#8 PEM: what `ledger keys generate --out FILE` writes, too.
  openssl genpkey -algorithm ed25519 -out signing_key.pem.partial
  chmod 0644 signing_key.pem.partial
  mv signing_key.pem.partial signing_key.pem
  echo "created docker/secrets/signing_key.pem"
else
  echo "kept    docker/secrets/signing_key.pem"
fi
