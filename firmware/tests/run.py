"""Run one firmware test module in MicroPython: every function named test_* in it.

    micropython -X heapsize=128k firmware/tests/run.py test_cbor

with firmware/lib and firmware/tests on MICROPYPATH (tests/firmware/conftest.py sets it up).
Each test prints one line, a failure its traceback; the last line is "N passed, N failed"
and the exit status is 1 when any test failed. gc.collect() runs before each test so that a
test's heap use does not depend on the one before it.
"""

import gc
import sys
import time


def main(argv):
    if len(argv) < 2:
        print("usage: run.py MODULE [TEST_NAME]")
        sys.exit(2)
    module = __import__(argv[1])
    only = argv[2] if len(argv) > 2 else None
    names = sorted(n for n in dir(module) if n.startswith("test_"))
    passed = failed = 0
    for name in names:
        if only is not None and name != only:
            continue
        gc.collect()
        start = time.ticks_ms()
        try:
            getattr(module, name)()
        except Exception as exc:  # report every failure, then go on with the next test
            failed += 1
            print("FAIL", name)
            sys.print_exception(exc)
            continue
        passed += 1
        print("ok", name, "(%d ms)" % time.ticks_diff(time.ticks_ms(), start))
    print("%d passed, %d failed" % (passed, failed))
    if failed or not passed:
        sys.exit(1)


main(sys.argv)
