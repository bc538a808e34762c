"""`flashswap lifetime --encrypt`: the cost of sealing and opening chunks, by hand."""

from __future__ import annotations

import io
import json

import pytest

from analyzer.crypto import CIPHERS, Encryption, get_cipher
from analyzer.synth import write_chain_trace
from analyzer.workload import Workload
from flashswap.cli import main
from flashswap.cli.output import make_console
from flashswap.errors import InputError

# The chain writes 7 chunks of 4096 bytes and one of 1000, and reads each back once:
# 29,672 bytes and 8 records each way.
LAYERS = (16384, 8192, 4096, 1000)


@pytest.fixture(scope="module")
def trace(tmp_path_factory):
    return write_chain_trace(tmp_path_factory.mktemp("crypto") / "c.bin", LAYERS, chunk=4096)


def test_software_gcm_by_hand(trace) -> None:
    cost = Encryption(get_cipher("aes-gcm-sw"), 120.0, "m4").cost(Workload.load(trace))
    assert cost["sealed_bytes_per_inference"] == cost["opened_bytes_per_inference"] == 29672
    assert cost["seals_per_inference"] == cost["opens_per_inference"] == 8
    # (537.9 CTR + 640 GHASH) / 16 = 73.61875 cycles a byte; 644.7 + 2 x 640 = 1924.7 a record
    assert cost["cycles_per_byte"] == pytest.approx(73.61875, rel=1e-15)
    assert cost["cycles_per_record"] == pytest.approx(1924.7, rel=1e-15)
    # 59,344 x 73.61875 + 16 x 1924.7 = 4,368,831.1 + 30,795.2
    assert cost["cycles_per_inference"] == pytest.approx(4_399_626.3, rel=1e-13)
    assert cost["seconds_per_inference"] == pytest.approx(4_399_626.3 / 120e6, rel=1e-13)
    # 110 uA/MHz x 120 MHz x 3.3 V = 43.56 mW
    assert cost["run_power_mw"] == pytest.approx(43.56, rel=1e-13)
    assert cost["energy_mj_per_inference"] == pytest.approx(
        4_399_626.3 / 120e6 * 43.56, rel=1e-13)


def test_hardware_gcm_by_hand(trace) -> None:
    cost = Encryption(get_cipher("AES-GCM-HW"), 80.0, "l4").cost(Workload.load(trace))
    # 51 cycles a 16-byte block: 3.1875 a byte; 4 blocks' worth (204) a record
    assert (cost["cycles_per_byte"], cost["cycles_per_record"]) == (3.1875, 204.0)
    assert cost["cycles_per_inference"] == 59344 * 3.1875 + 16 * 204 == 192_423.0
    assert cost["seconds_per_inference"] == pytest.approx(192_423 / 80e6, rel=1e-15)


def test_every_cipher_names_its_source() -> None:
    for c in CIPHERS.values():
        assert c.source and c.cycles_per_byte > 0 and c.cycles_per_record > 0
    assert "SAC 2016" in CIPHERS["aes-gcm-sw"].source
    assert "assumption" in CIPHERS["aes-gcm-sw"].source
    assert "RM0456" in CIPHERS["aes-gcm-hw"].source
    with pytest.raises(InputError, match=r"unknown cipher 'des' \(choose from aes-gcm-sw, "):
        get_cipher("des")


def cli(*argv: str) -> tuple[int, str]:
    buf = io.StringIO()
    rc = main(list(argv), console=make_console(file=buf, width=200))
    return rc, buf.getvalue()


ARGS = ("--store", "flashswap", "--part", "W25Q128JV", "--capacity", "1MiB", "--jobs", "1")


def test_cli_adds_the_crypto_to_the_io_figures(trace) -> None:
    rc, out = cli("lifetime", str(trace), *ARGS, "--json")
    plain = json.loads(out)["results"][0]
    rc2, out = cli("lifetime", str(trace), *ARGS, "--json", "--encrypt")
    d = json.loads(out)
    assert rc == rc2 == 0
    r = d["results"][0]
    c = r["crypto"]
    assert d["encrypt"]["cipher"] == c["cipher"] == "aes-gcm-sw"
    assert d["encrypt"]["mhz"] == 120  # the default --mcu's clock
    # the flash figures are the unencrypted run's; the I/O figures add the crypto work
    assert c["flash_seconds_per_inference"] == plain["io_seconds_per_inference"]
    assert c["flash_energy_mj_per_inference"] == plain["io_energy_mj_per_inference"]
    assert r["io_seconds_per_inference"] == pytest.approx(
        plain["io_seconds_per_inference"] + 4_399_626.3 / 120e6, rel=1e-12)
    assert r["io_energy_mj_per_inference"] == pytest.approx(
        plain["io_energy_mj_per_inference"] + 4_399_626.3 / 120e6 * 43.56, rel=1e-12)
    t = r["timing"]
    assert r["slowdown"] == pytest.approx(
        (t["compute_s"] + t["inline_io_s"] + c["seconds_per_inference"])
        / (t["compute_s"] + t["weight_read_s"]), rel=1e-12)
    assert r["years"] == plain["years"]  # encryption costs time, not wear (tags not modelled)


def test_cli_table_names_the_cipher(trace) -> None:
    rc, out = cli("lifetime", str(trace), *ARGS, "--encrypt", "aes-gcm-hw")
    assert rc == 0
    text = " ".join(out.split())  # the console folds long lines
    assert ("encryption: AES-128-GCM on a hardware AES engine at 120 MHz "
                           "(cortex-m4-120mhz-xcube-ai): 3.188 cycles per byte and 204 per "
                           "chunk sealed or opened, 8 seals and 8 opens = 1.6 ms and 0.07 mJ "
                           "per inference, included in the I/O figures (sources: ST RM0456") in text
    assert "with encryption" in out


@pytest.mark.parametrize("argv, message", [
    (("--encrypt", "rot13"), "unknown cipher 'rot13' (choose from aes-gcm-sw, aes-gcm-hw)"),
    (("--encrypt", "--mcu", "none"), "--encrypt needs the MCU's clock: give --mcu (not none)"),
])
def test_cli_errors(trace, argv, message, capsys) -> None:
    rc = main(["lifetime", str(trace), *ARGS, *argv])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.strip() == f"flashswap: error: {message}"
