"""The part catalogue: schema of the built-in parts, user files, errors, `flashswap parts`."""

from __future__ import annotations

import io
import json
import math
from dataclasses import fields
from pathlib import Path

import pytest

from flashswap.cli import main
from flashswap.cli.output import make_console
from flashswap.errors import PartsFileError, UnknownPartError
from flashswap.parts import Part, get_part, load_catalogue

REQUIRED = [
    f.name
    for f in fields(Part)
    if f.name
    not in (
        "cell",
        "i_standby_ua",
        "rber",
        "factory_bad_max",
        "ecc",
        "ecc_bits",
        "ecc_sector",
        "tbw_bytes",
        "internal_waf",
        "bus_mhz",
        "bus_width",
        "t_read_basis",
        "class_values",
        "notes",
    )
]


def toml_of(parts: list[dict]) -> str:
    """A minimal TOML writer for flat part tables (tomllib only reads)."""

    def value(v: object) -> str:
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, list | tuple):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return repr(v)

    out = []
    for p in parts:
        out.append("[[part]]")
        out += [f"{k} = {value(v)}" for k, v in p.items() if v is not None]
    return "\n".join(out) + "\n"


def base_table(name: str = "Mine") -> dict:
    d = get_part("W25Q128JV").to_dict()
    d["name"] = name
    return {k: v for k, v in d.items() if v is not None}


def write(tmp_path: Path, tables: list[dict], fname: str = "parts.toml") -> Path:
    p = tmp_path / fname
    p.write_text(toml_of(tables))
    return p


def run_cli(argv: list[str]) -> tuple[int, str]:
    buf = io.StringIO()
    rc = main(argv, console=make_console(file=buf, width=200))
    return rc, buf.getvalue()


# --- the built-in catalogue --------------------------------------------------------------


def test_catalogue_has_the_required_kinds() -> None:
    cat = load_catalogue()
    assert len(cat) >= 10
    kinds = [(p.kind, p.cell) for p in cat.values()]
    assert sum(k == "nor" for k, _ in kinds) >= 3
    assert kinds.count(("nand", "slc")) >= 3
    assert ("nand", "mlc") in kinds
    assert ("nand", "tlc") in kinds
    assert any(k == "managed" for k, _ in kinds)
    assert any(k == "internal" for k, _ in kinds)
    for name in ("W25Q128JV", "MX25R6435F", "W25N01GV", "MT29F1G01ABAFD", "GD5F1GQ5UE"):
        assert name in cat


@pytest.mark.parametrize("part", list(load_catalogue().values()), ids=lambda p: p.name)
def test_every_part_is_complete_and_consistent(part: Part) -> None:
    for f in REQUIRED:
        assert getattr(part, f) is not None, f
    assert part.source.strip()
    assert set(part.class_values) <= {f.name for f in fields(Part)}
    assert "weibull_shape" in part.class_values  # nobody publishes it
    for s in part.erase_sizes:
        assert s & (s - 1) == 0 and part.capacity % s == 0
    assert list(part.erase_sizes) == sorted(part.erase_sizes)
    assert len(part.t_erase_typ_us) == len(part.t_erase_max_us) == len(part.erase_sizes)
    assert part.t_prog_max_us >= part.t_prog_typ_us > 0
    assert part.erase_size % part.page_size == 0
    if part.kind in ("nor", "nand"):  # page data crosses a bus; read_mbps is its rate
        assert part.bus is not None
        assert part.read_mbps == pytest.approx(part.bus.bytes_per_s / 1e6, rel=0.005)
    else:
        assert part.bus is None
    if part.kind == "nand":
        assert part.t_read_basis in ("typ", "max")  # the datasheet's tR: typical or max only
        assert part.cell in ("slc", "mlc", "tlc")
        assert part.rber is not None and 0 < part.rber[0] <= part.rber[1] < 1
        assert "rber" in part.class_values
        assert part.factory_bad_max is not None and part.nop >= 1
        assert part.spare_size > 0
        # Every catalogue NAND needs ECC: on-die, or the strength its datasheet asks of the host.
        assert part.ecc in ("on-die", "host") and part.ecc_bits and part.ecc_sector
        assert part.page_size % part.ecc_sector == 0
    else:
        assert part.spare_size == 0
    if part.kind == "managed":
        assert part.tbw_bytes and part.internal_waf and part.internal_waf >= 1
    if part.kind == "internal":
        assert part.nop >= 1  # writes allowed per write unit between erases


def test_ecc_is_stated_in_words_for_reports() -> None:
    assert get_part("W25N01GV").ecc_summary == "on-die ECC, 1 bit(s) per 512 B"
    assert get_part("FNNL41A-8Gb").ecc_summary == (
        "host ECC (port or controller), 4 bit(s) per 512 B (class value)")
    assert get_part("W25Q128JV").ecc_summary == "no ECC needed"


def test_derived_helpers() -> None:
    p = get_part("W25Q128JV")
    assert (p.erase_size, p.blocks, p.pages_per_block, p.pages) == (4096, 4096, 16, 65536)
    assert p.t_prog_s() == pytest.approx(400e-6)
    assert p.t_prog_s(worst=True) == pytest.approx(3e-3)
    assert p.t_erase_s(65536) == pytest.approx(0.15)
    assert p.t_erase_s(65536, worst=True) == pytest.approx(2.0)
    assert p.e_prog_j() == pytest.approx(400e-6 * 20e-3 * 3.3)
    assert p.e_erase_j() == pytest.approx(45e-3 * 20e-3 * 3.3)
    assert p.t_read_s(66_500) == pytest.approx(1e-3)
    n = get_part("W25N01GV")
    assert n.t_read_s(2048, pages=1) == pytest.approx(60e-6 + 2048 / 52e6)
    with pytest.raises(ValueError, match="no erase of 8192 bytes"):
        p.t_erase_s(8192)


def test_lookup_is_case_insensitive() -> None:
    assert get_part("w25q128jv").name == "W25Q128JV"
    assert get_part("W25n01gv").name == "W25N01GV"


def test_unknown_part_lists_closest_names() -> None:
    with pytest.raises(UnknownPartError) as e:
        get_part("W25Q128")
    assert str(e.value).startswith("unknown part 'W25Q128' (closest: W25Q128JV")
    with pytest.raises(UnknownPartError, match=r"closest: none close"):
        get_part("zzzzzzzzzzzz")


# --- user files --------------------------------------------------------------------------


def test_user_file_adds_and_overrides(tmp_path: Path) -> None:
    override = base_table("w25q128jv")  # same name, other case
    override["endurance"] = 1234
    path = write(tmp_path, [base_table("Mine"), override])
    cat = load_catalogue([path])
    assert len(cat) == len(load_catalogue()) + 1
    assert cat["Mine"].capacity == 16_777_216
    assert get_part("W25Q128JV", [path]).endurance == 1234
    assert list(cat)[0] == "w25q128jv"  # replaced in place, keeps its position
    assert get_part("mine", [path]).name == "Mine"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"page_size": None}, "field 'page_size' is missing"),
        ({"capacity": "big"}, "field 'capacity' must be an integer, got str 'big'"),
        ({"capacity": True}, "field 'capacity' must be an integer, got bool True"),
        ({"voltage": "3V3"}, "field 'voltage' must be a number, got str '3V3'"),
        ({"erase_sizes": [3000]}, "field 'erase_sizes' 3000 is not a power of two"),
        ({"erase_sizes": [4096, 4096]}, "field 'erase_sizes' must be ascending without repeats"),
        (
            {
                "capacity": 12288,
                "erase_sizes": [8192],
                "t_erase_typ_us": [1],
                "t_erase_max_us": [2],
            },
            "field 'erase_sizes' 8192 does not divide capacity 12288",
        ),
        ({"endurance": -5}, "field 'endurance' must be positive, got -5"),
        ({"spare_size": 16}, "field 'spare_size' only NAND has a spare area (nor must use 0)"),
        (
            {"t_erase_typ_us": [1, 2]},
            "field 't_erase_typ_us' needs one entry per erase size (3), got 2",
        ),
        ({"t_prog_max_us": 1}, "field 't_prog_max_us' must be >= t_prog_typ_us"),
        (
            {"kind": "eeprom"},
            "field 'kind' must be one of nor, nand, managed, internal, got 'eeprom'",
        ),
        ({"colour": "red"}, "field 'colour' is not a known field"),
        ({"class_values": ["speed"]}, "field 'class_values' 'speed' is not a field"),
        ({"kind": "nand", "spare_size": 64, "cell": "slc"}, "field 'rber' is missing"),
        ({"page_size": 3000}, "field 'page_size' 3000 does not divide erase size 4096"),
        ({"bus_mhz": None}, "field 'bus_mhz' is missing"),
        ({"bus_width": 3}, "field 'bus_width' must be one of 1, 2, 4, 8, 16, got 3"),
        ({"bus_mhz": 104}, "field 'read_mbps' 66.5 disagrees with the bus (52 MB/s = "
                           "bus_mhz x bus_width / 8, x 2 with bus_ddr)"),
        ({"bus_ddr": "yes"}, "field 'bus_ddr' must be true or false, got str 'yes'"),
        ({"kind": "nand", "spare_size": 64, "cell": "slc", "rber": [1e-9, 1e-6],
          "factory_bad_max": 2, "nop": 4}, "field 't_read_basis' is missing"),
        ({"t_read_basis": "typical"}, "field 't_read_basis' must be one of typ, max, got "
                                      "'typical'"),
    ],
)
def test_malformed_part_names_file_part_and_field(
    tmp_path: Path, change: dict, message: str
) -> None:
    table = base_table()
    for k, v in change.items():
        if v is None:
            del table[k]
        else:
            table[k] = v
    path = write(tmp_path, [table])
    with pytest.raises(PartsFileError) as e:
        load_catalogue([path])
    assert str(e.value) == f"{path}: part 'Mine': {message}"


def test_part_without_a_name_is_numbered(tmp_path: Path) -> None:
    table = base_table()
    del table["name"]
    path = write(tmp_path, [base_table("A"), table])
    with pytest.raises(PartsFileError, match=r"part #2: field 'name' is missing"):
        load_catalogue([path])


def test_file_level_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[[part]\nname = 1\n")
    with pytest.raises(PartsFileError, match=r"bad\.toml: not valid TOML"):
        load_catalogue([bad])
    with pytest.raises(PartsFileError, match=r"cannot read parts file \(No such file"):
        load_catalogue([tmp_path / "missing.toml"])
    other = tmp_path / "other.toml"
    other.write_text("[chip]\nname = 'x'\n")
    with pytest.raises(PartsFileError, match=r"unexpected top-level key 'chip'"):
        load_catalogue([other])
    dup = write(tmp_path, [base_table("A"), base_table("a")], "dup.toml")
    with pytest.raises(PartsFileError, match=r"part 'a': field 'name' is defined twice"):
        load_catalogue([dup])


# --- the command ---------------------------------------------------------------------------


def test_cli_json_lists_every_field() -> None:
    rc, out = run_cli(["parts", "--json"])
    assert rc == 0
    parts = json.loads(out)
    assert len(parts) >= 10
    names = {f.name for f in fields(Part)}
    assert all(set(p) == names for p in parts)
    w = next(p for p in parts if p["name"] == "W25Q128JV")
    assert w["erase_sizes"] == [4096, 32768, 65536]
    assert all(isinstance(p["source"], str) and p["source"] for p in parts)
    assert not any(isinstance(v, float) and math.isnan(v) for p in parts for v in p.values())


def test_cli_table_and_parts_file(tmp_path: Path) -> None:
    rc, out = run_cli(["parts"])
    assert rc == 0
    assert "W25Q128JV" in out and "4K/32K/64K" in out and "2048+64" in out
    path = write(tmp_path, [base_table("MyFlash")])
    rc, out = run_cli(["parts", "--json", "--parts-file", str(path)])
    assert rc == 0
    assert len(json.loads(out)) == len(load_catalogue()) + 1
    assert "MyFlash" in [p["name"] for p in json.loads(out)]


def test_cli_malformed_file_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = base_table()
    table["erase_sizes"] = [1000, 4096]
    path = write(tmp_path, [table])
    rc, out = run_cli(["parts", "--parts-file", str(path)])
    err = capsys.readouterr().err
    assert rc == 2 and out == ""
    want = f"{path}: part 'Mine': field 'erase_sizes' 1000 is not a power of two"
    assert err == f"flashswap: error: {want}\n"
