"""Config error messages that name the key and the problem, never the value.

Any value in a config may be a secret, and so may a key: a secret pasted a line too far left,
or one holding ``": "``, becomes a mapping key. So pydantic's errors are rebuilt from their
structure without their inputs, YAML's messages lose what they quote, and an input key is named
only when it is a setting's name or close to one.
"""

from __future__ import annotations

import difflib
import re
import sys
import typing
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails, PydanticCustomError

from exporter.logs import REDACTED

# The error type of `setting_error`.
SETTING_ERROR: Final = "setting"
NOT_SHOWN: Final = "not shown: it is shaped like no setting's name, so it may be a misplaced value"

_MESSAGES: Final[Mapping[str, str]] = {
    "missing": "required",
    "extra_forbidden": "unknown key",
    "url_parsing": "not a URL",
    "url_scheme": "not an http(s) URL",
    "url_type": "not a URL",
    "string_pattern_mismatch": "must start with a letter and hold only letters, digits, _ or -",
    "string_type": "must be text (in YAML, a number, date or true/false needs quotes)",
    "path_type": "must be a file path",
    "invalid_key": "a key must be text",
    "model_type": "must be a mapping of settings",
    "model_attributes_type": "must be a mapping of settings",
}


class ConfigError(Exception):
    """Every problem found in a config, each as ``key.path: message``."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def setting_error(key: str, problem: str) -> PydanticCustomError:
    """A validation error about one key of a model, raised by the model's own validator: the key
    joins the error's location."""
    return PydanticCustomError(SETTING_ERROR, "{key}: {problem}", {"key": key, "problem": problem})


# Shaped like a setting's name: a few lowercase words, no digits.
_WORDS = re.compile(r"[a-z]+(?:_[a-z]+)*")


def nameable(key: object, known: Collection[str]) -> bool:
    """Whether a key from the input may be named in an error.

    Any other key may be a value typed where a key belongs (a line pasted too far left, a value
    holding ": "), and a value may be a secret. Named: a setting's name, one close enough to be
    its typo (a secret that close to a public name protects nothing), and a short key of
    lowercase words, like every setting's: vendors' keys and tokens are random letters and
    digits. The cost: a human password of lowercase words alone, pasted as a key, would show.
    """
    if not isinstance(key, str):
        return False
    if key in known or (len(key) <= 32 and _WORDS.fullmatch(key)):
        return True
    return bool(difflib.get_close_matches(key, known, n=1, cutoff=0.8))


def unknown_names(given: Iterable[object], known: Collection[str], what: str) -> str | None:
    """``unknown endpoint seatz (known: ...)``, naming each unknown one only if `nameable`, else
    by its position."""
    unknown = [(n, name) for n, name in enumerate(given, 1) if name not in known]
    if not unknown:
        return None
    shown = sorted(str(name) for _, name in unknown if nameable(name, known))
    hidden = [f"#{n}" for n, name in unknown if not nameable(name, known)]
    if hidden:
        shown.append(f"{', '.join(hidden)} ({NOT_SHOWN})")
    return f"unknown {what} {', '.join(shown)} (known: {', '.join(sorted(known))})"


def setting_names(model: type[BaseModel]) -> frozenset[str]:
    """The name and alias of every field of ``model`` and of every model inside it."""
    names: set[str] = set()
    seen: set[type[BaseModel]] = set()
    todo: list[Any] = [model]
    while todo:
        item = todo.pop()
        if isinstance(item, type) and issubclass(item, BaseModel):
            if item in seen:
                continue
            seen.add(item)
            for name, info in item.model_fields.items():
                names.add(name)
                if isinstance(info.alias, str):
                    names.add(info.alias)
                todo.append(info.annotation)
        else:
            todo.extend(typing.get_args(item))
    return frozenset(names)


@dataclass(frozen=True)
class Vocabulary:
    """What an error message may name, and where an input came from."""

    # Every setting, endpoint and vendor name.
    known: frozenset[str]
    # pydantic puts the union tag into locations: sources.0.<vendor>.base_url
    tags: tuple[str, ...]
    env_prefix: str
    environ: Mapping[str, str] = field(default_factory=dict)
    # (source index, key) -> the environment variable that set it.
    env_keys: Mapping[tuple[int, str], str] = field(default_factory=dict)


def validation_problems(exc: ValidationError, data: Any, words: Vocabulary) -> list[str]:
    """One ``key.path: problem`` per error, from pydantic's structure: its inputs are dropped,
    and so is each key in a location that is not `nameable`."""
    problems = []
    for err in exc.errors(include_input=False, include_url=False, include_context=True):
        problems.append(_problem(err, data, words))
    return problems


def _problem(err: ErrorDetails, data: Any, words: Vocabulary) -> str:
    loc = err["loc"]
    kind = err["type"]
    where, var = _location(loc, data, words)
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        word = "unknown type" if kind == "union_tag_invalid" else "required"
        return f"{where}.type: {word} (one of: {', '.join(words.tags)})"
    if kind == SETTING_ERROR:
        ctx = err.get("ctx") or {}
        key, message = str(ctx.get("key", "")), str(ctx.get("problem", ""))
        where = f"{where}.{key}"
        source = loc[1] if len(loc) > 1 and loc[0] == "sources" else None
        if isinstance(source, int):
            var = var or words.env_keys.get((source, key))
    elif kind == "extra_forbidden" and loc and not nameable(loc[-1], words.known):
        message = f"unknown key (its name is {NOT_SHOWN})"
    else:
        message = _MESSAGES.get(kind, err["msg"])
        message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if loc and loc[-1] == "[key]":
        message = f"the key: {message}"
    # A variable's name is the operator's own, and names where to look; its value never shows.
    return f"{where}: {message}" + (f" (set by {var})" if var else "")


def _location(loc: tuple[int | str, ...], data: Any, words: Vocabulary) -> tuple[str, str | None]:
    """The key path of an error's location, and the environment variable that set it, if any.
    The input is walked alongside: it tells a list index from a mapping key (YAML keys may be
    numbers), and gives a hidden key its position."""
    out = ""
    node = data
    raw: list[str] = []
    var = None
    source: int | None = None
    in_sources = bool(loc) and loc[0] == "sources"
    for position, part in enumerate(loc):
        if (position == 2 and in_sources and part in words.tags) or part == "[key]":
            continue
        if isinstance(part, int) and (isinstance(node, list) or node is None):
            # Input the walk cannot follow came from pydantic-settings' JSON, whose keys are
            # text: an int there is a list index.
            out += f"[{part}]"
            node = node[part] if isinstance(node, list) and 0 <= part < len(node) else None
            if position == 1 and in_sources:
                source = part
            continue
        if source is not None and var is None and isinstance(part, str):
            var = words.env_keys.get((source, part))
            source = None
        raw.append(str(part))
        name = str(part) if nameable(part, words.known) else _placeholder(part, node)
        out += f".{name}" if out else name
        node = node.get(part) if isinstance(node, dict) else None
    if var is None and raw and not in_sources:
        candidate = words.env_prefix + "__".join(raw).upper()
        var = candidate if candidate in words.environ else None
    return out or "config", var


def _placeholder(key: object, node: Any) -> str:
    if isinstance(node, dict) and key in node:
        return f"<key #{list(node).index(key) + 1}>"
    return "<a key>"


def without_secrets(problems: list[str], secrets: Iterable[str]) -> list[str]:
    """The last line of defence: no problem holds a value given for a secret setting."""
    # Short strings would redact ordinary words; real keys are long.
    found = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)
    out = []
    for problem in problems:
        text = problem
        for secret in found:
            text = text.replace(secret, REDACTED)
        out.append(text)
    return out


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, except that its constructors' own exceptions, which quote the value
    (``int()``'s, a dict lookup's), become a YAML error at the node that quotes nothing."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (yaml.YAMLError, RecursionError):
            raise
        except Exception:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                "a value YAML cannot read as its type (its !!tag, or an impossible date)",
                node.start_mark,
            ) from None


# PyYAML quotes the input in some problems: alias and anchor names, tags, a found token.
_QUOTED = re.compile(r"""'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*\"""")
# What may stay: one character (escaped or not), or a token's kind like '<block end>'.
_HARMLESS = re.compile(
    r"""'(?:[^'\\]|\\(?:[^xuU]|x[0-9a-f]{2}|u[0-9a-f]{4}|U[0-9a-f]{8}))'|"'"|'<[a-z ]+>'"""
)
_YAML_PROBLEMS: Final = (
    ("found undefined alias", "an alias (*name) that no anchor (&name) defines"),
    ("could not determine a constructor", "an unknown tag (!name): only YAML's own are allowed"),
)


def yaml_problem(exc: yaml.MarkedYAMLError) -> str:
    problem = exc.problem or "syntax error"
    if "duplicate anchor" in (exc.context or ""):
        return "an anchor (&name) defined twice"
    for start, ours in _YAML_PROBLEMS:
        if problem.startswith(start):
            return ours
    return _QUOTED.sub(lambda m: m[0] if _HARMLESS.fullmatch(m[0]) else "(not shown)", problem)


def parse_yaml(text: str, where: str) -> Any:
    """The document in ``text``; a ConfigError that names the line and quotes nothing."""
    loader = None
    try:
        # The reader checks every character as it is built.
        loader = _Loader(text)
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        raise ConfigError([f"{where}{at}: invalid YAML: {yaml_problem(exc)}"]) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        problem = "a control character, which YAML does not allow"
        raise ConfigError([f"{where}:{line}: invalid YAML: {problem}"]) from None
    except yaml.YAMLError:
        raise ConfigError([f"{where}: invalid YAML"]) from None
    except RecursionError:
        raise ConfigError([f"{where}: invalid YAML: nested too deeply"]) from None
    finally:
        if loader is not None:
            loader.dispose()


def print_problems(path: object, what: str, problems: Iterable[str]) -> None:
    """A file's problems on stderr, one a line under its name; nothing when there are none."""
    problems = list(problems)
    if not problems:
        return
    print(f"{path}: invalid {what}:", file=sys.stderr)
    for problem in problems:
        print(f"  {problem}", file=sys.stderr)
