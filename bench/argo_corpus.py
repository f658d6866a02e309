"""Run `rollouts convert` then `rollouts lint` over a directory of Argo Rollouts manifests.

Offline: the manifests are a local directory (see docs/argo-compat.md for how the corpus was
gathered). Every YAML file is classified:

  clean        converts with no unsupported field and the output lints clean
  refused      converts, but names a field or kind we deliberately do not run
  rejected     the input (or its converted output) is invalid: an error naming the field
  no-argo      the file holds no argoproj.io document (Services, Ingresses, ...): nothing to convert
  crash        the CLI exited with an internal error (a bug of ours)

Usage: python bench/argo_corpus.py DIR [--markdown]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

EXIT_INTERNAL = 3  # rollouts.cli.lint.EXIT_INTERNAL: anything else non-zero is findings
_REFUSED = re.compile(r"not supported|unsupported|; left as is")
_NOT_ERROR = re.compile(r":doc \d+: (warning|skipped):")
_DANGLING = re.compile(r'AnalysisTemplate "([^"]+)" is not in the files given')


def _cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rollouts.cli.main", *args], input=stdin,
                          capture_output=True, text=True, check=False)


def _reason(stderr: str) -> str:
    lines = ["doc " + line.split(":doc ", 1)[-1] for line in stderr.splitlines()
             if ":doc " in line]
    return "; ".join(dict.fromkeys(line.strip() for line in lines))[:300]


def template_names(directory: Path) -> set[str]:
    """Names of the AnalysisTemplates anywhere in the corpus: Argo's e2e tests apply them from
    files of their own, so a Rollout's reference to one is not a dangling reference."""
    names: set[str] = set()
    for path in directory.rglob("*.y*ml"):
        try:
            docs = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
        except (yaml.YAMLError, UnicodeDecodeError):
            continue
        for doc in docs:
            if isinstance(doc, dict) and str(doc.get("kind", "")).endswith("AnalysisTemplate"):
                names.add(str((doc.get("metadata") or {}).get("name")))
    return names


def _findings(output: str, known_templates: set[str]) -> list[str]:
    """Lint's findings, less references to templates another corpus file defines."""
    found = []
    for line in output.splitlines():
        dangling = _DANGLING.search(line)
        finding = ":doc " in line and not _NOT_ERROR.search(line)
        if finding and not (dangling and dangling.group(1) in known_templates):
            found.append(line)
    return found


def classify(path: Path, known_templates: set[str]) -> tuple[str, str]:
    text = path.read_text(encoding="utf-8", errors="replace")
    if "argoproj.io/v1alpha1" not in text:
        return "no-argo", ""
    converted = _cli("convert", str(path))
    if "Traceback" in converted.stderr:
        return "crash", converted.stderr.strip().splitlines()[-1]
    if converted.stdout.strip() == "" or converted.returncode == EXIT_INTERNAL:
        return "rejected", _reason(converted.stderr) or converted.stderr.strip()[:300]
    problems = [line.split(":doc ", 1)[1] for line in converted.stderr.splitlines()
                if ":doc " in line]
    if problems and all(_REFUSED.search(line) for line in problems):
        return "refused", _reason(converted.stderr)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as out:
        out.write(converted.stdout)
    linted = _cli("lint", out.name)
    Path(out.name).unlink()
    if "Traceback" in linted.stderr + linted.stdout:
        return "crash", (linted.stderr or linted.stdout).strip().splitlines()[-1]
    findings = _findings(linted.stdout + linted.stderr, known_templates)
    if findings:
        return "rejected", _reason("\n".join(findings))
    if converted.returncode != 0:
        return "rejected", _reason(converted.stderr) or converted.stderr.strip()[:300]
    return "clean", ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--markdown", action="store_true", help="a table for docs/argo-compat.md")
    args = parser.parse_args()
    files = sorted(p for p in args.directory.rglob("*") if p.suffix in (".yaml", ".yml"))
    known = template_names(args.directory)
    results = [(p.relative_to(args.directory), *classify(p, known)) for p in files]
    counts: dict[str, int] = {}
    for _, verdict, _ in results:
        counts[verdict] = counts.get(verdict, 0) + 1
    if args.markdown:
        print("| file | result | reason |\n| --- | --- | --- |")
        for rel, verdict, reason in results:
            print(f"| `{rel}` | {verdict} | {reason.replace('|', '/')} |")
    else:
        for rel, verdict, reason in results:
            print(f"{verdict:9} {rel}  {reason}")
    print("\n" + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
          + f" (total {len(results)})")
    return 1 if counts.get("crash") else 0


if __name__ == "__main__":
    sys.exit(main())
