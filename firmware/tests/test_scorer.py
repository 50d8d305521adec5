"""The int8 scorer runs in MicroPython within the heap the board leaves it."""

import scorer

HEAPSIZE = "64k"


def test_output_is_one_int8_and_risk_is_per_mille():
    for fill in (0, 127, 128, 255):
        q, risk = scorer.score(bytes([fill]) * scorer.N_INPUTS)
        assert -128 <= q <= 127
        assert 0 <= risk <= 1000


def test_wrong_input_length_is_refused():
    try:
        scorer.infer(bytes(scorer.N_INPUTS + 1))
    except ValueError:
        return
    raise AssertionError("a wrong-length input was accepted")
