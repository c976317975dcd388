"""Run every benchmark in turn (`make bench`); each prints its ratio against the ideal."""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = ["bench_client_describe.py", "bench_engine.py", "bench_file_run_ssh.py",
              "bench_manifest_scan.py"]

if __name__ == "__main__":
    failed = [name for name in BENCHMARKS
              if subprocess.run([sys.executable, str(HERE / name)], cwd=HERE.parent).returncode]
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")
