#!/usr/bin/env bash
# Creates the compose stack's secrets under deploy/compose/secrets/ (git-ignored), once:
# an existing file is never overwritten (the master key seals every org's signing key and
# MACs the audit chain: regenerating it would orphan the stack's database).
#
#   secrets/control-plane.env   NPROXY_MASTER_KEY, NPROXY_ADMIN_TOKEN, NPROXY_DATA_PLANE_TOKEN,
#                               NPROXY_DATABASE (PostgreSQL URL with its password)
#   secrets/data-plane.env      NPROXY_CONTROL_PLANE_TOKEN (= the data-plane token),
#                               NPROXY_STORAGE__S3__ACCESS_KEY_ID / __SECRET_ACCESS_KEY
#   secrets/nproxyctl.env       NPROXY_ADMIN_TOKEN, for nproxyctl on your machine
#   secrets/postgres.env        POSTGRES_PASSWORD
#   secrets/seaweedfs-s3.json   the S3 identity SeaweedFS accepts (same key pair)
set -euo pipefail
dir="$(cd "$(dirname "$0")" && pwd)/secrets"
umask 077
mkdir -p "$dir"
chmod 0700 "$dir"

if [ -e "$dir/control-plane.env" ]; then
  echo "secrets already exist in $dir (delete the folder to start over, with the volumes)"
  exit 0
fi

rand_b64() { openssl rand -base64 "$1" | tr -d '\n'; }
rand_hex() { openssl rand -hex "$1"; }
# The same shape nproxy mints (nproxy_ + random), long enough for the control plane's
# 24-character minimum.
rand_token() { printf '%s_%s' "$1" "$(rand_hex 24)"; }

master_key="$(rand_b64 32)"
admin_token="$(rand_token nproxy_admin)"
data_plane_token="$(rand_token nproxy_dp)"
pg_password="$(rand_hex 24)"
s3_key_id="nproxy$(rand_hex 6)"
# A letter first: the servers parse variable values (an all-digit value would be a number).
s3_secret="s$(rand_hex 24)"

cat >"$dir/control-plane.env" <<END
NPROXY_MASTER_KEY=$master_key
NPROXY_ADMIN_TOKEN=$admin_token
NPROXY_DATA_PLANE_TOKEN=$data_plane_token
NPROXY_DATABASE=postgres://nproxy:$pg_password@postgres:5432/nproxy?sslmode=disable
END
cat >"$dir/data-plane.env" <<END
NPROXY_CONTROL_PLANE_TOKEN=$data_plane_token
NPROXY_STORAGE__S3__ACCESS_KEY_ID=$s3_key_id
NPROXY_STORAGE__S3__SECRET_ACCESS_KEY=$s3_secret
END
cat >"$dir/nproxyctl.env" <<END
NPROXY_ENDPOINT=http://127.0.0.1:7443
NPROXY_ADMIN_TOKEN=$admin_token
END
cat >"$dir/postgres.env" <<END
POSTGRES_PASSWORD=$pg_password
END
cat >"$dir/seaweedfs-s3.json" <<END
{
  "identities": [
    {
      "name": "nproxy",
      "credentials": [{"accessKey": "$s3_key_id", "secretKey": "$s3_secret"}],
      "actions": ["Admin", "Read", "Write", "List", "Tagging"]
    }
  ]
}
END
# Read inside containers by users other than yours (SeaweedFS): the folder (0700) is what
# keeps other local users out.
chmod 0644 "$dir/seaweedfs-s3.json"
echo "wrote $dir"
