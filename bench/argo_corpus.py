"""Run `rollouts convert` then `rollouts lint` over a directory of Argo Rollouts manifests.

Offline: the manifests are a local directory (see docs/argo-compat.md for how the corpus was
gathered). Every YAML file is classified:

  clean        converts with no unsupported field and the output lints clean
  refused      converts, but names a field or kind we deliberately do not run (every problem
               `convert` reports is `unsupported:`, none `invalid:`)
  rejected     the input (or its converted output) is invalid: an error naming the field
  no-argo      the file holds no argoproj.io document (Services, Ingresses, ...): nothing to convert
  crash        the CLI exited with an internal error (a bug of ours)

Usage: python bench/argo_corpus.py DIR [--markdown] [--by-dir]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

EXIT_INTERNAL = 3  # rollouts.cli.lint.EXIT_INTERNAL: anything else non-zero is findings
_REFUSED = re.compile(r"^unsupported: ")
_PROBLEM = re.compile(r"^(unsupported|invalid|error): ")
_NOT_ERROR = re.compile(r":doc \d+: (warning|skipped):")
_DANGLING = re.compile(r'\b(ClusterAnalysisTemplate|AnalysisTemplate) "([^"]+)" is not in the '
                       r"files given")


def _cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rollouts.cli.main", *args], input=stdin,
                          capture_output=True, text=True, check=False)


def _reason(stderr: str) -> str:
    lines = ["doc " + line.split(":doc ", 1)[-1] for line in stderr.splitlines()
             if ":doc " in line]
    return "; ".join(dict.fromkeys(line.strip() for line in lines))[:300]


def template_names(directory: Path) -> set[tuple[str, str]]:
    """(kind, name) of the (Cluster)AnalysisTemplates anywhere in the corpus: Argo's e2e tests
    apply them from files of their own, so a reference to one of the same kind is not a
    dangling reference (one to a ClusterAnalysisTemplate that exists only as a namespaced
    AnalysisTemplate still is)."""
    names: set[tuple[str, str]] = set()
    for path in directory.rglob("*.y*ml"):
        try:
            docs = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
        except (yaml.YAMLError, UnicodeDecodeError):
            continue
        for doc in docs:
            if isinstance(doc, dict) and str(doc.get("kind", "")).endswith("AnalysisTemplate"):
                names.add((str(doc["kind"]), str((doc.get("metadata") or {}).get("name"))))
    return names


def _findings(output: str, known_templates: set[tuple[str, str]]) -> list[str]:
    """Lint's findings, less references to templates another corpus file defines."""
    found = []
    for line in output.splitlines():
        dangling = _DANGLING.search(line)
        finding = ":doc " in line and not _NOT_ERROR.search(line)
        if finding and not (dangling and dangling.groups() in known_templates):
            found.append(line)
    return found


def classify(path: Path, known_templates: set[tuple[str, str]]) -> tuple[str, str]:
    text = path.read_text(encoding="utf-8", errors="replace")
    if "argoproj.io/v1alpha1" not in text:
        return "no-argo", ""
    converted = _cli("convert", str(path))
    if "Traceback" in converted.stderr:
        return "crash", converted.stderr.strip().splitlines()[-1]
    if converted.stdout.strip() == "" or converted.returncode == EXIT_INTERNAL:
        return "rejected", _reason(converted.stderr) or converted.stderr.strip()[:300]
    # `converted:` lines (a reference to a Rollout pointed at ours) are notes, not problems.
    problems = [line for line in converted.stderr.splitlines() if _PROBLEM.match(line)]
    if problems and all(_REFUSED.match(line) for line in problems):
        return "refused", _reason("\n".join(problems))
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
        return "rejected", _reason("\n".join(problems)) or converted.stderr.strip()[:300]
    return "clean", ""


def directory_of(rel: Path) -> str:
    """The tree a file is counted under: its folder below examples/ or test/e2e/ (top level
    files count as that tree's own)."""
    parts = rel.parts
    depth = 2 if parts[:2] == ("test", "e2e") else 1
    return "/".join(parts[:depth + 1]) if len(parts) > depth + 1 else "/".join(parts[:depth])


def by_directory(results: list[tuple[Path, str, str]]) -> list[tuple[str, dict[str, int]]]:
    table: dict[str, dict[str, int]] = {}
    for rel, verdict, _ in results:
        row = table.setdefault(directory_of(rel), {})
        row[verdict] = row.get(verdict, 0) + 1
    return sorted(table.items())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--markdown", action="store_true", help="a table for docs/argo-compat.md")
    parser.add_argument("--by-dir", action="store_true", help="also counts per directory")
    parser.add_argument("--jobs", type=int, default=2, help="files checked at once")
    args = parser.parse_args()
    files = sorted(p for p in args.directory.rglob("*") if p.suffix in (".yaml", ".yml"))
    known = template_names(args.directory)
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        verdicts = list(pool.map(lambda path: classify(path, known), files))
    results = [(p.relative_to(args.directory), *v) for p, v in zip(files, verdicts, strict=True)]
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
    if args.by_dir:
        verdicts = ["clean", "refused", "rejected", "no-argo", "crash"]
        print("\n| directory | files | " + " | ".join(verdicts) + " |\n| --- |"
              + " ---: |" * (len(verdicts) + 1))
        for directory, row in by_directory(results):
            print(f"| `{directory}` | {sum(row.values())} | "
                  + " | ".join(str(row.get(v, 0)) for v in verdicts) + " |")
    print("\n" + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
          + f" (total {len(results)})")
    return 1 if counts.get("crash") else 0


if __name__ == "__main__":
    sys.exit(main())
