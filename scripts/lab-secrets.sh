#!/usr/bin/env bash
# Give every vault_* variable that an inventory's group_vars refer to a random
# value, once, in a file kept out of git (the lab and the cluster scenario
# generate their own secrets; real inventories use Ansible Vault instead).
#   scripts/lab-secrets.sh GROUP_VARS_DIR OUTPUT_FILE
# Optional ones, which the group_vars only read with a default (such as
# vault_vector_search_api_key_pepper_previous, a list), are left unset, and a
# value this script once generated for one is dropped; *.example files (the
# vault templates, with commented-out entries) are not read.
set -euo pipefail
group_vars=${1:?usage: $0 GROUP_VARS_DIR OUTPUT_FILE}
secrets=${2:?usage: $0 GROUP_VARS_DIR OUTPUT_FILE}
umask 077
mkdir -p "$(dirname "$secrets")"
touch "$secrets"
text=$(grep -Rh vault_ "$group_vars" --exclude="$(basename "$secrets")" --exclude='*.example' || true)
all=$(grep -oE '\bvault_[a-z0-9_]+' <<<"$text" | sort -u || true)
# Required: read at least once without a default.
required=$(sed -E 's/\bvault_[a-z0-9_]+ *\| *default\(//g' <<<"$text" | grep -oE '\bvault_[a-z0-9_]+' | sort -u || true)
for name in $all; do
  if ! grep -qx "$name" <<<"$required"; then
    sed -i -E "/^$name: \"[0-9a-f]{48}\"\$/d" "$secrets"
    continue
  fi
  if ! grep -q "^$name:" "$secrets"; then
    printf '%s: "%s"\n' "$name" "$(openssl rand -hex 24)" >>"$secrets"
    echo "generated $name"
  fi
done
chmod 0600 "$secrets"
