#!/usr/bin/env bash
# tools/release/docker-tools.sh — the entry point of the Dockerfile's `tools` target
# (/usr/local/bin/cosyvoiced-tools in that image): the model exporter and the speaker tool for users
# without a Python of their own.
#
#   cosyvoiced-tools export ARGS...       tools/export/export.py  (make bundle)
#   cosyvoiced-tools add-speaker ARGS...  tools/export/add_speaker.py
#   cosyvoiced-tools python ARGS...       the venv's python (torch, safetensors, onnxruntime, ...)
#   cosyvoiced-tools --help
# Everything it writes is 0644 (directories 0755), so the daemon's user can read a bundle whatever uid
# wrote it; run it with `-u $(id -u)` to own the files yourself.
set -euo pipefail

root=/opt/cosyvoiced/src
py=/opt/cosyvoiced/venv/bin/python

usage() {
	cat <<EOF
usage: cosyvoiced-tools export ARGS...        export a CosyVoice2 model directory into a bundle
       cosyvoiced-tools add-speaker ARGS...   add a saved voice to a bundle
       cosyvoiced-tools python ARGS...        the exporter's python
e.g.   docker run --rm -u \$(id -u) -v /srv/models:/models cosyvoiced-tools \\
         export --src /models/CosyVoice2-0.5B --out /models/cosyvoice2 --dtype fp16
Each command's --help lists its options.
EOF
}

cmd="${1:-}"
[ $# -gt 0 ] && shift
case "$cmd" in
export) exec "$py" "$root/tools/export/export.py" "$@" ;;
add-speaker) exec "$py" "$root/tools/export/add_speaker.py" "$@" ;;
python) exec "$py" "$@" ;;
-h | --help | help | "")
	usage
	[ -n "$cmd" ]
	;;
*)
	echo "cosyvoiced-tools: unknown command '$cmd'" >&2
	usage >&2
	exit 2
	;;
esac
