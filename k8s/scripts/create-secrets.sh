#!/usr/bin/env bash
# Creates the Secrets of k8s/secrets.example.yaml in the namespace `ally` of the current
# kubectl context. Internal passwords are random; provider credentials come from your
# environment. A Secret that exists already is left alone.
#
# Rotate provider credentials with --set (the other keys of its Secret stay): deleting a
# Secret makes its generated keys anew, and NOTIFY_ADDRESS_KEY, BILLING_PSEUDONYM_KEY and the
# privacy and identity keys must never change (what was keyed with them is lost). Then restart
# the pods that use it:
#   BREVO_API_KEY=... k8s/scripts/create-secrets.sh --set ally-notify-secrets BREVO_API_KEY
#
#   export CHAT_KEK=$(openssl rand -base64 32) AZURE_OPENAI_SWEDENCENTRAL_KEY=... \
#          STRIPE_SECRET_KEY=... STRIPE_WEBHOOK_SECRET=... BREVO_API_KEY=... \
#          S3_ACCESS_KEY_ID=... S3_SECRET_ACCESS_KEY=...        # SSO_PROVIDERS optional
#   k8s/scripts/create-secrets.sh            # production: every provider variable is required
#   k8s/scripts/create-secrets.sh --local    # kind / k3d: no provider credentials (emulators)
set -euo pipefail
NS=ally
LOCAL=false
[[ "${1:-}" == "--local" ]] && LOCAL=true

if [[ "${1:-}" == "--set" ]]; then
  secret=${2:?usage: --set <secret> <KEY> [<KEY>...] (the values from your environment)}
  [[ -n "${3:-}" ]] || { echo "usage: --set <secret> <KEY> [<KEY>...] (the values from your environment)" >&2; exit 1; }
  shift 2
  # Every key in one patch: a pod starting in between never sees half a change (a swapped CHAT_KEK, say).
  data=""
  for key in "$@"; do
    if [[ -z "${!key:-}" ]]; then echo "missing environment variable $key" >&2; exit 1; fi
    # As base64 in `data`: a value with quotes or backslashes needs no escaping.
    data+="${data:+,}\"$key\":\"$(printf '%s' "${!key}" | base64 | tr -d '\n')\""
  done
  kubectl -n "$NS" patch secret "$secret" --type merge -p "{\"data\":{$data}}" >/dev/null
  echo "secret/$secret: $* set; restart the pods that use it"
  exit 0
fi

rand() { openssl rand -hex 24; }
# nats-server reads $VARIABLES of its config through its own parser: a value that starts with
# a digit is taken for a number and the server refuses to start. NATS passwords start with a letter.
natspw() { printf 'n%s' "$(openssl rand -hex 24)"; }
exists() { kubectl -n "$NS" get secret "$1" >/dev/null 2>&1; }
create() { # name, then key=value pairs (and an optional --type=...)
  local name=$1; shift
  if exists "$name"; then echo "secret/$name exists, kept"; return; fi
  local args=()
  for kv in "$@"; do
    if [[ $kv == --type=* ]]; then args+=("$kv"); else args+=("--from-literal=$kv"); fi
  done
  kubectl -n "$NS" create secret generic "$name" ${args[@]+"${args[@]}"} >/dev/null
  echo "secret/$name created"
}
need() { if [[ -z "${!1:-}" ]]; then echo "missing environment variable $1" >&2; exit 1; fi; }

kubectl get namespace "$NS" >/dev/null 2>&1 || kubectl apply -f "$(dirname "$0")/../base/namespace.yaml"

for svc in gateway identity chat billing privacy notify; do create "ally-$svc-nats" "password=$(natspw)"; done
create ally-nats-admin "password=$(natspw)"
for svc in identity chat billing privacy notify; do
  create "ally-$svc-db" --type=kubernetes.io/basic-auth "username=ally_$svc" "password=$(rand)"
  kubectl -n "$NS" label secret "ally-$svc-db" cnpg.io/reload=true --overwrite >/dev/null
done

# privacy: export-package key, audit-trail key and subject-hash salt, random in every environment (keep a
# copy: without PRIVACY_KEK, export packages already built cannot be read; without PRIVACY_AUDIT_KEY, the
# audit trail no longer verifies).
create ally-privacy-secrets "PRIVACY_KEK=$(openssl rand -base64 32)" "PRIVACY_AUDIT_KEY=$(openssl rand -base64 32)" "PRIVACY_SUBJECT_SALT=$(openssl rand -hex 32)"
# identity: the key that seals the signing keys, random (lost, it costs new signing keys, see k8s/README.md).
identity=("IDENTITY_KEK=$(openssl rand -base64 32)")
if [[ -n "${SSO_PROVIDERS:-}" ]]; then identity+=("SSO_PROVIDERS=$SSO_PROVIDERS"); fi
create ally-identity-secrets "${identity[@]}"

if $LOCAL; then
  create ally-chat-secrets "CHAT_KEK=$(openssl rand -base64 32)" "AZURE_OPENAI_SWEDENCENTRAL_KEY=emulator" "AZURE_OPENAI_DATAZONE_EU_KEY=emulator" "OPENAI_EU_API_KEY=emulator"
  # The Stripe emulator (billing's sidecar) signs its webhooks with this secret, which billing checks.
  create ally-billing-secrets "STRIPE_WEBHOOK_SECRET=whsec_$(rand)" "BILLING_PSEUDONYM_KEY=$(openssl rand -hex 32)"
  create ally-notify-secrets "BREVO_WEBHOOK_SECRET=$(rand)" "NOTIFY_ADDRESS_KEY=$(openssl rand -hex 32)"
else
  for v in CHAT_KEK STRIPE_SECRET_KEY STRIPE_WEBHOOK_SECRET BREVO_API_KEY S3_ACCESS_KEY_ID S3_SECRET_ACCESS_KEY; do need "$v"; done
  # Every apiKeyEnv of the model catalog that is set in your environment.
  chat=("CHAT_KEK=$CHAT_KEK")
  for v in $(grep -o '"apiKeyEnv": *"[A-Z0-9_]*"' "$(dirname "$0")/../base/chat-models.json" | sed 's/.*"\([A-Z0-9_]*\)"$/\1/'); do
    need "$v"; chat+=("$v=${!v}")
  done
  create ally-chat-secrets "${chat[@]}"
  create ally-billing-secrets "STRIPE_SECRET_KEY=$STRIPE_SECRET_KEY" "STRIPE_WEBHOOK_SECRET=$STRIPE_WEBHOOK_SECRET" "BILLING_PSEUDONYM_KEY=$(openssl rand -hex 32)"
  create ally-notify-secrets "BREVO_API_KEY=$BREVO_API_KEY" "BREVO_WEBHOOK_SECRET=${BREVO_WEBHOOK_SECRET:-$(rand)}" "NOTIFY_ADDRESS_KEY=$(openssl rand -hex 32)"
  create ally-pg-backup-s3 "ACCESS_KEY_ID=$S3_ACCESS_KEY_ID" "ACCESS_SECRET_KEY=$S3_SECRET_ACCESS_KEY"
fi
echo "done: kubectl -n $NS get secrets"
