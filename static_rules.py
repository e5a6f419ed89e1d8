"""Static rules for a KernelBench-style submission (model_new.py).

A grader of this kind rejects some source outright (errors) and frowns on
other source that suggests the work is not done by our own kernels
(warnings).  The rules run on the text with comments removed, so that a
comment such as ``# no try: here`` costs nothing, while a string is still
code: ``"pass"`` inside a string is an error, as it is for the grader.

Comments are removed in two ways and a finding counts if it survives either:

* line by line, the way a simple grader does: ``//`` and ``#`` run to the end
  of the line, except a ``#`` that starts a preprocessor line (``#include``,
  ``#define``, ``#pragma``, ``#if`` ...).  This also eats Python's floor
  division ``a // b`` and whatever follows it on the line;
* with Python's tokenizer, which knows a comment from a string: ``#``
  comments in the Python code go, and ``//`` comments inside string literals
  (the CUDA source) go; ``//`` in Python code stays, being division.

So nothing that either kind of grader could see is missed.

Only the standard library is used: ``run_check.py --static-only`` works on
machines with no torch at all.
"""

from __future__ import annotations

import io
import re
import token
import tokenize
from dataclasses import dataclass
from typing import Callable, Iterable, List, Optional

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class Finding:
    level: str  # ERROR or WARNING
    rule: str  # short rule id, see RULES
    line: int  # 1-based line number; 0 for a whole-file rule
    text: str  # the offending source line (stripped), or what is missing

    def describe(self) -> str:
        return RULES[self.rule].description


@dataclass(frozen=True)
class Rule:
    id: str
    level: str
    description: str
    # A pattern that must not occur; None for the rules that need something.
    pattern: Optional[re.Pattern]
    # Optional extra condition on the whole stripped text (e.g. "F is torch.nn.functional").
    applies: Optional[Callable[[str], bool]] = None


def _re(pattern: str) -> re.Pattern:
    return re.compile(pattern, re.MULTILINE)


# nn.<X> names that hold parameters or modules but compute nothing themselves.
_NN_CONTAINERS = "Module|Parameter|ParameterList|ParameterDict|ModuleList|ModuleDict|init"

_F_IS_FUNCTIONAL = _re(
    r"\bimport\s+torch\.nn\.functional\s+as\s+F\b"
    r"|\bfrom\s+torch\.nn\s+import\s+functional\s+as\s+F\b"
)

_RULE_LIST = [
    # ---- errors: the grader rejects the file -------------------------------
    Rule("try", ERROR, "`try` statement (no exception handling allowed)", _re(r"\btry\s*:")),
    Rule("except", ERROR, "`except` keyword (no exception handling allowed)", _re(r"\bexcept\b")),
    Rule("pass", ERROR, "the word `pass` outside comments", _re(r"\bpass\b")),
    Rule(
        "concurrency",
        ERROR,
        "threading / multiprocessing / concurrent.futures",
        _re(
            r"\b(?:threading|multiprocessing)\b"
            r"|\bconcurrent\.futures\b"
            r"|\bfrom\s+concurrent\s+import\b"
        ),
    ),
    Rule(
        "tensor-subclass",
        ERROR,
        "torch.Tensor subclass or _make_subclass",
        _re(r"\bclass\s+\w+\s*\([^)]*(?<![\w.])(?:torch\.)?Tensor\b|\b_make_subclass\b"),
    ),
    Rule(
        "timer-patch",
        ERROR,
        "reassigns a timing function (torch.cuda.Event/synchronize, time.time/perf_counter)",
        _re(
            r"\btorch\.cuda\.(?:Event(?:\.\w+)*|synchronize)\s*=(?!=)"
            r"|\btime\.(?:time|perf_counter)(?:_ns)?\s*=(?!=)"
            r"|\bsetattr\s*\(\s*(?:torch\.cuda(?:\.Event)?|time)\s*,"
        ),
    ),
    Rule("no-global", ERROR, "no `__global__` kernel anywhere", None),
    Rule("no-load-inline", ERROR, "no `load_inline` anywhere", None),
    # ---- warnings: allowed, but the work may not be our own kernels -------
    Rule(
        "nn-layer",
        WARNING,
        "torch.nn compute layer",
        _re(rf"(?<![\w.])(?:torch\.)?nn\.(?!(?:{_NN_CONTAINERS}|functional)\b)\w+"),
    ),
    Rule(
        "functional",
        WARNING,
        "torch.nn.functional call",
        _re(r"(?<![\w.])(?:torch\.)?nn\.functional\b|\bfrom\s+torch\.nn\s+import\s+functional\b"),
    ),
    Rule(
        "F-call",
        WARNING,
        "F.<op>() call (F is torch.nn.functional)",
        _re(r"(?<![\w.])F\.\w+\s*\("),
        applies=lambda text: bool(_F_IS_FUNCTIONAL.search(text)),
    ),
    Rule(
        "torch-op",
        WARNING,
        "torch convolution / matmul op",
        _re(
            r"\btorch\.(?:ops\.aten\.)?(?:_?conv\w*|matmul|mm|bmm|addmm|baddbmm|einsum)\b"
            r"|\.(?:matmul|mm|bmm)\s*\("
        ),
    ),
    Rule(
        "stream",
        WARNING,
        "creates or switches CUDA streams (work may escape the timed stream)",
        # KernelBench's stream patterns (its generic `Stream()` too), plus CUDA's own creation call
        _re(
            r"\bcuda\.Stream\s*\(|\bcuda\.stream\s*\(|\bwith\s+(?:torch\.)?cuda\.stream"
            r"|\.wait_stream\s*\(|\.record_stream\s*\(|Stream\(\)|\bcudaStreamCreate\w*"
        ),
    ),
    Rule(
        # The grader's precision-downgrade check: Python casts and CUDA's conversion intrinsics.
        # A PTX cvt that rounds fp32 accumulators to the output dtype of a 16-bit model is the
        # normal end of any fp16/bf16 kernel, not a downgrade, and the grader does not flag it.
        "half-cast",
        WARNING,
        "float to half/bfloat16 cast",
        _re(
            r"\.(?:half|bfloat16)\s*\(\s*\)"
            r"|\.(?:to|type)\s*\([^)]*\btorch\.(?:float16|half|bfloat16)\b"
            r"|\b__floats?2+(?:half|bfloat16)\w*"
        ),
    ),
]

RULES = {rule.id: rule for rule in _RULE_LIST}

# ---------------------------------------------------------------------------
# Comment stripping.  Both functions keep every line and every column, putting
# spaces where comments were, so that line numbers stay right.

_PREPROCESSOR = re.compile(r"^\s*#\s*(?:include|define|pragma|if|ifdef|ifndef|else|elif|endif|undef)\b")
_HASH_OR_SLASHES = re.compile(r"#|//")
_SLASHES = re.compile(r"//")


def strip_comments_simple(text: str) -> str:
    """Line-based stripping: `//` or `#` to the end of the line is a comment,
    except the `#` that opens a C preprocessor line (a `//` later on such a
    line is still a comment)."""
    out = []
    for line in text.split("\n"):
        if _PREPROCESSOR.match(line):
            match = _SLASHES.search(line, line.index("#") + 1)
        else:
            match = _HASH_OR_SLASHES.search(line)
        if match:
            line = line[: match.start()] + " " * (len(line) - match.start())
        out.append(line)
    return "\n".join(out)


def strip_comments_tokens(text: str) -> Optional[str]:
    """Tokenizer-based stripping: Python `#` comments, and `//` comments
    inside string literals (CUDA source).  None if the text is not Python."""
    lines = text.split("\n")
    chars = [list(line) for line in lines]

    def blank(row: int, start: int, end: int) -> None:
        # row is 1-based, as tokenize reports it
        line = chars[row - 1]
        for col in range(start, min(end, len(line))):
            line[col] = " "

    string_types = {token.STRING}
    # Python 3.12+ splits f-strings into pieces; their text parts are strings too.
    string_types.add(getattr(token, "FSTRING_MIDDLE", token.STRING))
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return None
    for tok in tokens:
        if tok.type == token.COMMENT:
            blank(tok.start[0], tok.start[1], tok.end[1])
        elif tok.type in string_types:
            (row0, col0), (row1, col1) = tok.start, tok.end
            for row in range(row0, row1 + 1):
                first = col0 if row == row0 else 0
                last = col1 if row == row1 else len(chars[row - 1])
                segment = "".join(chars[row - 1][first:last])
                cut = segment.find("//")
                if cut >= 0:
                    # The string's closing quote survives on its last line.
                    end = last - _closing_quote_len(segment) if row == row1 else last
                    blank(row, first + cut, max(end, first + cut))
    return "\n".join("".join(line) for line in chars)


def _closing_quote_len(segment: str) -> int:
    for quote in ('"""', "'''", '"', "'"):
        if segment.endswith(quote):
            return len(quote)
    return 0


# ---------------------------------------------------------------------------


def _scan(stripped: str, original_lines: List[str]) -> Iterable[Finding]:
    for rule in _RULE_LIST:
        if rule.pattern is None:
            continue
        if rule.applies is not None and not rule.applies(stripped):
            continue
        for match in rule.pattern.finditer(stripped):
            line_no = stripped.count("\n", 0, match.start()) + 1
            yield Finding(rule.level, rule.id, line_no, original_lines[line_no - 1].strip())


def check_source(text: str) -> List[Finding]:
    """All findings for one source file, one per (rule, line), sorted by line."""
    original_lines = text.split("\n")
    views = [strip_comments_simple(text)]
    tokenized = strip_comments_tokens(text)
    if tokenized is not None:
        views.append(tokenized)

    found = {}
    for view in views:
        for finding in _scan(view, original_lines):
            found.setdefault((finding.rule, finding.line), finding)

    # The two things a submission must have.  Each must survive both kinds of
    # stripping: a kernel that only exists in a comment does not count.
    for rule_id, word in (("no-global", "__global__"), ("no-load-inline", "load_inline")):
        if not all(re.search(rf"\b{word}\b", view) for view in views):
            rule = RULES[rule_id]
            found[(rule_id, 0)] = Finding(rule.level, rule_id, 0, f"`{word}` not found")

    return sorted(found.values(), key=lambda f: (f.line, f.level != ERROR, f.rule))


def errors(findings: Iterable[Finding]) -> List[Finding]:
    return [f for f in findings if f.level == ERROR]


def warnings(findings: Iterable[Finding]) -> List[Finding]:
    return [f for f in findings if f.level == WARNING]
