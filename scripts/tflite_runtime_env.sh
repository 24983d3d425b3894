#!/usr/bin/env bash
# A second environment for the LiteRT/TFLite tests: tflite-runtime 2.14 with numpy<2.
#
# Makes a virtual environment (default $TMPDIR/edgeai-tflite-runtime-venv, or $EDGEAI_TFLITE_VENV), installs
# numpy<2, tflite-runtime 2.14, edgeai (editable) and the test tools. The tests build models with
# the TFLite schema's Python object API, which only ai-edge-litert ships: its pure-Python
# schema_py_generated.py alone is put on the path as a stub ``ai_edge_litert`` package (no
# interpreter in it), so edgeai and the tests run every model on tflite_runtime.interpreter.
# Then runs tests/litert.
#
#   scripts/tflite_runtime_env.sh [extra pytest arguments]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${EDGEAI_TFLITE_VENV:-${TMPDIR:-/tmp}/edgeai-tflite-runtime-venv}"
python="${PYTHON:-python3}"

if [[ ! -x "$venv/bin/python" ]]; then
    "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip install --disable-pip-version-check -q)
"${pip[@]}" "numpy<2" "tflite-runtime==2.14.*"
"${pip[@]}" -e "$root" "numpy<2"
"${pip[@]}" pytest hypothesis flatbuffers "numpy<2"
"$venv/bin/python" -m pip uninstall -q -y ai-edge-litert 2>/dev/null || true
schema_src="$venv/ai-edge-litert-wheel"
"${pip[@]}" --no-deps --target "$schema_src" ai-edge-litert
stub="$venv/schema-only/ai_edge_litert"
mkdir -p "$stub"
cp "$schema_src/ai_edge_litert/schema_py_generated.py" "$stub/"
echo '"""Only the TFLite schema module of ai-edge-litert (no interpreter)."""' > "$stub/__init__.py"
site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
echo "$venv/schema-only" > "$site/edgeai-tflite-schema-only.pth"

"$venv/bin/python" - <<'PY'
import numpy, tflite_runtime
from edgeai.backends.litert import _interpreter_module
module, label = _interpreter_module()
print(f"numpy {numpy.__version__}, tflite-runtime {tflite_runtime.__version__}; edgeai uses {label}")
assert label == "tflite-runtime", f"expected tflite-runtime to be picked, got {label}"
PY
cd "$root"
exec "$venv/bin/python" -m pytest tests/litert -q -p no:cacheprovider "$@"
