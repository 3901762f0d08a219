#!/usr/bin/env python3
"""Runs every test_* function of tests/integration/test_*.py against a built daemon.

    run.py --bin build/revovoice [-k substring]

Prints "ok NAME" / "FAIL NAME" per test (with the reason and the daemon log tail on failure)
and "N passed, N failed" at the end.
"""
import argparse
import importlib.util
import os
import sys
import time
import traceback

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("-k", default=None)
    a = ap.parse_args()
    os.environ["RV_BIN"] = os.path.abspath(a.bin)
    import harness
    harness.BIN = os.environ["RV_BIN"]

    passed = failed = 0
    for fn in sorted(os.listdir(here)):
        if not (fn.startswith("test_") and fn.endswith(".py")):
            continue
        spec = importlib.util.spec_from_file_location(fn[:-3], os.path.join(here, fn))
        mod = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(mod)
        except Exception:
            print("FAIL integration/%s (import)" % fn)
            traceback.print_exc()
            failed += 1
            continue
        for name in sorted(n for n in dir(mod) if n.startswith("test_")):
            full = "%s.%s" % (fn[:-3], name)
            if a.k and a.k not in full:
                continue
            t0 = time.time()
            try:
                getattr(mod, name)()
                print("ok integration/%s (%.1fs)" % (full, time.time() - t0))
                passed += 1
            except Exception:
                print("FAIL integration/%s" % full)
                traceback.print_exc()
                failed += 1
            sys.stdout.flush()
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
