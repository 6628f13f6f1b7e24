#!/usr/bin/env bash
# The demo's https front: a local certificate authority and a wildcard certificate for the hub
# and every user's subdomain (hub.localhost, *.hub.localhost). A real site uses its own
# certificate instead (site keys hub.ssl_cert, hub.ssl_key).
#
#   make-demo-certs.sh DIR HOST [OWNER_GROUP]
#
# Writes DIR/ca.crt (import it into a browser to trust the demo), DIR/hub.crt and DIR/hub.key
# (readable by OWNER_GROUP, the hub's own group; by default the caller's own, root's as root).
# The CA's key is used once and deleted, so this CA can sign nothing else. Existing files are kept if the certificate still names HOST.
set -euo pipefail
dir=$1 host=$2 group=${3:-$(id -gn)}
mkdir -p "$dir" && chmod 755 "$dir"
if [ -f "$dir/hub.crt" ] && [ -f "$dir/hub.key" ] \
  && openssl x509 -in "$dir/hub.crt" -noout -checkhost "*.$host" 2>/dev/null | grep -q "does match" \
  && openssl x509 -in "$dir/hub.crt" -noout -checkend 86400 >/dev/null; then
  exit 0
fi
work=$(mktemp -d) && trap 'rm -rf "$work"' EXIT
openssl req -x509 -new -newkey rsa:2048 -nodes -sha256 -days 825 -subj "/CN=AI Factory Workbench demo CA" \
  -addext "basicConstraints=critical,CA:TRUE,pathlen:0" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -keyout "$work/ca.key" -out "$work/ca.crt" 2>/dev/null
openssl req -new -newkey rsa:2048 -nodes -subj "/CN=$host" -keyout "$work/hub.key" -out "$work/hub.csr" 2>/dev/null
printf 'subjectAltName=DNS:%s,DNS:*.%s\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' \
  "$host" "$host" > "$work/ext"
openssl x509 -req -in "$work/hub.csr" -CA "$work/ca.crt" -CAkey "$work/ca.key" -CAcreateserial -days 398 -sha256 \
  -extfile "$work/ext" -out "$work/hub.crt" 2>/dev/null
install -m 644 "$work/ca.crt" "$dir/ca.crt"
install -m 644 "$work/hub.crt" "$dir/hub.crt"
install -m 640 -g "$group" "$work/hub.key" "$dir/hub.key"
echo "demo TLS: $dir/hub.crt for $host and *.$host, signed by $dir/ca.crt"
