"""Where the options of ``aekit train`` come from: a configuration file, overridden by flags — fixed
flags for the data and the trainer, and ``--name value`` flags for the options of the chosen preset,
read from the registry (a plugin's preset takes its options as flags the same way as aekit's)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..presets.options import OPTIONS
from ._app import _fail, err
from ._lazy import lazy_module

# heavy modules (torch), loaded on first use so that `aekit --help` and option checks stay fast
presets_catalog = lazy_module("aekit.presets.catalog")
training_autosize = lazy_module("aekit.training.autosize")

TRUE, FALSE = ("true", "yes", "1", "on"), ("false", "no", "0", "off")


@dataclass
class Spec:
    """A run, resolved: data, preset and seed, the preset's options and the trainer's."""

    preset: str = "undercomplete"
    data: str = "digits"
    data_dir: str | None = None
    binarize: bool = False
    stream: bool = False
    window: int | None = None
    stride: int = 1
    train_steps: int | None = None
    standardize: bool = False
    label_column: str | None = None
    drop_columns: list[str] = field(default_factory=list)
    seed: int = 0
    iw_samples: int = 1000
    plugins: list[str] = field(default_factory=list)
    model: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)


def resolve(file: dict[str, Any], top: dict[str, Any], train: dict[str, Any], extra: list[str]) -> Spec:
    """A :class:`Spec` from a configuration file's values, each overridden by a flag that was given
    (``None``: not given), and the ``extra`` flags: the preset's options, ``--name value``."""
    if "seed" in file.get("train", {}):
        _fail("seed goes at the top level of the configuration file, not in [train]")
    spec = Spec(**{k: v for k, v in file.items() if k not in ("model", "train")})
    for k, v in top.items():
        if v is not None:
            setattr(spec, k, v)
    spec.model = {**file.get("model", {}), **extra_options(extra, spec.preset)}
    spec.train = {**file.get("train", {}), **{k: v for k, v in train.items() if v is not None}}
    return spec


def extra_options(args: list[str], preset: str) -> dict[str, Any]:
    """``--width 64 --no-bias --scale=0.5`` → options of ``preset``, typed like their defaults."""
    get_preset = presets_catalog.get_preset

    if not args:
        return {}
    accepted = get_preset(preset).options()
    flags = ", ".join("--" + k.replace("_", "-") for k in accepted)
    out: dict[str, Any] = {}
    i = 0
    while i < len(args):
        token = args[i]
        if not token.startswith("--") or token == "--":
            _fail(f"unexpected argument {token!r}")
        name, eq, text = token[2:].partition("=")
        key = name.replace("-", "_")
        negated = key.startswith("no_") and isinstance(accepted.get(key[3:]), bool)
        if key not in accepted and not negated:
            _fail(f"unknown option --{name} for preset {preset!r}; it takes {flags} (trainer options: aekit train --help)")
        if negated:
            out[key[3:]] = False
        elif isinstance(accepted[key], bool):
            if not eq and i + 1 < len(args) and args[i + 1].lower() in TRUE + FALSE:
                text, i = args[i + 1], i + 1
            out[key] = parse_value(text, True, f"--{name}") if (eq or text) else True
        else:
            if not eq:
                if i + 1 >= len(args):
                    _fail(f"--{name} needs a value")
                text, i = args[i + 1], i + 1
            out[key] = parse_value(text, accepted[key], f"--{name}")
        i += 1
    return out


def parse_value(text: str, default: Any, flag: str) -> Any:
    """``text`` as the type of ``default`` (bool, int, float, str, or a comma-separated list); with no
    usable default, an int, a float, a comma-separated list of numbers, else the text itself."""
    try:
        if isinstance(default, bool):
            if text.lower() not in TRUE + FALSE:
                raise ValueError
            return text.lower() in TRUE
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
        if isinstance(default, str):
            return text
        if isinstance(default, (list, tuple)):
            kind = float if any(isinstance(v, float) for v in default) else int
            return [kind(t) for t in text.split(",") if t.strip()]
    except ValueError:
        floats = isinstance(default, (list, tuple)) and any(isinstance(v, float) for v in default)
        kind = "true or false" if isinstance(default, bool) else (
            f"comma-separated {'numbers' if floats else 'integers'}" if isinstance(default, (list, tuple))
            else {int: "an integer", float: "a number"}.get(type(default), f"a {type(default).__name__}"))
        _fail(f"{flag} must be {kind}, got {text!r}")
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    if "," in text:
        return [parse_value(t, None, flag) for t in text.split(",") if t.strip()]
    return text


def data_spec(data: str) -> str:
    """A data file or directory as an absolute path (usable from any directory); a name as it is."""
    return str(Path(data).resolve()) if Path(data).exists() else data


def check_flags(ctx: Any, plugins: list[str] | None) -> None:
    """Refuse an option that is neither aekit train's nor any aekit preset's at once (before torch is imported),
    with the nearest names: a typo (--epoch) would otherwise reach the preset's option parser seconds later.
    With --plugin, a plugin's preset may take options aekit does not know: those are checked by the preset."""
    import difflib


    if plugins:
        return
    own = [o for p in ctx.command.params for o in p.opts if o.startswith("--")]
    known = set(own) | {"--" + k.replace("_", "-") for k in OPTIONS}
    for token in ctx.args:
        flag = token.partition("=")[0]
        if flag.startswith("--") and flag != "--" and flag not in known and "--" + flag[5:] not in known:
            near = difflib.get_close_matches(flag, sorted(known), n=3)
            _fail(f"no such option {flag}" + (f"; did you mean {' or '.join(near)}?" if near else "")
                  + " (aekit train --help lists them, and the preset options under it)")


def sized(spec: Spec, split, quiet: bool) -> dict:
    """The model options with two defaults that follow the data where the option was not given: the code size
    the estimators choose (round(√d), :mod:`aekit.training.autosize`) where the preset's own would not fit (a code of
    16 for a table of 16 columns), and a Gaussian likelihood for --standardize'd data (a Bernoulli one needs
    values in [0, 1]). Each is said on stderr."""
    import math

    auto_code_size = training_autosize.auto_code_size
    get_preset = presets_catalog.get_preset

    accepted, options, notes = get_preset(spec.preset).options(), dict(spec.model), []
    default, d = accepted.get("code_size"), math.prod(split.train.shape)
    if "code_size" not in options and isinstance(default, int) and 0 < d <= default:
        options["code_size"] = auto_code_size(d)
        notes.append(f"code size {options['code_size']} (round(√{d})): the preset's {default} is not smaller than "
                     f"the {d} input features; --code-size chooses another")
    if spec.standardize and "likelihood" not in options and accepted.get("likelihood") == "bernoulli":
        options["likelihood"] = "gaussian"
        notes.append("likelihood gaussian: standardised data is not in [0, 1], where the preset's Bernoulli "
                     "likelihood lives; --likelihood chooses another")
    for note in notes if not quiet else ():
        err.print(note)
    return options
