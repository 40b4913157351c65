#!/usr/bin/env bash
# Grants the function's managed identity the Microsoft Graph application permissions the code
# calls (shared/graph/permissions.ts), without the Microsoft Graph Bicep extension: the step after
# `azd provision`, which never grants them (docs/deploy.md), and the way to add the User
# Administrator role that password resets need (Bicep cannot assign Entra directory roles).
#
# Run it as a Privileged Role Administrator (or Global Administrator), signed in with the Azure CLI
# (`az login --tenant <tenant id>`). It is idempotent: existing grants are left alone.
#
# Usage:
#   infra/scripts/grant-graph-permissions.sh [--principal-id ID]
#   infra/scripts/grant-graph-permissions.sh [--principal-id ID] --password-reset (--admin-unit ID | --tenant-wide)
#   infra/scripts/grant-graph-permissions.sh [--principal-id ID] --remove-password-reset
#   infra/scripts/grant-graph-permissions.sh [--principal-id ID] --signin-watch | --remove-signin-watch
#
#   --principal-id ID        object (principal) id of the managed identity; default: the azd
#                            environment's MANAGED_IDENTITY_PRINCIPAL_ID
#   --password-reset         also grant User-PasswordProfile.ReadWrite.All and assign the
#                            User Administrator Entra role, on one of:
#   --admin-unit ID          an administrative unit (recommended): resets work only for its members
#   --tenant-wide            the whole directory: the identity may then reset the password of (and
#                            manage) every non-admin user, create and delete users and groups
#   --remove-password-reset  remove the password permission and the User Administrator role
#                            (turning ENABLE_PASSWORD_RESET off in azd does not remove them)
#   --signin-watch           also grant AuditLog.Read.All, for the sign-in watch (SIGNIN_WATCH_ENABLED):
#                            it reads every user's sign-in and audit logs (read-only); the tenant
#                            needs Entra ID P1 or P2
#   --remove-signin-watch    remove AuditLog.Read.All (turning SIGNIN_WATCH_ENABLED off does not)
#   --graph-endpoint URL     Graph root; default: the signed-in Azure CLI cloud's
#   --dry-run                print what would change, change nothing
#
# A managed identity created minutes ago may not be visible in Entra ID yet: the script waits for it
# (GRANT_WAIT_ATTEMPTS tries, GRANT_WAIT_SECONDS apart; default 12 x 10 s) before granting anything.
set -euo pipefail

readonly GRAPH_APP_ID='00000003-0000-0000-c000-000000000000'
# Least-privileged permissions per operation: read the user, revoke sessions, disable the account.
readonly PERMISSIONS=('User.Read.All' 'User.RevokeSessions.All' 'User.EnableDisableAccount.All')
readonly PASSWORD_PERMISSION='User-PasswordProfile.ReadWrite.All'
# The sign-in watch only (SIGNIN_WATCH_ENABLED): read the sign-in log.
readonly SIGNIN_WATCH_PERMISSION='AuditLog.Read.All'
# Built-in Entra role "User Administrator" (role template id, the same in every tenant).
readonly USER_ADMINISTRATOR_ROLE='fe930be7-5e62-47db-91af-98c3a49a38b1'

principal_id=''
password_reset=false
remove_password_reset=false
signin_watch=false
remove_signin_watch=false
admin_unit=''
tenant_wide=false
graph=''
dry_run=false

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
  exit "${1:-0}"
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    --principal-id) principal_id="${2:?--principal-id needs a value}"; shift 2 ;;
    --password-reset) password_reset=true; shift ;;
    --remove-password-reset) remove_password_reset=true; shift ;;
    --signin-watch) signin_watch=true; shift ;;
    --remove-signin-watch) remove_signin_watch=true; shift ;;
    --admin-unit) admin_unit="${2:?--admin-unit needs a value}"; shift 2 ;;
    --tenant-wide) tenant_wide=true; shift ;;
    --graph-endpoint) graph="${2:?--graph-endpoint needs a value}"; shift 2 ;;
    --dry-run) dry_run=true; shift ;;
    -h | --help) usage 0 ;;
    *) echo "Unknown option: $1" >&2; usage 2 ;;
  esac
done

if [[ "$signin_watch" == true && "$remove_signin_watch" == true ]]; then
  echo '--signin-watch and --remove-signin-watch exclude each other.' >&2
  exit 2
fi
if [[ "$password_reset" == true && "$remove_password_reset" == true ]]; then
  echo '--password-reset and --remove-password-reset exclude each other.' >&2
  exit 2
fi
if [[ "$password_reset" == true && -z "$admin_unit" && "$tenant_wide" == false ]]; then
  cat >&2 << 'EOF'
--password-reset needs a scope for the User Administrator role:
  --admin-unit ID   (recommended) only members of that administrative unit can be reset
  --tenant-wide     the whole directory: the identity could then reset passwords of, update and
                    delete every user without an admin role, and manage groups, tenant-wide
EOF
  exit 2
fi
if [[ -n "$admin_unit" && "$tenant_wide" == true ]]; then
  echo '--admin-unit and --tenant-wide exclude each other.' >&2
  exit 2
fi
if [[ -z "$principal_id" ]] && command -v azd > /dev/null 2>&1; then
  principal_id="$(azd env get-value MANAGED_IDENTITY_PRINCIPAL_ID 2> /dev/null || true)"
fi
if [[ ! "$principal_id" =~ ^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$ ]]; then
  echo 'Give the managed identity with --principal-id <object id> (or run from an azd environment).' >&2
  exit 2
fi
if [[ -z "$graph" ]]; then
  graph="$(az cloud show --query endpoints.microsoftGraphResourceId -o tsv)"
fi
graph="${graph%/}"

# Runs a Graph call that changes something, or prints it with --dry-run.
change() {
  local method="$1" url="$2" body="${3:-}"
  if [[ "$dry_run" == true ]]; then
    echo "would ${method^^} ${url} ${body}"
    return
  fi
  if [[ -n "$body" ]]; then
    az rest --method "$method" --url "$url" --headers 'Content-Type=application/json' --body "$body" --output none
  else
    az rest --method "$method" --url "$url" --output none
  fi
}

# Waits (bounded) until the identity's service principal is visible in Entra ID: a new managed
# identity can take minutes to replicate, and granting to it before then fails with "does not exist".
wait_for_principal() {
  local attempts="${GRANT_WAIT_ATTEMPTS:-12}" delay="${GRANT_WAIT_SECONDS:-10}" try
  for ((try = 1; try <= attempts; try++)); do
    if az rest --method get --url "$graph/v1.0/servicePrincipals/$principal_id?\$select=id" --query id -o tsv > /dev/null 2>&1; then
      return
    fi
    if ((try < attempts)); then
      echo "The identity $principal_id is not visible in Entra ID yet; retrying in ${delay} s ($try/$attempts)." >&2
      sleep "$delay"
    fi
  done
  echo "The identity $principal_id was not found in Entra ID after $attempts tries. Check the id (MANAGED_IDENTITY_PRINCIPAL_ID); a new identity can take a few minutes to replicate: run this script again later." >&2
  exit 1
}
wait_for_principal

graph_sp_id="$(az rest --method get --url "$graph/v1.0/servicePrincipals(appId='$GRAPH_APP_ID')" --query id -o tsv)"
if [[ -z "$graph_sp_id" ]]; then
  echo "Microsoft Graph has no service principal in this tenant." >&2
  exit 1
fi

app_role_id() {
  local role
  role="$(az rest --method get --url "$graph/v1.0/servicePrincipals/$graph_sp_id?\$select=appRoles" \
    --query "appRoles[?value=='$1' && contains(allowedMemberTypes, 'Application')].id | [0]" -o tsv)"
  if [[ -z "$role" ]]; then
    echo "Microsoft Graph has no application permission $1." >&2
    exit 1
  fi
  echo "$role"
}

existing_assignment() {
  az rest --method get --url "$graph/v1.0/servicePrincipals/$principal_id/appRoleAssignments" \
    --query "value[?resourceId=='$graph_sp_id' && appRoleId=='$1'].id | [0]" -o tsv
}

grant() {
  local permission="$1" role existing
  role="$(app_role_id "$permission")"
  existing="$(existing_assignment "$role")"
  if [[ -n "$existing" ]]; then
    echo "already granted: $permission"
    return
  fi
  change post "$graph/v1.0/servicePrincipals/$principal_id/appRoleAssignments" \
    "{\"principalId\":\"$principal_id\",\"resourceId\":\"$graph_sp_id\",\"appRoleId\":\"$role\"}"
  echo "granted: $permission"
}

revoke() {
  local permission="$1" role existing
  role="$(app_role_id "$permission")"
  existing="$(existing_assignment "$role")"
  if [[ -z "$existing" ]]; then
    echo "not granted: $permission"
    return
  fi
  change delete "$graph/v1.0/servicePrincipals/$principal_id/appRoleAssignments/$existing"
  echo "revoked: $permission"
}

directory_scope='/'
if [[ -n "$admin_unit" ]]; then
  directory_scope="/administrativeUnits/$admin_unit"
fi

user_administrator_assignment() {
  # %20 = space, %27 = quote: the $filter of roleAssignments.
  az rest --method get \
    --url "$graph/v1.0/roleManagement/directory/roleAssignments?\$filter=principalId%20eq%20%27$principal_id%27%20and%20roleDefinitionId%20eq%20%27$USER_ADMINISTRATOR_ROLE%27" \
    --query "value[0].id" -o tsv
}

for permission in "${PERMISSIONS[@]}"; do
  grant "$permission"
done

if [[ "$password_reset" == true ]]; then
  grant "$PASSWORD_PERMISSION"
  if [[ -n "$(user_administrator_assignment)" ]]; then
    echo 'already assigned: User Administrator'
  else
    change post "$graph/v1.0/roleManagement/directory/roleAssignments" \
      "{\"@odata.type\":\"#microsoft.graph.unifiedRoleAssignment\",\"roleDefinitionId\":\"$USER_ADMINISTRATOR_ROLE\",\"principalId\":\"$principal_id\",\"directoryScopeId\":\"$directory_scope\"}"
    echo "assigned: User Administrator on $directory_scope"
  fi
fi

if [[ "$signin_watch" == true ]]; then
  grant "$SIGNIN_WATCH_PERMISSION"
fi
if [[ "$remove_signin_watch" == true ]]; then
  revoke "$SIGNIN_WATCH_PERMISSION"
fi

if [[ "$remove_password_reset" == true ]]; then
  revoke "$PASSWORD_PERMISSION"
  existing="$(user_administrator_assignment)"
  if [[ -n "$existing" ]]; then
    change delete "$graph/v1.0/roleManagement/directory/roleAssignments/$existing"
    echo 'removed: User Administrator'
  else
    echo 'not assigned: User Administrator'
  fi
fi
