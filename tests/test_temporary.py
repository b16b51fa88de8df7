"""This process's temporary files: a SIGTERM in the middle of an atomic write removes them."""

import signal
import subprocess
import sys

# A worker thread writes (as the batch scorer's workers do); the process is stopped half-way. The
# handler runs in the main thread, so the writer's own clean-up never runs: the handler must remove it.
KILLED_WRITE = """
import os, signal, sys, threading, time
import pandas as pd
from ipvalue.io import remove_temporary_files_on_sigterm, write_atomic

def stopped_half_way(self, path, **kwargs):
    open(path, "wb").write(b"PAR1 half a file")
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(60)

remove_temporary_files_on_sigterm()
pd.DataFrame.to_parquet = stopped_half_way
threading.Thread(target=write_atomic, args=(pd.DataFrame({"patent_id": ["CN1"]}), sys.argv[1]), daemon=True).start()
time.sleep(60)
"""


def test_sigterm_during_a_write_removes_its_temporary_file_and_exits_143(tmp_path):
    target = tmp_path / "out" / "scored.parquet"
    done = subprocess.run([sys.executable, "-c", KILLED_WRITE, str(target)], capture_output=True, text=True)
    assert done.returncode == 128 + signal.SIGTERM, done.stderr
    assert sorted(p.name for p in target.parent.iterdir()) == []  # neither the half-written temporary file nor the target


def test_the_handler_is_installed_without_importing_pandas():
    code = ("import signal, sys\nfrom ipvalue.temporary import remove_temporary_files_on_sigterm\nremove_temporary_files_on_sigterm()\n"
            "print(signal.getsignal(signal.SIGTERM).__qualname__, 'pandas' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["remove_temporary_files_on_sigterm.<locals>.handler", "False"]
