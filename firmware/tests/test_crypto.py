"""SHA-512 and Ed25519 in MicroPython: RFC 8032 section 7.1 TEST 1-3, and the comb table."""

import ed25519
import ed25519_comb
import sha512
import sha512_plain
import vectors

HEAPSIZE = "96k"


def test_rfc8032_tests_1_to_3_sign_and_verify():
    doc = vectors.load("rfc8032_ed25519.json")
    assert len(doc["vectors"]) == 3
    for case in doc["vectors"]:
        key = ed25519.SigningKey(bytes.fromhex(case["secret_key"]))
        message = bytes.fromhex(case["message"])
        assert key.public.hex() == case["public_key"], case["name"]
        signature = key.sign(message)
        assert signature.hex() == case["signature"], case["name"]
        assert ed25519.verify(key.public, message, signature), case["name"]


def test_verify_refuses_every_single_bit_flip_of_test_2():
    case = vectors.load("rfc8032_ed25519.json")["vectors"][1]
    public = bytes.fromhex(case["public_key"])
    message = bytes.fromhex(case["message"])
    signature = bytes.fromhex(case["signature"])
    for i in range(0, 64 * 8, 7):  # every 7th bit of the signature, then message and key
        bad = bytearray(signature)
        bad[i >> 3] ^= 1 << (i & 7)
        assert not ed25519.verify(public, message, bytes(bad)), i
    assert not ed25519.verify(public, b"\x73", signature)
    assert not ed25519.verify(public, message + b"\x00", signature)
    other = bytearray(public)
    other[0] ^= 1
    assert not ed25519.verify(bytes(other), message, signature)


def test_verify_refuses_a_non_canonical_s():
    case = vectors.load("rfc8032_ed25519.json")["vectors"][0]
    signature = bytes.fromhex(case["signature"])
    s = int.from_bytes(signature[32:], "little") + ed25519.L  # the same point, S >= L
    forged = signature[:32] + s.to_bytes(32, "little")
    assert not ed25519.verify(bytes.fromhex(case["public_key"]), b"", forged)


def test_committed_comb_table_is_the_computed_one():
    assert len(ed25519_comb.TABLE) == 63 * ed25519.ENTRY
    assert ed25519_comb.TABLE == ed25519.comb_table()


def test_viper_and_plain_sha512_agree_on_every_padding_boundary():
    data = bytes(range(256)) * 2
    for n in list(range(0, 260, 3)) + [111, 112, 113, 127, 128, 129, 239, 240, 256]:
        viper = sha512.sha512(data[:n])
        state = sha512.SHA512()
        saved = sha512.compress
        sha512.compress = sha512_plain.compress
        try:
            state.update(data[:n])
            plain = state.digest()
        finally:
            sha512.compress = saved
        assert viper == plain, n


def test_sha512_incremental_equals_one_shot():
    data = bytes(range(200))
    for cut in (0, 1, 64, 127, 128, 129, 199):
        h = sha512.SHA512(data[:cut])
        h.update(data[cut:])
        assert h.digest() == sha512.sha512(data), cut
