cd /work/main
S=benchmarks/results/2026-12-08-b1avx2.py
for r in 1 2; do
for tree in /tmp/pre /work/main; do
  PYTHONPATH=$tree .venv/bin/python $S predict $(basename $tree)-native
  PYTHONPATH=$tree .venv/bin/python $S --avx2 predict $(basename $tree)-avx2
done; done
