"""The flash part catalogue: datasheet figures per part, loaded from TOML and validated.

The built-in catalogue is `flashswap/data/parts.toml`; users add or override parts with files
of the same schema (`[[part]]` tables). Every field is checked on load so that a typo in a user
file becomes a one-line `PartsFileError` naming the file, the part and the field, instead of a
wrong lifetime projection later.

Units are fixed by the field names: bytes, microseconds (`_us`), milliamps (`_ma`),
microamps (`_ua`), volts, years, MB/s with MB = 10**6 bytes, MHz. `nop = 0` means "no limit
on partial programs per page" (NOR, managed devices).

Raw flash (NOR, NAND) moves page data over its interface: `bus_mhz` is the part's maximum
clock for the page read-out and program-data commands, `bus_width` the data lines of its
widest mode for both (4: quad SPI; 8: octal SPI or an x8 parallel bus), `bus_ddr` data on
both clock edges. `read_mbps` must agree with them. The board may run the bus slower or
narrower (`Bus`, FlashSim's `bus`). `t_read_basis` says whether the datasheet gives tR
(`t_read_us`) as a typical value or only as a maximum (then the maximum is what every store
pays alike).
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from flashswap.errors import PartsFileError, UnknownPartError

KINDS = ("nor", "nand", "managed", "internal")
ECC_KINDS = ("on-die", "host")
CELLS = ("slc", "mlc", "tlc", "pslc")


@dataclass(frozen=True)
class Part:
    """One flash part as its datasheet describes it (see the module doc for units)."""

    name: str
    vendor: str
    kind: str
    capacity: int
    erase_sizes: tuple[int, ...]
    page_size: int
    spare_size: int
    nop: int
    endurance: int
    retention_years: float
    read_mbps: float
    t_read_us: float
    t_prog_typ_us: float
    t_prog_max_us: float
    t_erase_typ_us: tuple[float, ...]
    t_erase_max_us: tuple[float, ...]
    voltage: float
    i_read_ma: float
    i_prog_ma: float
    i_erase_ma: float
    weibull_shape: float
    source: str
    cell: str | None = None
    i_standby_ua: float | None = None
    rber: tuple[float, float] | None = None
    factory_bad_max: int | None = None
    # NAND error correction: "on-die" (the part corrects its reads) or "host" (the part needs
    # the port or controller to correct ecc_bits bits per ecc_sector bytes); None: none.
    ecc: str | None = None
    ecc_bits: int | None = None
    ecc_sector: int | None = None
    tbw_bytes: int | None = None
    internal_waf: float | None = None
    bus_mhz: float | None = None
    bus_width: int | None = None
    bus_ddr: bool = False
    t_read_basis: str | None = None
    class_values: tuple[str, ...] = ()
    notes: str = ""

    @property
    def ecc_summary(self) -> str:
        """The ECC the simulator assumes, in words (for reports): what reads are corrected
        with, and whether that figure is a class value."""
        if self.ecc is None:
            return "no ECC" if self.kind == "nand" else "no ECC needed"
        who = "on-die ECC" if self.ecc == "on-die" else "host ECC (port or controller)"
        cls = " (class value)" if "ecc_bits" in self.class_values else ""
        return f"{who}, {self.ecc_bits} bit(s) per {self.ecc_sector} B{cls}"

    # --- geometry -----------------------------------------------------------------------
    @property
    def erase_size(self) -> int:
        """The smallest erase unit (the unit wear is counted in)."""
        return self.erase_sizes[0]

    @property
    def blocks(self) -> int:
        return self.capacity // self.erase_size

    @property
    def pages_per_block(self) -> int:
        return self.erase_size // self.page_size

    @property
    def pages(self) -> int:
        return self.capacity // self.page_size

    @property
    def bus(self) -> Bus | None:
        """The part's fastest interface (None: managed and internal flash, whose `read_mbps`
        and program times already include the transfer)."""
        if self.bus_mhz is None or self.bus_width is None:
            return None
        return Bus(self.bus_mhz, self.bus_width, self.bus_ddr)

    # --- time and energy per operation ---------------------------------------------------
    def t_prog_s(self, worst: bool = False) -> float:
        """Busy time of one page program, typical or worst case."""
        return (self.t_prog_max_us if worst else self.t_prog_typ_us) * 1e-6

    def t_erase_s(self, size: int | None = None, worst: bool = False) -> float:
        """Busy time of one erase of `size` bytes (default: the smallest erase unit)."""
        i = self._erase_index(size)
        return (self.t_erase_max_us if worst else self.t_erase_typ_us)[i] * 1e-6

    def t_read_s(self, nbytes: int, pages: int = 1) -> float:
        """Time to read `nbytes` touching `pages` pages: array latency + bus transfer."""
        return pages * self.t_read_us * 1e-6 + nbytes / (self.read_mbps * 1e6)

    def e_prog_j(self, worst: bool = False) -> float:
        return self.t_prog_s(worst) * self.i_prog_ma * 1e-3 * self.voltage

    def e_erase_j(self, size: int | None = None, worst: bool = False) -> float:
        return self.t_erase_s(size, worst) * self.i_erase_ma * 1e-3 * self.voltage

    def e_read_j(self, nbytes: int, pages: int = 1) -> float:
        return self.t_read_s(nbytes, pages) * self.i_read_ma * 1e-3 * self.voltage

    def _erase_index(self, size: int | None) -> int:
        if size is None:
            return 0
        try:
            return self.erase_sizes.index(size)
        except ValueError:
            raise ValueError(f"{self.name}: no erase of {size} bytes") from None

    def to_dict(self) -> dict[str, Any]:
        """Every field, JSON-ready (tuples become lists)."""
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


@dataclass(frozen=True)
class Bus:
    """A flash interface as a board runs it: clock, data lines, single or double data rate.
    Page data (read out, or loaded to program) moves at `bytes_per_s`; command and address
    cycles are not modelled."""

    mhz: float
    width: int
    ddr: bool = False

    @property
    def bytes_per_s(self) -> float:
        return self.mhz * 1e6 * self.width * (2 if self.ddr else 1) / 8

    def describe(self) -> str:
        """ "4-bit bus at 133 MHz (66.5 MB/s)"."""
        ddr = " DDR" if self.ddr else ""
        return (f"{self.width}-bit{ddr} bus at {self.mhz:g} MHz "
                f"({self.bytes_per_s / 1e6:g} MB/s)")


BUS_WIDTHS = (1, 2, 4, 8, 16)
T_READ_BASES = ("typ", "max")


# --- schema ------------------------------------------------------------------------------

# field -> (type tag, required for these kinds; "all" = every kind, () = optional)
_ALL = KINDS
_SCHEMA: dict[str, tuple[str, tuple[str, ...]]] = {
    "name": ("str", _ALL),
    "vendor": ("str", _ALL),
    "kind": ("str", _ALL),
    "capacity": ("int", _ALL),
    "erase_sizes": ("int_list", _ALL),
    "page_size": ("int", _ALL),
    "spare_size": ("int", _ALL),
    "nop": ("int", _ALL),
    "endurance": ("int", _ALL),
    "retention_years": ("float", _ALL),
    "read_mbps": ("float", _ALL),
    "t_read_us": ("float", _ALL),
    "t_prog_typ_us": ("float", _ALL),
    "t_prog_max_us": ("float", _ALL),
    "t_erase_typ_us": ("float_list", _ALL),
    "t_erase_max_us": ("float_list", _ALL),
    "voltage": ("float", _ALL),
    "i_read_ma": ("float", _ALL),
    "i_prog_ma": ("float", _ALL),
    "i_erase_ma": ("float", _ALL),
    "weibull_shape": ("float", _ALL),
    "source": ("str", _ALL),
    "cell": ("str", ("nand",)),
    "i_standby_ua": ("float", ()),
    "rber": ("float_pair", ("nand",)),
    "factory_bad_max": ("int", ("nand",)),
    "ecc": ("str", ()),
    "ecc_bits": ("int", ()),
    "ecc_sector": ("int", ()),
    "tbw_bytes": ("int", ("managed",)),
    "internal_waf": ("float", ("managed",)),
    "bus_mhz": ("float", ("nor", "nand")),
    "bus_width": ("int", ("nor", "nand")),
    "bus_ddr": ("bool", ()),
    "t_read_basis": ("str", ("nand",)),
    "class_values": ("str_list", ()),
    "notes": ("str", ()),
}
assert set(_SCHEMA) == {f.name for f in fields(Part)}

_TYPE_WORDS = {
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "int_list": "a list of integers",
    "float_list": "a list of numbers",
    "str_list": "a list of strings",
    "float_pair": "a list of two numbers",
    "bool": "true or false",
}


class _Bad(Exception):
    """A field failed a check; carries the field name and the problem."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(field, problem)
        self.field = field
        self.problem = problem


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _convert(field: str, tag: str, v: object) -> object:
    ok = {
        "str": lambda: isinstance(v, str),
        "int": lambda: _is_int(v),
        "float": lambda: _is_num(v),
        "int_list": lambda: isinstance(v, list) and all(_is_int(x) for x in v),
        "float_list": lambda: isinstance(v, list) and all(_is_num(x) for x in v),
        "str_list": lambda: isinstance(v, list) and all(isinstance(x, str) for x in v),
        "float_pair": lambda: isinstance(v, list) and len(v) == 2 and all(_is_num(x) for x in v),
        "bool": lambda: isinstance(v, bool),
    }[tag]()
    if not ok:
        raise _Bad(field, f"must be {_TYPE_WORDS[tag]}, got {_describe(v)}")
    if tag == "float":
        return float(v)  # type: ignore[arg-type]
    if tag == "int_list":
        return tuple(v)  # type: ignore[arg-type]
    if tag in ("float_list", "float_pair"):
        return tuple(float(x) for x in v)  # type: ignore[attr-defined]
    if tag == "str_list":
        return tuple(v)  # type: ignore[arg-type]
    return v


def _describe(v: object) -> str:
    if isinstance(v, list):
        return f"list {v!r}"[:60]
    return f"{type(v).__name__} {v!r}"[:60]


def _pow2(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def _check(p: dict[str, Any]) -> None:
    """Cross-field rules; raise _Bad naming the first field that breaks one."""
    kind = p["kind"]
    if kind not in KINDS:
        raise _Bad("kind", f"must be one of {', '.join(KINDS)}, got {kind!r}")
    if p.get("cell") is not None and p["cell"] not in CELLS:
        raise _Bad("cell", f"must be one of {', '.join(CELLS)}, got {p['cell']!r}")
    for f in ("capacity", "page_size", "endurance"):
        if p[f] <= 0:
            raise _Bad(f, f"must be positive, got {p[f]}")
    for f in ("retention_years", "read_mbps", "t_prog_typ_us", "voltage", "weibull_shape"):
        if p[f] <= 0:
            raise _Bad(f, f"must be positive, got {p[f]:g}")
    for f in ("spare_size", "nop", "t_read_us", "i_read_ma", "i_prog_ma", "i_erase_ma"):
        if p[f] < 0:
            raise _Bad(f, f"must not be negative, got {p[f]:g}")
    if p.get("i_standby_ua") is not None and p["i_standby_ua"] < 0:
        raise _Bad("i_standby_ua", f"must not be negative, got {p['i_standby_ua']:g}")
    if p["t_prog_max_us"] < p["t_prog_typ_us"]:
        raise _Bad("t_prog_max_us", "must be >= t_prog_typ_us")
    sizes = p["erase_sizes"]
    if not sizes:
        raise _Bad("erase_sizes", "must list at least one size")
    for s in sizes:
        if not _pow2(s):
            raise _Bad("erase_sizes", f"{s} is not a power of two")
        if p["capacity"] % s:
            raise _Bad("erase_sizes", f"{s} does not divide capacity {p['capacity']}")
    if list(sizes) != sorted(set(sizes)):
        raise _Bad("erase_sizes", "must be ascending without repeats")
    if sizes[0] % p["page_size"]:
        raise _Bad("page_size", f"{p['page_size']} does not divide erase size {sizes[0]}")
    for f in ("t_erase_typ_us", "t_erase_max_us"):
        if len(p[f]) != len(sizes):
            raise _Bad(f, f"needs one entry per erase size ({len(sizes)}), got {len(p[f])}")
        if any(t <= 0 for t in p[f]):
            raise _Bad(f, "entries must be positive")
    if any(mx < ty for ty, mx in zip(p["t_erase_typ_us"], p["t_erase_max_us"], strict=True)):
        raise _Bad("t_erase_max_us", "each entry must be >= its t_erase_typ_us entry")
    if kind == "nand":
        if p["nop"] < 1:
            raise _Bad("nop", "NAND needs at least 1 program per page")
        fresh, worn = p["rber"]
        if not 0 < fresh <= worn < 1:
            raise _Bad("rber", "needs 0 < fresh <= at-endurance < 1")
        if p["factory_bad_max"] < 0:
            raise _Bad("factory_bad_max", "must not be negative")
        _check_ecc(p)
    elif p["spare_size"]:
        raise _Bad("spare_size", f"only NAND has a spare area ({kind} must use 0)")
    else:
        for f in ("ecc", "ecc_bits", "ecc_sector"):
            if p.get(f) is not None:
                raise _Bad(f, f"is for NAND only ({kind} reads carry no raw bit errors here)")
    if kind == "managed":
        if p["tbw_bytes"] <= 0:
            raise _Bad("tbw_bytes", "must be positive")
        if p["internal_waf"] < 1:
            raise _Bad("internal_waf", "must be >= 1")
    if kind == "internal" and p["nop"] < 1:
        raise _Bad("nop", "internal flash needs the writes allowed per write unit (>= 1)")
    if p.get("bus_mhz") is not None:
        if p["bus_mhz"] <= 0:
            raise _Bad("bus_mhz", f"must be positive, got {p['bus_mhz']:g}")
        if p.get("bus_width") not in BUS_WIDTHS:
            raise _Bad("bus_width", f"must be one of {', '.join(map(str, BUS_WIDTHS))}, "
                       f"got {p.get('bus_width')}")
        rate = Bus(p["bus_mhz"], p["bus_width"], bool(p.get("bus_ddr"))).bytes_per_s / 1e6
        if abs(p["read_mbps"] - rate) > 0.005 * rate:
            raise _Bad("read_mbps", f"{p['read_mbps']:g} disagrees with the bus ({rate:g} MB/s "
                       "= bus_mhz x bus_width / 8, x 2 with bus_ddr)")
    elif p.get("bus_ddr") or p.get("bus_width") is not None:
        raise _Bad("bus_mhz", "is missing (bus_width and bus_ddr need it)")
    if p.get("t_read_basis") is not None and p["t_read_basis"] not in T_READ_BASES:
        raise _Bad("t_read_basis", f"must be one of {', '.join(T_READ_BASES)}, "
                   f"got {p['t_read_basis']!r}")
    for cv in p["class_values"]:
        if cv not in _SCHEMA:
            raise _Bad("class_values", f"{cv!r} is not a field")


def _check_ecc(p: dict[str, Any]) -> None:
    """ecc, ecc_bits and ecc_sector come together: a kind, a strength, a sector that divides
    the page."""
    given = [p.get(f) is not None for f in ("ecc", "ecc_bits", "ecc_sector")]
    if not any(given):
        return
    if not all(given):
        missing = [f for f, g in zip(("ecc", "ecc_bits", "ecc_sector"), given, strict=True)
                   if not g][0]
        raise _Bad(missing, "ecc, ecc_bits and ecc_sector must be given together")
    if p["ecc"] not in ECC_KINDS:
        raise _Bad("ecc", f"must be one of {', '.join(ECC_KINDS)}, got {p['ecc']!r}")
    if p["ecc_bits"] < 1:
        raise _Bad("ecc_bits", f"must be positive, got {p['ecc_bits']}")
    if not _pow2(p["ecc_sector"]) or p["page_size"] % p["ecc_sector"]:
        raise _Bad("ecc_sector", f"must be a power of two dividing the page, got {p['ecc_sector']}")


def part_from_table(table: Mapping[str, Any], origin: str, index: int = 0) -> Part:
    """Validate one `[[part]]` table; `origin` (a file name) goes into error messages."""
    name = table.get("name")
    who = f"part {name!r}" if isinstance(name, str) else f"part #{index + 1}"
    try:
        unknown = sorted(set(table) - set(_SCHEMA))
        if unknown:
            raise _Bad(unknown[0], "is not a known field")
        kind = table.get("kind")
        values: dict[str, Any] = {}
        for field, (tag, required_for) in _SCHEMA.items():
            if field not in table:
                if kind in required_for or required_for is _ALL:
                    raise _Bad(field, "is missing")
                continue
            values[field] = _convert(field, tag, table[field])
        if not values["name"].strip():
            raise _Bad("name", "must not be empty")
        if not values["source"].strip():
            raise _Bad("source", "must not be empty")
        merged = {f: values.get(f) for f in _SCHEMA}
        merged["class_values"] = values.get("class_values", ())
        _check(merged)
    except _Bad as e:
        raise PartsFileError(f"{origin}: {who}: field '{e.field}' {e.problem}") from None
    return Part(**values)


def parts_from_file(path: Path | str) -> list[Part]:
    """Read and validate every part in one TOML file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise PartsFileError(f"{path}: cannot read parts file ({_reason(e)})") from None
    return _parts_from_text(text, str(path))


def _parts_from_text(text: str, origin: str) -> list[Part]:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise PartsFileError(f"{origin}: not valid TOML ({e})") from None
    tables = doc.get("part")
    extra = sorted(set(doc) - {"part"})
    if extra:
        raise PartsFileError(f"{origin}: unexpected top-level key '{extra[0]}' (use [[part]])")
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise PartsFileError(f"{origin}: no [[part]] tables")
    parts = [part_from_table(t, origin, i) for i, t in enumerate(tables)]
    seen: set[str] = set()
    for p in parts:
        if p.name.lower() in seen:
            raise PartsFileError(f"{origin}: part {p.name!r}: field 'name' is defined twice")
        seen.add(p.name.lower())
    return parts


def _reason(e: BaseException) -> str:
    return getattr(e, "strerror", None) or str(e) or type(e).__name__


@lru_cache(maxsize=1)
def _builtin() -> tuple[Part, ...]:
    # Cached: the packaged file never changes while the process runs, and Part is frozen.
    text = resources.files("flashswap").joinpath("data/parts.toml").read_text(encoding="utf-8")
    return tuple(_parts_from_text(text, "flashswap/data/parts.toml"))


def load_catalogue(extra_files: Iterable[Path | str] = ()) -> dict[str, Part]:
    """Built-in parts, then each user file in order; a user part with a known name
    (case-insensitive) replaces it in place. Keys are the parts' own names."""
    by_key: dict[str, Part] = {p.name.lower(): p for p in _builtin()}
    for f in extra_files:
        for p in parts_from_file(f):
            by_key[p.name.lower()] = p
    return {p.name: p for p in by_key.values()}


def get_part(name: str, extra_files: Iterable[Path | str] = ()) -> Part:
    """Look a part up by name, case-insensitively; unknown names list the closest ones."""
    cat = load_catalogue(extra_files)
    lower = {k.lower(): p for k, p in cat.items()}
    if name.lower() in lower:
        return lower[name.lower()]
    close = difflib.get_close_matches(name.lower(), list(lower), n=3, cutoff=0.4)
    hint = ", ".join(lower[c].name for c in close) if close else "none close"
    raise UnknownPartError(f"unknown part {name!r} (closest: {hint}; `flashswap parts` lists all)")
