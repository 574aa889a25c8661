"""A small stand-in for the GitHub Actions and GitLab runners, for the CI templates' tests.

It does with ``action.yml``, the reusable workflow and the GitLab component what a
runner does with the parts of them that run shell, and nothing more:

* GitHub: evaluates ``${{ }}`` expressions (the operators and functions the templates
  use), applies the inputs' defaults, gives each ``run:`` step the environment the
  runner gives it (its ``env:``, ``GITHUB_OUTPUT``, ``GITHUB_ACTION_PATH``, ...) and runs
  it as ``bash --noprofile --norc -e -o pipefail FILE``, as GitHub runs ``shell: bash``;
  ``if:`` conditions are evaluated with the job's status. ``uses:`` steps of other
  repositories go to handlers the test gives (the sandbox stands in for kind and the
  tool-installation actions); a local action (``./path``) is run step by step.
* GitLab: checks a component's inputs against its ``spec:inputs`` and interpolates
  ``$[[ inputs.NAME ]]`` (a value that is only the interpolation keeps its type, text
  around it makes it a string), merges a pipeline's own keys over the included jobs,
  resolves ``extends:``, expands ``$VAR`` references in the job's variables and runs the
  script as one ``sh`` session, as a runner does on an image whose shell is ``sh``.

Anything the templates would need beyond that fails loudly here rather than being
guessed, so a template change that this stand-in does not cover shows up in the tests.
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
STEP_TIMEOUT = 900.0

# --------------------------------------------------------------------------- YAML values


def as_mapping(value: object, what: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise TypeError(f"{what} is not a mapping: {value!r}")
    return {str(k): v for k, v in value.items()}


def as_list(value: object, what: str) -> list[object]:
    if not isinstance(value, list):
        raise TypeError(f"{what} is not a list: {value!r}")
    return list(value)


def load_yaml(path: Path) -> dict[str, object]:
    return as_mapping(yaml.safe_load(path.read_text(encoding="utf-8")), str(path))


def workflow_triggers(workflow: Mapping[str, object]) -> dict[str, object]:
    # YAML 1.1 reads the key "on" as the boolean true (a key "True" once made a string).
    return as_mapping(workflow.get("on", workflow.get("True")), "on:")


# --------------------------------------------------------------------------- expressions

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>\d+(?:\.\d+)?)"
    r"|(?P<op>==|!=|&&|\|\||<=|>=|[!()<>,])|(?P<name>[A-Za-z_][\w.\-]*))"
)
_STATUS_FUNCTIONS = ("always", "success", "failure", "cancelled")


class ExpressionError(Exception):
    pass


def to_text(value: object) -> str:
    """A value as GitHub writes it into a string."""
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def truthy(value: object) -> bool:
    if isinstance(value, float) and math.isnan(value):
        return False
    return value not in (None, False, 0, "")


def _number(value: object) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    if text == "":
        return 0.0
    try:
        return float(text)
    except ValueError:
        return math.nan


def _equal(left: object, right: object) -> bool:
    if isinstance(left, str) and isinstance(right, str):
        return left.casefold() == right.casefold()
    if type(left) is type(right):
        return left == right
    return _number(left) == _number(right)


@dataclass
class Context:
    """The contexts of an expression (``inputs``, ``steps``, ``github``, ...) and the
    job's status for the status functions."""

    data: dict[str, object]
    failed: bool = False

    def lookup(self, name: str) -> object:
        parts = name.split(".")
        if parts[0] not in self.data:
            raise ExpressionError(f"unknown context {parts[0]!r} in {name!r}")
        value: object = self.data[parts[0]]
        for part in parts[1:]:
            value = value.get(part) if isinstance(value, dict) else None
        return value


class _Parser:
    def __init__(self, text: str, context: Context) -> None:
        self.text = text
        self.context = context
        self.tokens = self._tokenize(text)
        self.pos = 0

    @staticmethod
    def _tokenize(text: str) -> list[tuple[str, str]]:
        tokens, pos = [], 0
        while pos < len(text):
            if text[pos:].strip() == "":
                break
            match = _TOKEN.match(text, pos)
            if match is None or match.lastgroup is None:
                raise ExpressionError(f"cannot read {text[pos:]!r} in {text!r}")
            tokens.append((match.lastgroup, match.group(match.lastgroup)))
            pos = match.end()
        return tokens

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is None or (value is not None and token[1] != value):
            raise ExpressionError(f"expected {value or 'a token'} in {self.text!r}")
        self.pos += 1
        return token

    def parse(self) -> object:
        value = self.disjunction()
        if self.peek() is not None:
            raise ExpressionError(f"unexpected {self.peek()} in {self.text!r}")
        return value

    def disjunction(self) -> object:
        value = self.conjunction()
        while self.peek() == ("op", "||"):
            self.take()
            right = self.conjunction()
            value = value if truthy(value) else right
        return value

    def conjunction(self) -> object:
        value = self.comparison()
        while self.peek() == ("op", "&&"):
            self.take()
            right = self.comparison()
            value = right if truthy(value) else value
        return value

    def comparison(self) -> object:
        value = self.unary()
        token = self.peek()
        if token is not None and token[1] in ("==", "!="):
            self.take()
            right = self.unary()
            equal = _equal(value, right)
            return equal if token[1] == "==" else not equal
        return value

    def unary(self) -> object:
        if self.peek() == ("op", "!"):
            self.take()
            return not truthy(self.unary())
        return self.primary()

    def primary(self) -> object:
        kind, text = self.take()
        if kind == "str":
            return text[1:-1].replace("''", "'")
        if kind == "num":
            return float(text)
        if (kind, text) == ("op", "("):
            value = self.disjunction()
            self.take(")")
            return value
        if kind != "name":
            raise ExpressionError(f"unexpected {text!r} in {self.text!r}")
        if text in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[text]
        if self.peek() == ("op", "("):
            return self.call(text)
        return self.context.lookup(text)

    def call(self, name: str) -> object:
        self.take("(")
        args: list[object] = []
        while self.peek() != ("op", ")"):
            args.append(self.disjunction())
            if self.peek() == ("op", ","):
                self.take()
        self.take(")")
        if name == "always":
            return True
        if name == "success":
            return not self.context.failed
        if name == "failure":
            return self.context.failed
        if name == "cancelled":
            return False
        if name == "startsWith":
            return to_text(args[0]).casefold().startswith(to_text(args[1]).casefold())
        if name == "fromJSON":
            parsed: object = json.loads(to_text(args[0]))
            return parsed
        raise ExpressionError(f"function {name}() is not supported here ({self.text!r})")


def evaluate(expression: str, context: Context) -> object:
    return _Parser(expression, context).parse()


_TEMPLATE = re.compile(r"\$\{\{((?:(?!\}\}).)*)\}\}", re.DOTALL)


def render(value: object, context: Context) -> object:
    """``${{ }}`` in a YAML value: a value that is one expression keeps its type."""
    if not isinstance(value, str):
        return value
    whole = _TEMPLATE.fullmatch(value.strip())
    if whole is not None:
        return evaluate(whole.group(1), context)
    return _TEMPLATE.sub(lambda m: to_text(evaluate(m.group(1), context)), value)


def render_text(value: object, context: Context) -> str:
    return to_text(render(value, context))


def condition(step: Mapping[str, object], context: Context) -> bool:
    """A step's ``if:`` as GitHub reads it: without a status function, ``success() &&``."""
    raw = step.get("if")
    if raw is None:
        return not context.failed
    if isinstance(raw, bool):
        return raw and not context.failed
    text = str(raw).strip()
    whole = _TEMPLATE.fullmatch(text)
    if whole is not None:
        text = whole.group(1).strip()
    if not any(re.search(rf"\b{f}\s*\(", text) for f in _STATUS_FUNCTIONS):
        text = f"success() && ({text})"
    return truthy(evaluate(text, context))


# --------------------------------------------------------------------------- GitHub


def read_command_file(path: Path) -> dict[str, str]:
    """``GITHUB_OUTPUT`` / ``GITHUB_ENV``: ``name=value`` and ``name<<DELIMITER`` blocks."""
    values: dict[str, str] = {}
    if not path.exists():
        return values
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line:
            continue
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            body: list[str] = []
            while i < len(lines) and lines[i] != delimiter:
                body.append(lines[i])
                i += 1
            i += 1
            values[name] = "\n".join(body)
        else:
            name, _, value = line.partition("=")
            values[name] = value
    return values


@dataclass
class StepResult:
    name: str
    outcome: str  # success, failure or skipped
    outputs: dict[str, str] = field(default_factory=dict)
    log: str = ""
    returncode: int | None = None


@dataclass
class PreparedStep:
    """A ``run:`` step ready to start: argv, environment and directory."""

    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    output_file: Path
    env_file: Path
    path_file: Path
    summary_file: Path


UsesHandler = Callable[[str, dict[str, str]], dict[str, str]]


@dataclass
class GitHubJob:
    """One job's state: its environment, the steps run, the calls of ``uses:`` steps."""

    workspace: Path
    temp: Path
    base_env: dict[str, str]
    uses: Mapping[str, UsesHandler]
    job_id: str = "upgrade"
    extra_contexts: dict[str, object] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    failed: bool = False
    steps_run: list[StepResult] = field(default_factory=list)
    uses_calls: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    _count: int = 0

    @property
    def summary(self) -> Path:
        return self.temp / "_runner_file_commands" / "step_summary_job"

    def _contexts(self, **scopes: object) -> dict[str, object]:
        data: dict[str, object] = {
            "github": {"workspace": str(self.workspace), "job": self.job_id},
            "runner": {"temp": str(self.temp), "os": "Linux"},
            "env": dict(self.env),
            "secrets": {},
            "vars": {},
        }
        data.update(self.extra_contexts)
        data.update(scopes)
        return data

    def runner_env(self) -> dict[str, str]:
        env = dict(self.base_env)
        env.update(
            {
                "CI": "true",
                "GITHUB_ACTIONS": "true",
                "GITHUB_WORKSPACE": str(self.workspace),
                "GITHUB_JOB": self.job_id,
                "RUNNER_TEMP": str(self.temp),
                "RUNNER_OS": "Linux",
            }
        )
        env.update(self.env)
        return env

    # ------------------------------------------------------------------ run steps

    def prepare(
        self,
        step: Mapping[str, object],
        context: Context,
        *,
        shell_name: str = "bash",
        workdir: str | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> PreparedStep:
        self._count += 1
        name = render_text(step.get("name", f"step {self._count}"), context)
        commands = self.temp / "_runner_file_commands"
        commands.mkdir(parents=True, exist_ok=True)
        files = {
            kind: commands / f"{kind}_{self._count}"
            for kind in ("output", "env", "path", "step_summary")
        }
        for path in files.values():
            path.write_text("", encoding="utf-8")
        script = render_text(step["run"], context)
        script_file = self.temp / f"step_{self._count}.sh"
        script_file.write_text(script + "\n", encoding="utf-8")
        env = self.runner_env()
        env.update(extra_env or {})
        for key, raw in as_mapping(step.get("env", {}), f"{name}: env").items():
            env[key] = render_text(raw, context)
        env.update(
            {
                "GITHUB_OUTPUT": str(files["output"]),
                "GITHUB_ENV": str(files["env"]),
                "GITHUB_PATH": str(files["path"]),
                "GITHUB_STEP_SUMMARY": str(files["step_summary"]),
            }
        )
        if shell_name != "bash":
            raise ExpressionError(f"{name}: shell {shell_name!r} is not supported here")
        cwd = self.workspace / workdir if workdir else self.workspace
        return PreparedStep(
            name=name,
            # What GitHub runs for `shell: bash`.
            argv=["bash", "--noprofile", "--norc", "-e", "-o", "pipefail", str(script_file)],
            env=env,
            cwd=cwd,
            output_file=files["output"],
            env_file=files["env"],
            path_file=files["path"],
            summary_file=files["step_summary"],
        )

    def finish(self, prepared: PreparedStep, returncode: int, log: str) -> StepResult:
        outputs = read_command_file(prepared.output_file)
        self.env.update(read_command_file(prepared.env_file))
        added = [p for p in prepared.path_file.read_text(encoding="utf-8").splitlines() if p]
        if added:
            path = self.env.get("PATH", self.base_env.get("PATH", ""))
            self.env["PATH"] = os.pathsep.join([*reversed(added), path])
        self.summary.parent.mkdir(parents=True, exist_ok=True)
        with self.summary.open("a", encoding="utf-8") as summary:
            summary.write(prepared.summary_file.read_text(encoding="utf-8"))
        result = StepResult(
            prepared.name,
            "success" if returncode == 0 else "failure",
            outputs,
            log,
            returncode,
        )
        if returncode != 0:
            self.failed = True
        self.steps_run.append(result)
        return result

    def run_step(
        self,
        step: Mapping[str, object],
        context: Context,
        *,
        shell_name: str = "bash",
        workdir: str | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> StepResult:
        prepared = self.prepare(
            step, context, shell_name=shell_name, workdir=workdir, extra_env=extra_env
        )
        proc = subprocess.run(
            prepared.argv,
            env=prepared.env,
            cwd=prepared.cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=STEP_TIMEOUT,
            check=False,
        )
        return self.finish(prepared, proc.returncode, proc.stdout)

    def _steps(
        self,
        steps: Sequence[object],
        scopes: dict[str, object],
        *,
        default_shell: str,
        extra_env: Mapping[str, str],
    ) -> dict[str, dict[str, object]]:
        step_results: dict[str, dict[str, object]] = {}
        for raw in steps:
            step = as_mapping(raw, "step")
            context = Context(self._contexts(**scopes, steps=step_results), self.failed)
            name = str(step.get("name", step.get("uses", step.get("id", "step"))))
            if not condition(step, context):
                result = StepResult(render_text(name, context), "skipped")
                self.steps_run.append(result)
            elif "run" in step:
                result = self.run_step(
                    step,
                    context,
                    shell_name=str(step.get("shell", default_shell)),
                    workdir=str(step["working-directory"]) if "working-directory" in step else None,
                    extra_env=extra_env,
                )
            else:
                result = self._uses(step, context)
            if "id" in step:
                step_results[str(step["id"])] = {
                    "outputs": dict(result.outputs),
                    "outcome": result.outcome,
                    "conclusion": result.outcome,
                }
        return step_results

    def _uses(self, step: Mapping[str, object], context: Context) -> StepResult:
        ref = str(step["uses"])
        inputs = {
            k: render_text(v, context)
            for k, v in as_mapping(step.get("with", {}), f"{ref}: with").items()
        }
        name = render_text(step.get("name", ref), context)
        if ref.startswith("./"):
            outputs = self.run_action(self.workspace / ref, inputs)
            return StepResult(name, "failure" if self.failed else "success", outputs)
        action = ref.split("@", 1)[0]
        self.uses_calls.append((ref, inputs))
        handler = self.uses.get(action)
        if handler is None:
            raise ExpressionError(f"no handler for the step using {ref}")
        result = StepResult(name, "success", handler(ref, inputs))
        self.steps_run.append(result)
        return result

    def run_action(self, action_dir: Path, with_inputs: Mapping[str, str]) -> dict[str, str]:
        """A composite action: its steps, then its outputs."""
        action = load_yaml(action_dir / "action.yml")
        declared = as_mapping(action.get("inputs", {}), "inputs")
        unknown = set(with_inputs) - set(declared)
        if unknown:
            raise ExpressionError(f"inputs not declared by {action_dir}: {sorted(unknown)}")
        inputs: dict[str, object] = {}
        for key, spec in declared.items():
            spec_map = as_mapping(spec, f"input {key}")
            if key in with_inputs:
                inputs[key] = with_inputs[key]
            elif spec_map.get("required") is True and "default" not in spec_map:
                raise ExpressionError(f"input {key} of {action_dir} is required")
            else:
                inputs[key] = to_text(spec_map.get("default", ""))
        runs = as_mapping(action["runs"], "runs")
        if runs.get("using") != "composite":
            raise ExpressionError(f"{action_dir} is not a composite action")
        github = {"workspace": str(self.workspace), "action_path": str(action_dir)}
        scopes: dict[str, object] = {"inputs": inputs, "github": github}
        steps = self._steps(
            as_list(runs["steps"], "steps"),
            scopes,
            default_shell="bash",
            extra_env={"GITHUB_ACTION_PATH": str(action_dir)},
        )
        context = Context(self._contexts(**scopes, steps=steps), self.failed)
        return {
            key: render_text(as_mapping(spec, key).get("value", ""), context)
            for key, spec in as_mapping(action.get("outputs", {}), "outputs").items()
        }

    def run_workflow_job(
        self, workflow_path: Path, job_id: str, with_inputs: Mapping[str, object]
    ) -> None:
        """A job of a reusable workflow, called with ``with_inputs``."""
        workflow = load_yaml(workflow_path)
        call = as_mapping(workflow_triggers(workflow)["workflow_call"], "workflow_call")
        declared = as_mapping(call.get("inputs", {}), "inputs")
        unknown = set(with_inputs) - set(declared)
        if unknown:
            raise ExpressionError(f"inputs not declared by {workflow_path}: {sorted(unknown)}")
        inputs: dict[str, object] = {}
        for key, spec in declared.items():
            spec_map = as_mapping(spec, f"input {key}")
            value = with_inputs.get(key, spec_map.get("default"))
            if value is None and spec_map.get("required") is True:
                raise ExpressionError(f"input {key} of {workflow_path} is required")
            kind = spec_map.get("type")
            if kind == "boolean" and not isinstance(value, bool):
                value = to_text(value).casefold() == "true"
            elif kind == "number" and value is not None:
                value = _number(value)
            elif kind == "string":
                value = to_text(value)
            inputs[key] = value
        job = as_mapping(as_mapping(workflow["jobs"], "jobs")[job_id], job_id)
        self.job_id = job_id
        scopes: dict[str, object] = {"inputs": inputs}
        context = Context(self._contexts(**scopes, steps={}))
        for key, raw in as_mapping(job.get("env", {}), "env").items():
            self.env[key] = render_text(raw, context)
        defaults = as_mapping(
            as_mapping(job.get("defaults", {}), "defaults").get("run", {}), "defaults.run"
        )
        self._steps(
            as_list(job["steps"], "steps"),
            scopes,
            default_shell=str(defaults.get("shell", "bash")),
            extra_env={},
        )

    def logs(self) -> str:
        return "\n".join(f"== {s.name} ({s.outcome})\n{s.log}" for s in self.steps_run)


# --------------------------------------------------------------------------- GitLab

_INPUT = re.compile(r"\$\[\[\s*inputs\.([\w-]+)\s*\]\]")
_INPUT_KEYS = {"type", "description", "options", "regex", "default", "rules"}
_INPUT_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "boolean": (bool,),
    "number": (int, float),
    "array": (list,),
}


class ComponentError(Exception):
    pass


def component_documents(path: Path) -> tuple[dict[str, object], object]:
    """The component's two YAML documents: the ``spec:`` header and the jobs."""
    documents = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    if len(documents) != 2:
        raise ComponentError(f"{path}: a header and the jobs, not {len(documents)} document(s)")
    return as_mapping(documents[0], "header"), documents[1]


def input_specs(header: Mapping[str, object]) -> dict[str, dict[str, object]]:
    spec = as_mapping(header.get("spec", {}), "spec")
    return {
        name: as_mapping(value, f"input {name}")
        for name, value in as_mapping(spec.get("inputs", {}), "spec.inputs").items()
    }


def check_input(name: str, spec: Mapping[str, object], value: object) -> list[str]:
    """What GitLab would refuse about ``value`` for the input ``name``."""
    problems = []
    kind = str(spec.get("type", "string"))
    types = _INPUT_TYPES.get(kind)
    if types is None:
        return [f"{name}: unknown type {kind!r}"]
    if not isinstance(value, types) or (kind == "number" and isinstance(value, bool)):
        problems.append(f"{name}: provided value is not a {kind}")
    options = spec.get("options")
    if options is not None and value not in as_list(options, f"{name}.options"):
        problems.append(f"{name}: {value!r} cannot be used because it is not in the options")
    regex = spec.get("regex")
    if regex is not None and isinstance(value, str) and not re.search(str(regex), value):
        problems.append(f"{name}: {value!r} does not match the regex {regex}")
    return problems


def header_problems(header: Mapping[str, object], body_text: str) -> list[str]:
    """The header's structure, as GitLab checks it before any include."""
    problems = []
    if set(header) != {"spec"}:
        problems.append(f"the header holds {sorted(header)}, not only spec")
    specs = input_specs(header)
    used = set(_INPUT.findall(body_text))
    for name, spec in specs.items():
        extra = set(spec) - _INPUT_KEYS
        if extra:
            problems.append(f"{name}: unknown keys {sorted(extra)}")
        if not isinstance(spec.get("description"), str) or not spec["description"]:
            problems.append(f"{name}: no description")
        if "default" in spec:
            problems += [f"default of {p}" for p in check_input(name, spec, spec["default"])]
        if name not in used:
            problems.append(f"{name}: declared but never used")
    problems += [f"{name}: used but not declared" for name in sorted(used - set(specs))]
    return problems


def _interpolate(node: object, values: Mapping[str, object]) -> object:
    if isinstance(node, dict):
        return {
            str(_interpolate(key, values)): _interpolate(value, values)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_interpolate(item, values) for item in node]
    if isinstance(node, str):
        whole = _INPUT.fullmatch(node.strip())
        if whole is not None:
            return copy.deepcopy(values[whole.group(1)])
        return _INPUT.sub(lambda m: to_text(values[m.group(1)]), node)
    return node


def include_component(path: Path, inputs: Mapping[str, object]) -> dict[str, object]:
    """The jobs the component adds for ``inputs``, as GitLab interpolates them."""
    header, body = component_documents(path)
    specs = input_specs(header)
    problems = [f"{name}: unknown input" for name in sorted(set(inputs) - set(specs))]
    values: dict[str, object] = {}
    for name, spec in specs.items():
        if name in inputs:
            values[name] = inputs[name]
        elif "default" in spec:
            values[name] = spec["default"]
        else:
            problems.append(f"{name}: required value has not been provided")
            continue
        problems += check_input(name, spec, values[name])
    if problems:
        raise ComponentError(f"{path}: " + "; ".join(problems))
    return as_mapping(_interpolate(body, values), "jobs")


def deep_merge(base: Mapping[str, object], override: Mapping[str, object]) -> dict[str, object]:
    """GitLab's merge of hashes (includes, ``extends:``): hashes deeply, the rest replaced."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        current = out.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            out[key] = deep_merge(as_mapping(current, key), as_mapping(value, key))
        else:
            out[key] = copy.deepcopy(value)
    return out


def resolve_job(config: Mapping[str, object], name: str) -> dict[str, object]:
    job = as_mapping(config[name], name)
    parents = job.get("extends")
    if parents is None:
        return copy.deepcopy(job)
    merged: dict[str, object] = {}
    for parent in parents if isinstance(parents, list) else [parents]:
        merged = deep_merge(merged, resolve_job(config, str(parent)))
    return deep_merge(merged, {k: v for k, v in job.items() if k != "extends"})


def pipeline(
    includes: Sequence[Mapping[str, object]], own: Mapping[str, object]
) -> dict[str, object]:
    """The merged configuration: the included jobs, then the pipeline's own keys."""
    merged: dict[str, object] = {}
    for included in includes:
        merged = deep_merge(merged, included)
    return deep_merge(merged, {k: v for k, v in own.items() if k != "include"})


_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


def expand(value: str, env: Mapping[str, str]) -> str:
    """GitLab's expansion of ``$VAR`` / ``${VAR}`` in a variable's value."""
    return _VARIABLE.sub(lambda m: env.get(m.group(1) or m.group(2), ""), value)


def job_environment(
    job: Mapping[str, object],
    runner_env: Mapping[str, str],
    pipeline_variables: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The job's environment: the runner's, the job's variables (expanded), then the
    variables the pipeline was started with, which win over the job's."""
    env = dict(runner_env)
    for key, raw in as_mapping(job.get("variables", {}), "variables").items():
        if isinstance(raw, dict):
            spec = as_mapping(raw, key)
            value = str(spec.get("value", ""))
            env[key] = value if spec.get("expand") is False else expand(value, env)
        elif isinstance(raw, (str, int, float)) and not isinstance(raw, bool):
            env[key] = expand(str(raw), env)
        else:
            raise ComponentError(f"variable {key}: {raw!r} is not a string or a number")
    env.update(pipeline_variables or {})
    return env


def job_script(job: Mapping[str, object], key: str = "script") -> str:
    """The job's script as one ``sh`` session (``set -e``, the items in order)."""
    items = [str(item) for item in as_list(job.get(key, []), key)]
    return "set -e\n" + "\n".join(items) + "\n"
