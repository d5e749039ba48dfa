"""What a built ELF file needs from the machine it runs on: its NEEDED libraries, its RPATH/RUNPATH and the
newest symbol version it links against per versioned library (GLIBC_2.34, GLIBCXX_3.4.30, ...); glibc's decides
a wheel's manylinux tag."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path

from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerNeedSection

ELF_MAGIC = b"\x7fELF"
SYMBOL_VERSION_RE = re.compile(r"^([A-Z][A-Z_]*?)_(\d+(?:\.\d+)*)$")  # GLIBC_2.34, GLIBCXX_3.4.30, OPENSSL_3.0.0


@dataclass(frozen=True)
class ElfNeeds:
    needed: tuple[str, ...]
    """DT_NEEDED: the shared libraries the loader must find."""
    search_path: tuple[str, ...]
    """DT_RUNPATH, else DT_RPATH, split at ':' (empty entries dropped)."""
    symbol_versions: dict[str, tuple[int, ...]]
    """The newest symbol version it needs per versioned library: {"GLIBC": (2, 34), "GLIBCXX": (3, 4, 30)}."""

    @property
    def glibc(self) -> tuple[int, ...]:
        return self.symbol_versions.get("GLIBC", (2, 0))


def is_elf(data: bytes) -> bool:
    return data[:4] == ELF_MAGIC


def elf_needs(data: bytes) -> ElfNeeds:
    """The dynamic needs of the ELF file whose bytes are `data`."""
    elf = ELFFile(io.BytesIO(data))
    needed, runpath, rpath, versions = [], [], [], {}
    for section in elf.iter_sections():
        if isinstance(section, DynamicSection):
            for tag in section.iter_tags():
                if tag.entry.d_tag == "DT_NEEDED":
                    needed.append(tag.needed)
                elif tag.entry.d_tag == "DT_RUNPATH":
                    runpath += tag.runpath.split(":")
                elif tag.entry.d_tag == "DT_RPATH":
                    rpath += tag.rpath.split(":")
        elif isinstance(section, GNUVerNeedSection):
            for _, auxiliaries in section.iter_versions():
                for aux in auxiliaries:
                    m = SYMBOL_VERSION_RE.match(aux.name)
                    if m:
                        version = tuple(int(n) for n in m.group(2).split("."))
                        versions[m.group(1)] = max(versions.get(m.group(1), version), version)
    return ElfNeeds(tuple(needed), tuple(p for p in (runpath or rpath) if p), versions)


def file_needs(path: Path) -> ElfNeeds:
    return elf_needs(path.read_bytes())
