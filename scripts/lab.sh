#!/usr/bin/env bash
# `make lab`: bring the whole stack up in local systemd containers.
#   1. generate the lab's secrets (once; kept out of git),
#   2. create the containers (kept across runs: re-running converges),
#   3. run site.yml against inventories/lab,
#   4. print how to reach the service.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH" ANSIBLE_FORCE_COLOR=0
inv=inventories/lab
secrets=$inv/group_vars/all/secrets.yml

scripts/lab-secrets.sh "$inv/group_vars" "$secrets" | sed "s/^/lab: /"

ansible-playbook -i "$inv" playbooks/lab/create.yml
ansible-playbook -i "$inv" site.yml "$@"

if [ -x scripts/lab-post.sh ]; then
  scripts/lab-post.sh
else
  https_port=$(sed -n 's/^lab_https_port: *//p' "$inv/group_vars/all/lab.yml")
  cat <<TXT

Lab is up: $(docker ps -q --filter label=org.vector-search.lab-env=lab | wc -l) containers ("VMs"), site.yml converged.
  Shell on a host:   docker exec -it vslab-app1 bash
  Ansible:           .venv/bin/ansible -i $inv all -m ping
  Search API (once the load balancer tier is deployed): https://localhost:$https_port/
  Remove it all:     make clean
TXT
fi
