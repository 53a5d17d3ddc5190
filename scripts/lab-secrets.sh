#!/usr/bin/env bash
# Give every vault_* variable that an inventory's group_vars refer to a random
# value, once, in a file kept out of git (the lab and the cluster scenario
# generate their own secrets; real inventories use Ansible Vault instead).
#   scripts/lab-secrets.sh GROUP_VARS_DIR OUTPUT_FILE
set -euo pipefail
group_vars=${1:?usage: $0 GROUP_VARS_DIR OUTPUT_FILE}
secrets=${2:?usage: $0 GROUP_VARS_DIR OUTPUT_FILE}
umask 077
mkdir -p "$(dirname "$secrets")"
touch "$secrets"
for name in $(grep -RhoE '\bvault_[a-z0-9_]+' "$group_vars" --exclude="$(basename "$secrets")" | sort -u); do
  if ! grep -q "^$name:" "$secrets"; then
    printf '%s: "%s"\n' "$name" "$(openssl rand -hex 24)" >>"$secrets"
    echo "generated $name"
  fi
done
chmod 0600 "$secrets"
