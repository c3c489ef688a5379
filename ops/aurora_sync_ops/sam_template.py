"""Reads template.yaml the way the local engine needs it: functions and the state machine, with
CloudFormation intrinsics resolved against parameter values and the local stack's resources.

Only what this template uses is resolved (Ref, Fn::Sub, Fn::GetAtt, Fn::If, Fn::Equals, Fn::Not,
Fn::And, Fn::Or, Fn::Join, Fn::Select, Fn::Split, Condition); anything else is an error naming the
intrinsic, so a template change the local engine cannot follow fails loudly instead of deploying
something different.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


class CfnLoader(yaml.SafeLoader):
    """SafeLoader that turns CloudFormation short-form tags (``!Ref x``) into their long form."""


def _tagged(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else ("Condition" if suffix == "Condition" else f"Fn::{suffix}")
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        assert isinstance(node, yaml.MappingNode)
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


CfnLoader.add_multi_constructor("!", _tagged)


def load(path: Path = TEMPLATE) -> dict[str, Any]:
    with path.open() as fh:
        document: dict[str, Any] = yaml.load(fh, Loader=CfnLoader)  # noqa: S506 - SafeLoader subclass
    return document


class TemplateError(ValueError):
    """The template uses something the local engine cannot resolve."""


@dataclass
class Resolver:
    """Evaluates intrinsics with parameter values, pseudo parameters and known resource values."""

    template: dict[str, Any]
    parameters: Mapping[str, Any]
    pseudo: Mapping[str, str]
    refs: Mapping[str, str] = field(default_factory=dict)  # resource logical id -> Ref value
    attributes: Mapping[str, str] = field(default_factory=dict)  # "Logical.Attr" -> value

    def parameter(self, name: str) -> Any:
        if name in self.parameters:
            return self.parameters[name]
        spec = self.template.get("Parameters", {}).get(name)
        if spec is None:
            raise TemplateError(f"unknown parameter {name!r}")
        if "Default" not in spec:
            raise TemplateError(f"parameter {name!r} has no default; the local engine must supply it")
        return spec["Default"]

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.template["Conditions"][name]))

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) != 1:
            return {k: self.resolve(v) for k, v in value.items()}
        ((key, argument),) = value.items()
        if key == "Ref":
            return self._ref(str(argument))
        if key == "Condition":
            return self.condition(str(argument))
        if key == "Fn::GetAtt":
            name = ".".join(argument)
            if name not in self.attributes:
                raise TemplateError(f"the local engine has no value for !GetAtt {name}")
            return self.attributes[name]
        if key == "Fn::Sub":
            text, extra = (argument, {}) if isinstance(argument, str) else (argument[0], argument[1])
            return re.sub(
                r"\$\{([^}!]+)\}",
                lambda m: str(
                    self.resolve(extra[m.group(1)]) if m.group(1) in extra else self._ref(m.group(1))
                ),
                text,
            )
        if key == "Fn::If":
            condition, when_true, when_false = argument
            return self.resolve(when_true if self.condition(condition) else when_false)
        if key == "Fn::Equals":
            left, right = (self.resolve(a) for a in argument)
            return str(left) == str(right)
        if key == "Fn::Not":
            return not self.resolve(argument[0])
        if key == "Fn::And":
            return all(self.resolve(a) for a in argument)
        if key == "Fn::Or":
            return any(self.resolve(a) for a in argument)
        if key == "Fn::Join":
            delimiter, values = argument
            return str(delimiter).join(str(v) for v in self.resolve(values))
        if key == "Fn::Select":
            index, values = argument
            return self.resolve(values)[int(self.resolve(index))]
        if key == "Fn::Split":
            delimiter, text = argument
            return str(self.resolve(text)).split(str(delimiter))
        if key.startswith("Fn::"):
            raise TemplateError(f"the local engine does not evaluate {key}")
        return {key: self.resolve(argument)}

    def _ref(self, name: str) -> Any:
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.refs:
            return self.refs[name]
        if name in self.template.get("Parameters", {}) or name in self.parameters:
            return self.parameter(name)
        raise TemplateError(f"the local engine has no value for !Ref {name}")


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    name: str
    handler: str
    runtime: str
    timeout: int
    memory: int
    environment: dict[str, str]


def functions(template: dict[str, Any], resolver: Resolver) -> list[FunctionSpec]:
    """Every AWS::Serverless::Function with Globals applied and intrinsics resolved."""
    defaults = template.get("Globals", {}).get("Function", {})
    specs = []
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        props = resource["Properties"]
        env = {
            **defaults.get("Environment", {}).get("Variables", {}),
            **props.get("Environment", {}).get("Variables", {}),
        }
        specs.append(
            FunctionSpec(
                logical_id=logical_id,
                name=str(resolver.resolve(props.get("FunctionName", logical_id))),
                handler=props.get("Handler", defaults.get("Handler")),
                runtime=props.get("Runtime", defaults.get("Runtime")),
                timeout=int(props.get("Timeout", defaults.get("Timeout", 3))),
                memory=int(props.get("MemorySize", defaults.get("MemorySize", 128))),
                environment={k: str(resolver.resolve(v)) for k, v in env.items()},
            )
        )
    return specs


@dataclass(frozen=True)
class StateMachineSpec:
    logical_id: str
    name: str
    definition_path: Path
    substitutions: dict[str, Any]


def state_machine(template: dict[str, Any], resolver: Resolver, root: Path) -> StateMachineSpec:
    machines = [
        (lid, r) for lid, r in template["Resources"].items() if r["Type"] == "AWS::Serverless::StateMachine"
    ]
    if len(machines) != 1:
        raise TemplateError(f"expected one AWS::Serverless::StateMachine, found {len(machines)}")
    logical_id, resource = machines[0]
    props = resource["Properties"]
    return StateMachineSpec(
        logical_id=logical_id,
        name=str(resolver.resolve(props["Name"])),
        definition_path=root / props["DefinitionUri"],
        substitutions={k: resolver.resolve(v) for k, v in props.get("DefinitionSubstitutions", {}).items()},
    )


def render_definition(spec: StateMachineSpec) -> str:
    """The definition as CloudFormation renders it: ``${Name}`` replaced by the substitution text."""
    text = spec.definition_path.read_text()
    missing = sorted(set(re.findall(r"\$\{([A-Za-z0-9_]+)\}", text)) - set(spec.substitutions))
    if missing:
        raise TemplateError(f"{spec.definition_path.name} uses undefined substitutions: {', '.join(missing)}")
    for key, value in spec.substitutions.items():
        text = text.replace("${" + key + "}", str(value))
    return text
