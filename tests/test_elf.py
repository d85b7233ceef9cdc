"""gradient_build.elf on real binaries of this machine, checked against ldd, readelf and
objdump: the libraries lddtree resolves are the ones ldd prints, the glibc floor is what
binutils read, and a non-ELF or truncated file gives an empty answer, not an exception."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from elf_oracle import (
    ldd,
    objdump_glibc,
    readelf_glibc,
    readelf_interpreter,
    readelf_needed,
)
from gradient_backends.exe.freeze import unpack_binaries

from gradient_build import elf

PYTHON = Path("/usr/bin/python3.11")
VENV_SITE = Path(sys.prefix) / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
needs_binutils = pytest.mark.skipif(not (shutil.which("readelf") and shutil.which("objdump")),
                                    reason="binutils (readelf, objdump) is not installed")
needs_gcc = pytest.mark.skipif(not shutil.which("gcc"), reason="gcc is not installed")


def venv_extension() -> Path:
    """A compiled extension module of the venv that loads more than the C library."""
    for path in sorted(VENV_SITE.rglob("*.so")):
        if len(elf.needed(path)) >= 2:
            return path
    pytest.skip("no extension module with two or more DT_NEEDED in the venv")


def as_strings(tree: dict[str, Path]) -> dict[str, str]:
    return {name: str(path) for name, path in tree.items()}


@pytest.fixture(scope="module")
def frozen(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path], Path]:
    """A onefile PyInstaller executable built here, and the ELF files it carries."""
    pyinstaller = Path(sys.executable).parent / "pyinstaller"
    if not pyinstaller.exists():
        pytest.skip("PyInstaller is not installed (gradient-build[exe])")
    work = tmp_path_factory.mktemp("frozen")
    (work / "app.py").write_text("import ssl, zlib\nprint('frozen', zlib.crc32(b'x'))\n")
    subprocess.run([str(pyinstaller), "--onefile", "--noconfirm", "--log-level", "WARN",
                    "--distpath", str(work / "dist"), "--workpath", str(work / "build"),
                    "--specpath", str(work), "--name", "app", str(work / "app.py")],
                   cwd=work, check=True, capture_output=True, timeout=900)
    exe = work / "dist" / "app"
    ran = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0 and ran.stdout.startswith("frozen"), ran.stdout + ran.stderr
    unpacked = work / "unpacked"
    return exe, unpack_binaries(exe, unpacked), unpacked


def test_lddtree_matches_ldd_for_the_system_python() -> None:
    found, missing = ldd(PYTHON)
    assert "libc.so.6" in found and not missing
    tree = elf.lddtree([PYTHON])
    assert as_strings(tree) == found
    assert tree["ld-linux-x86-64.so.2"] == Path(readelf_interpreter(PYTHON) or "")


def test_lddtree_matches_ldd_for_a_venv_extension() -> None:
    ext = venv_extension()
    found, missing = ldd(ext)
    assert not missing
    assert as_strings(elf.lddtree([ext])) == found


@pytest.mark.slow
def test_lddtree_matches_ldd_for_a_frozen_exe_and_what_it_carries(
        frozen: tuple[Path, list[Path], Path]) -> None:
    exe, carried, unpacked = frozen
    found, _ = ldd(exe)
    assert as_strings(elf.lddtree([exe])) == found
    # the carried libraries find each other the way the bootloader makes them: a library path
    dirs = sorted({p.parent for p in carried})
    libpython = next(p for p in carried if p.name.startswith("libpython"))
    checked = [libpython, *[p for p in carried if "_ssl" in p.name]]
    assert len(checked) == 2, [p.name for p in carried]
    for path in checked:
        found, missing = ldd(path, dirs)
        assert not missing
        assert as_strings(elf.lddtree([path], extra_dirs=dirs)) == found, path
    # the bundled libssl is picked over the host's, as LD_LIBRARY_PATH makes ld.so do
    ssl = elf.lddtree([checked[1]], extra_dirs=dirs)
    assert ssl["libssl.so.3"].is_relative_to(unpacked)


@needs_binutils
def test_glibc_floor_matches_readelf_and_objdump_for_the_system_python() -> None:
    versions = elf.glibc_versions(PYTHON)
    assert versions == readelf_glibc(PYTHON)
    assert elf.glibc_floor([PYTHON]) == elf.highest(objdump_glibc(PYTHON)) is not None


@needs_binutils
@pytest.mark.slow
def test_glibc_floor_matches_readelf_for_a_frozen_exe(
        frozen: tuple[Path, list[Path], Path]) -> None:
    exe, carried, _ = frozen
    every = [exe, *carried]
    assert any(p.name.startswith("libpython") for p in carried)
    for path in every:
        assert elf.glibc_versions(path) == readelf_glibc(path), path
    by_objdump = set().union(*(objdump_glibc(p) for p in every))
    assert elf.glibc_floor(every) == elf.highest(by_objdump) is not None


@needs_binutils
def test_interpreter_and_needed_match_readelf_from_a_path_and_from_bytes() -> None:
    data = PYTHON.read_bytes()
    assert elf.interpreter(PYTHON) == elf.interpreter(data) == readelf_interpreter(PYTHON)
    assert elf.needed(PYTHON) == elf.needed(data) == readelf_needed(PYTHON)
    ext = venv_extension()
    assert elf.interpreter(ext) is None and elf.needed(ext) == readelf_needed(ext)


def test_a_static_binary_has_no_interpreter_and_loads_nothing() -> None:
    ldconfig = Path("/sbin/ldconfig")
    if not ldconfig.is_file() or "statically linked" not in subprocess.run(
            ["ldd", str(ldconfig)], capture_output=True, text=True).stdout:
        pytest.skip("no statically linked ldconfig here")
    assert elf.is_elf(ldconfig)
    assert elf.interpreter(ldconfig) is None and elf.lddtree([ldconfig]) == {}


def test_non_elf_and_truncated_files_give_empty_answers(tmp_path: Path) -> None:
    data = PYTHON.read_bytes()
    text = tmp_path / "notes.txt"
    text.write_text("not an ELF file\n" * 10)
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    files = {"text": text, "empty": empty, "missing": tmp_path / "nowhere"}
    for name, cut in (("magic", 4), ("header", 40), ("half", len(data) // 2)):
        files[name] = tmp_path / name
        files[name].write_bytes(data[:cut])
    for name, path in files.items():
        for source in (path, path.read_bytes() if path.exists() else b""):
            assert elf.read(source) is None, name
            assert elf.interpreter(source) is None, name
            assert elf.needed(source) == [], name
            assert elf.glibc_versions(source) == set(), name
        assert elf.rpaths(path) == elf.SearchPaths([], []), name
        assert elf.lddtree([path]) == {}, name
    assert elf.glibc_floor(files.values()) is None
    assert elf.is_elf(files["magic"]) and not elf.is_elf(text) and not elf.is_elf(empty)
    assert elf.elf_files(tmp_path) == sorted([files["magic"], files["header"], files["half"]])
    # a damaged header or dynamic section is no exception either
    broken = bytearray(data)
    broken[0x20:0x28] = b"\xff" * 8  # e_phoff far past the end
    assert elf.read(bytes(broken)) is None


GREET_C = ('#include <stdio.h>\nint helper(void);\n'
           'void greet(void) { printf("hi %d\\n", helper()); }\n')
HELPER_C = "int helper(void) { return 42; }\n"
MAIN_C = "void greet(void);\nint main(void) { greet(); return 0; }\n"


def compile_app(root: Path, dtags: str) -> Path:
    """bin/app needs lib/libgreet.so, which needs lib/libhelper.so; only the app names
    $ORIGIN/../lib, as DT_RPATH (--disable-new-dtags) or DT_RUNPATH (--enable-new-dtags)."""
    lib, bindir = root / "lib", root / "bin"
    lib.mkdir(parents=True)
    bindir.mkdir()
    for name, source in (("helper", HELPER_C), ("greet", GREET_C), ("main", MAIN_C)):
        (root / f"{name}.c").write_text(source)

    def run(*args: str) -> None:
        subprocess.run(["gcc", *args], cwd=root, check=True, capture_output=True, timeout=120)

    run("-shared", "-fPIC", "-o", "lib/libhelper.so", "helper.c")
    run("-shared", "-fPIC", "-o", "lib/libgreet.so", "greet.c", "-Llib", "-lhelper")
    run("-o", "bin/app", "main.c", "-Llib", "-lgreet", f"-Wl,{dtags}",
        "-Wl,-rpath,$ORIGIN/../lib")
    return bindir / "app"


@needs_gcc
def test_an_rpath_of_origin_resolves_from_there_and_serves_what_the_libraries_load(
        tmp_path: Path) -> None:
    app = compile_app(tmp_path, "--disable-new-dtags")
    lib = tmp_path / "lib"
    assert elf.rpaths(app) == elf.SearchPaths([str(lib)], [])
    ran = subprocess.run([str(app)], capture_output=True, text=True, timeout=60,
                         env={"PATH": "/usr/bin:/bin"})
    assert ran.returncode == 0 and ran.stdout == "hi 42\n", ran.stderr
    tree = elf.lddtree([app])
    assert tree["libgreet.so"] == lib / "libgreet.so"
    # libgreet has no RPATH of its own: the app's RPATH (its loader's) finds libhelper
    assert tree["libhelper.so"] == lib / "libhelper.so"
    found, missing = ldd(app)
    assert as_strings(tree) == found and not missing


@needs_gcc
def test_a_runpath_serves_only_the_object_that_has_it(tmp_path: Path) -> None:
    app = compile_app(tmp_path, "--enable-new-dtags")
    lib = tmp_path / "lib"
    assert elf.rpaths(app) == elf.SearchPaths([], [str(lib)])
    found, missing = ldd(app)
    assert missing == {"libhelper.so"}  # ld.so does not pass a RUNPATH on
    tree = elf.walk([app])
    assert tree.missing == {"libhelper.so"}
    assert as_strings(tree.libraries) == found
    # LD_LIBRARY_PATH (extra_dirs) finds it for both
    found, missing = ldd(app, [lib])
    assert not missing and as_strings(elf.lddtree([app], extra_dirs=[lib])) == found


@needs_gcc
def test_a_library_of_another_machine_is_passed_over(tmp_path: Path) -> None:
    app = compile_app(tmp_path, "--enable-new-dtags")
    lib = tmp_path / "lib"
    other = tmp_path / "other-machine"
    other.mkdir()
    data = bytearray((lib / "libhelper.so").read_bytes())
    data[18:20] = (183).to_bytes(2, "little")  # e_machine = EM_AARCH64
    (other / "libhelper.so").write_bytes(bytes(data))
    dirs = [other, lib]
    tree = elf.lddtree([app], extra_dirs=dirs)
    assert tree["libhelper.so"] == lib / "libhelper.so"
    found, missing = ldd(app, dirs)
    assert not missing and as_strings(tree) == found
