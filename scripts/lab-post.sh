#!/usr/bin/env bash
# After site.yml in the lab: ingest the sample corpus (idempotent: unchanged
# documents are skipped), create one API key per role (once; kept in
# inventories/lab/.secrets/keys.txt, ignored by git) and print how to search.
set -euo pipefail
cd "$(dirname "$0")/.."
inv=inventories/lab
app=vslab-app1
keys=$inv/.secrets/keys.txt
https_port=$(sed -n 's/^lab_https_port: *//p' "$inv/group_vars/all/lab.yml")

docker exec "$app" rm -rf /var/tmp/sample-corpus
docker cp files/sample-corpus "$app:/var/tmp/sample-corpus"
echo "lab: ingesting files/sample-corpus"
docker exec "$app" vector-search ingest /var/tmp/sample-corpus

umask 077
mkdir -p "$(dirname "$keys")"
if [ ! -s "$keys" ]; then
  tmp=$(mktemp)
  for role in student staff academic admin; do
    key=$(docker exec "$app" vector-search keys create --json --role "$role" --owner "lab-$role" \
          | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')
    printf '%s %s\n' "$role" "$key" >>"$tmp"
  done
  mv "$tmp" "$keys"
fi
# 100 more student keys: the production suite's concurrency test gives every
# simulated student behind one campus NAT address a key of their own.
if [ "$(grep -c '^student ' "$keys")" -lt 101 ]; then
  docker exec "$app" vector-search keys create --json --role student --owner lab-load --count 100 \
    | python3 -c 'import json,sys; [print("student", json.loads(l)["key"]) for l in sys.stdin]' >>"$keys"
fi

staff_key=$(awk '$1 == "staff" {print $2}' "$keys")
cat <<TXT

The lab is up: $(docker ps -q --filter label=org.vector-search.lab-env=lab | wc -l) containers ("VMs") running the whole stack.
  Search API:  https://localhost:$https_port/   (self-signed certificate: curl -k)
  API keys:    $keys (one per role, then 100 student keys for load tests)
$(head -n 4 "$keys" | sed 's/^/    /')
  Try:
    curl -sk https://localhost:$https_port/api/search -H 'Content-Type: application/json' \\
      -H 'Authorization: Bearer $staff_key' \\
      -d '{"query": "how do I reset my university password?"}'
  Health:      curl -sk https://localhost:$https_port/health
  Production tests against the lab:
    .venv/bin/pytest tests/production --base-url https://localhost:$https_port --insecure --keys-file $keys
  Shell on a host: docker exec -it vslab-app1 bash      Remove it all: make clean
TXT
