#!/usr/bin/env bash
# Validates what gets deployed: template.yaml (sam validate --lint, cfn-lint) and the state machine
# definition (asl-validator, then statelint on the definition as CloudFormation will render it).
# Installs its tools on first use and is fast afterwards. Needs no AWS credentials or network
# once the tools are installed.
#
#   scripts/validate-infra.sh                 # install what is missing, then validate
#   scripts/validate-infra.sh --install-only  # only install the tools
#   scripts/validate-infra.sh --asl-json      # only: the ASL is JSON once rendered (pre-commit hook)
#   AURORA_SYNC_INFRA_TOOLS=<dir>             # where the Python tools live (default .local/infra-tools)
# Exit status: 0 valid, 1 invalid, 3 the tools could not be installed (tests skip on 3 only).
set -euo pipefail
cd "$(dirname "$0")/.."

SAM_CLI_PIN="aws-sam-cli==1.170.0"
CFN_LINT_PIN="cfn-lint==1.58.0"
TOOLS=${AURORA_SYNC_INFRA_TOOLS:-.local/infra-tools}
TEMPLATE=template.yaml
ASL=statemachine/sync.asl.json

# sam and cfn-lint only need a region to resolve pseudo parameters; nothing is called.
export AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-us-east-1}
export SAM_CLI_TELEMETRY=0

step() { printf '== %s\n' "$*"; }
fail() { printf 'validate-infra: %s\n' "$*" >&2; exit 1; }
cannot_install() { printf 'validate-infra: cannot install tools: %s\n' "$*" >&2; exit 3; }

base_python() {
  if [ -x .venv/bin/python ]; then echo .venv/bin/python; return; fi
  command -v python3 >/dev/null 2>&1 && { command -v python3; return; }
  cannot_install "no Python found; run 'make dev' (or install python3.11+) first"
}

# aws-sam-cli pins aws-sam-translator, which pins pydantic below the handlers' pydantic: the
# validators get their own virtualenv instead of the project's .venv.
install_python_tools() {
  local want="$SAM_CLI_PIN $CFN_LINT_PIN"
  if [ -f "$TOOLS/.installed" ] && [ "$(cat "$TOOLS/.installed")" = "$want" ]; then
    return
  fi
  step "installing $want into $TOOLS (first run, ~30 s)"
  if [ -e "$TOOLS" ]; then
    # Only ever delete a virtualenv this script made, whatever AURORA_SYNC_INFRA_TOOLS says.
    [ -f "$TOOLS/pyvenv.cfg" ] || cannot_install "$TOOLS exists and is not a virtualenv; remove it or pick another AURORA_SYNC_INFRA_TOOLS"
    rm -rf "$TOOLS"
  fi
  mkdir -p "$(dirname "$TOOLS")"
  "$(base_python)" -m venv "$TOOLS" || cannot_install "python -m venv $TOOLS failed"
  "$TOOLS/bin/python" -m pip install -q --disable-pip-version-check "$SAM_CLI_PIN" "$CFN_LINT_PIN" 2>&1 \
    | grep -v '^WARNING: Location' || true
  "$TOOLS/bin/sam" --version >/dev/null 2>&1 && "$TOOLS/bin/cfn-lint" --version >/dev/null 2>&1 \
    || cannot_install "pip could not install $want into $TOOLS; see pip's output above"
  # Written last, so an interrupted install is redone rather than trusted.
  printf '%s' "$want" >"$TOOLS/.installed"
}

install_node_tools() {
  command -v npm >/dev/null 2>&1 \
    || cannot_install "npm not found; install Node.js 18+ and npm (Debian: apt-get install nodejs npm)"
  local lock_sum
  lock_sum=$(sha256sum package-lock.json | cut -d' ' -f1)
  if [ -f node_modules/.aurora-sync-lock ] && [ "$(cat node_modules/.aurora-sync-lock)" = "$lock_sum" ]; then
    return
  fi
  step "npm ci (asl-validator, statelint) from package-lock.json"
  # No install scripts: the validators need none (core-js-pure's postinstall only prints a banner).
  npm ci --ignore-scripts --no-audit --no-fund --loglevel=error \
    || cannot_install "npm ci failed; see npm's output above"
  printf '%s' "$lock_sum" >node_modules/.aurora-sync-lock
}

# Two renderings of the ASL from template.yaml's DefinitionSubstitutions, written to $1:
#   partial.json  numbers and the partition substituted, function ARNs left as ${...} (what
#                 asl-validator accepts: its schema wants a Resource ARN, a placeholder in a
#                 Parameters value is fine; the file itself is not JSON because numeric
#                 placeholders are unquoted)
#   full.json     every placeholder replaced with a plausible value, as CloudFormation would.
# Fails when the ASL uses a placeholder the template does not define, or the other way round.
render_asl() {
  "${RENDER_PYTHON:-$TOOLS/bin/python}" - "$TEMPLATE" "$ASL" "$1" <<'PY'
import json
import re
import sys

import yaml

template_path, asl_path, out_dir = sys.argv[1:4]


class CfnLoader(yaml.SafeLoader):
    """SafeLoader that keeps CloudFormation short-form tags (!Ref, !GetAtt, !Sub ...) as data."""


def _tagged(loader, tag_suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    name = "Ref" if tag_suffix == "Ref" else f"Fn::{tag_suffix}"
    if name == "Fn::GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {name: value}


CfnLoader.add_multi_constructor("!", _tagged)

with open(template_path) as fh:
    template = yaml.load(fh, Loader=CfnLoader)
machines = {
    name: res for name, res in template["Resources"].items()
    if res.get("Type") == "AWS::Serverless::StateMachine" and res["Properties"].get("DefinitionUri") == asl_path
}
if len(machines) != 1:
    sys.exit(f"{template_path}: expected one AWS::Serverless::StateMachine with DefinitionUri {asl_path}, "
             f"found {sorted(machines) or 'none'}")
(machine_name, machine), = machines.items()
substitutions = machine["Properties"].get("DefinitionSubstitutions", {})
parameters = template.get("Parameters", {})
resources = template["Resources"]


def plausible(key, value):
    """(text, is_number) for one substitution, as CloudFormation would render it."""
    if isinstance(value, (int, float)):
        return str(value), True
    if isinstance(value, dict) and "Ref" in value and value["Ref"] in parameters:
        param = parameters[value["Ref"]]
        if "Default" not in param:
            sys.exit(f"{template_path}: parameter {value['Ref']} (substitution {key}) needs a Default to render the ASL")
        return str(param["Default"]), param.get("Type") == "Number"
    if isinstance(value, dict) and value.get("Ref") == "AWS::Partition":
        return "aws", False
    if isinstance(value, dict) and resources.get(value.get("Ref"), {}).get("Type") == "AWS::S3::Bucket":
        return f"{value['Ref'].lower()}-123456789012", False
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        logical_id, attribute = value["Fn::GetAtt"]
        kind = resources.get(logical_id, {}).get("Type")
        if kind == "AWS::Serverless::Function" and attribute == "Arn":
            return f"arn:aws:lambda:us-east-1:123456789012:function:{logical_id}", False
        sys.exit(f"{template_path}: substitution {key} = GetAtt {logical_id}.{attribute} ({kind}) has no renderer")
    if isinstance(value, str):
        return value, False
    sys.exit(f"{template_path}: substitution {key} = {value!r} has no renderer; extend render_asl in {sys.argv[0]}")


rendered = {key: plausible(key, value) for key, value in substitutions.items()}
pseudo_keys = {key for key, value in substitutions.items() if value == {"Ref": "AWS::Partition"}}
with open(asl_path) as fh:
    text = fh.read()
used = set(re.findall(r"\$\{([A-Za-z0-9_]+)\}", text))
undefined = sorted(used - set(rendered))
unused = sorted(set(rendered) - used)
if undefined:
    names = ", ".join("${" + name + "}" for name in undefined)
    sys.exit(f"{asl_path} uses {names} but {machine_name}'s DefinitionSubstitutions in {template_path} "
             "does not define them")
if unused:
    sys.exit(f"{template_path}: {machine_name} defines DefinitionSubstitutions {', '.join(unused)} "
             f"that {asl_path} never uses")


def substitute(only_numbers):
    def repl(match):
        text_value, is_number = rendered[match.group(1)]
        keep = only_numbers and not is_number and match.group(1) not in pseudo_keys
        return match.group(0) if keep else text_value
    return re.sub(r"\$\{([A-Za-z0-9_]+)\}", repl, text)


for name, only_numbers in (("partial.json", True), ("full.json", False)):
    body = substitute(only_numbers)
    try:
        json.loads(body)
    except json.JSONDecodeError as exc:
        sys.exit(f"{asl_path} is not JSON after substituting DefinitionSubstitutions ({name}): {exc}")
    with open(f"{out_dir}/{name}", "w") as fh:
        fh.write(body)
print(f"rendered {asl_path} with {', '.join(f'{k}={v[0]}' for k, v in sorted(rendered.items()))}")
PY
}

# The ASL is not JSON as written (numeric placeholders are unquoted): the JSON check renders it as
# CloudFormation will. Any Python with PyYAML does, so this installs nothing (fast enough to run
# on every commit that touches the ASL or the template).
if [ "${1:-}" = "--asl-json" ]; then
  RENDER_PYTHON=$(base_python)
  "$RENDER_PYTHON" -c 'import yaml' 2>/dev/null \
    || fail "$RENDER_PYTHON has no PyYAML; run 'make dev-python' first"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  RENDER_PYTHON=$RENDER_PYTHON render_asl "$work"
  exit 0
fi

# One installer at a time (make test and pytest may both call this script).
mkdir -p .local
exec 9>.local/validate-infra.lock
command -v flock >/dev/null 2>&1 && flock 9
install_python_tools
if [ "${1:-}" = "--install-only" ]; then
  install_node_tools
  exit 0
fi

step "sam validate --lint ($SAM_CLI_PIN)"
"$TOOLS/bin/sam" validate --lint --template "$TEMPLATE"

step "cfn-lint $TEMPLATE ($CFN_LINT_PIN)"
"$TOOLS/bin/cfn-lint" "$TEMPLATE"

if [ ! -f "$ASL" ]; then
  step "SKIPPED asl-validator and statelint: $ASL does not exist yet"
  exit 0
fi

install_node_tools
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
step "rendering $ASL with $TEMPLATE's DefinitionSubstitutions"
render_asl "$work"

step "asl-validator (function ARNs kept as placeholders, numbers and partition substituted)"
npx --no-install asl-validator --json-path "$work/partial.json"

# statelint's grammar (@wmfs/statelint 1.30.0, StateMachine.j2119) predates the Distributed Map:
# it refuses ItemReader, ItemBatcher, ResultWriter and the tolerated-failure fields. asl-validator
# (above) checks those; statelint checks everything else, on a copy without them.
step "statelint (fully substituted; Distributed Map fields left to asl-validator)"
"$(base_python)" - "$work/full.json" "$work/statelint.json" <<'PY'
import json
import sys

DISTRIBUTED_ONLY = ("ItemReader", "ItemBatcher", "ResultWriter", "ToleratedFailurePercentage",
                    "ToleratedFailureCount", "Label")


def strip(states):
    for state in states.values():
        if state.get("Type") == "Map":
            if state.get("ItemProcessor", {}).get("ProcessorConfig", {}).get("Mode") == "DISTRIBUTED":
                for field in DISTRIBUTED_ONLY:
                    state.pop(field, None)
            strip(state.get("ItemProcessor", state.get("Iterator", {})).get("States", {}))


with open(sys.argv[1]) as fh:
    machine = json.load(fh)
strip(machine["States"])
with open(sys.argv[2], "w") as fh:
    json.dump(machine, fh)
PY
npx --no-install statelint "$work/statelint.json"

step "infrastructure is valid"
