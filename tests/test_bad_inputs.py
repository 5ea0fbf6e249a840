"""Bad input through the commands people type: a message naming the file or setting, exit code 2,
no traceback, and nothing written. Also: untrusted files never run code, no shell, safe YAML only.
"""

from __future__ import annotations

import ast
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from PIL import Image

from tui_lora.cli import main

REPO = Path(__file__).resolve().parents[1]


# -- helpers ---------------------------------------------------------------------------------------

def good_image(folder: Path, name: str = "good.png", size=(64, 64)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", size, (120, 30, 60))
    image.putpixel((3, 3), (255, 255, 255))
    image.save(folder / name)
    return folder / name


def run_text(images: Path, out: Path, extra: str = "", training: str = "  batch_size: 1\n  epochs: 1\n") -> str:
    return (f"model:\n  quick_pick: builtin-tiny-sd1\nfolders:\n  images: {images}\n  output: {out}\n{extra}"
            f"training:\n{training}buckets:\n  step: 32\n")


def cli(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "Traceback" not in text
    return code, text


def assert_nothing_written(tmp_path: Path) -> None:
    from engine.runs import list_runs

    assert not (tmp_path / "out").exists()
    # A run registers before its dataset is scanned (so `monitor` finds it at once); a refused
    # start takes that back: no run is listed.
    assert list_runs() == []


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def huge_png_header() -> bytes:
    """A tiny file whose header claims 30000 x 30000 pixels (a decompression bomb)."""
    header = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + png_chunk(b"IEND", b""))


def truncated(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise((64, 64), 60).convert("RGB").save(buffer, fmt)
    data = buffer.getvalue()
    return data[: len(data) // 2]


# -- dataset problems: each blocks validate and train ------------------------------------------------

def _symlink_loop(folder: Path) -> Path:
    os.symlink(folder / "loop.png", folder / "loop.png")
    return folder / "loop.png"


BAD_FILES = {
    "corrupt": (lambda folder: _write(folder / "bad.png", b"\x89PNG\r\n\x1a\n garbage, not chunks"), "unusable image"),
    "truncated-png": (lambda folder: _write(folder / "cut.png", truncated("PNG")), "truncated"),
    "truncated-jpeg": (lambda folder: _write(folder / "cut.jpg", truncated("JPEG")), "truncated"),
    "zero-bytes": (lambda folder: _write(folder / "empty.png", b""), "empty (0 bytes)"),
    "wrong-extension": (lambda folder: _write(folder / "notes.jpg", b"just text"), "not an image"),
    "decompression-bomb": (lambda folder: _write(folder / "huge.png", huge_png_header()), "too large to load safely"),
    "symlink-loop": (_symlink_loop, "symlink that leads nowhere"),
}


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_bad_image_is_named_and_blocks_validate_and_train(tmp_path, capsys, kind):
    make, words = BAD_FILES[kind]
    concept = tmp_path / "data" / "3_thing"
    good_image(concept)
    bad = make(concept)
    run_file = tmp_path / "run.yaml"
    run_file.write_text(run_text(tmp_path / "data", tmp_path / "out"))
    for command in ("validate", "train"):
        code, text = cli(capsys, command, str(run_file))
        assert code == 2, text
        line = next(line for line in text.splitlines() if str(bad) in line)
        assert line.startswith("error:") and words in line
    assert "nothing was started" in text
    assert_nothing_written(tmp_path)


@pytest.mark.parametrize("layout, words", [
    ("empty", "no usable image found"),
    ("no-repeat-prefix", "does not start with a repeat count"),
    ("only-subfolders", "no usable image found"),
    ("missing", "does not exist"),
    ("a-file", "is a file, not a folder"),
])
def test_unusable_image_folders_are_explained(tmp_path, capsys, layout, words):
    images = tmp_path / "data"
    if layout == "no-repeat-prefix":
        good_image(images / "thing")
    elif layout == "only-subfolders":
        good_image(images / "3_thing" / "nested")
    elif layout == "a-file":
        images.write_text("not a folder")
    elif layout == "empty":
        images.mkdir()
    run_file = tmp_path / "run.yaml"
    run_file.write_text(run_text(images, tmp_path / "out"))
    for command in ("validate", "train"):
        code, text = cli(capsys, command, str(run_file))
        assert code == 2 and words in text, text
    assert_nothing_written(tmp_path)


def test_unreadable_image_is_named_even_for_an_unprivileged_user(tmp_path):
    concept = tmp_path / "data" / "3_thing"
    good_image(concept)
    locked = good_image(concept, "locked.png")
    run_file = tmp_path / "run.yaml"
    run_file.write_text(run_text(tmp_path / "data", tmp_path / "out"))
    command = [sys.executable, "-c", "import sys; from tui_lora.cli import main; sys.exit(main(sys.argv[1:]))"]
    if os.geteuid() == 0:  # root reads anything: drop that power for the child
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv")
        command = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", *command]
    locked.chmod(0)
    try:
        for verb in ("validate", "train"):
            done = subprocess.run([*command, verb, str(run_file)], cwd=REPO, capture_output=True, text=True,
                                  env=dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1"), timeout=120,
                                  check=False)
            assert done.returncode == 2, done.stderr
            assert "Traceback" not in done.stderr
            assert any(str(locked) in line and "permission denied" in line for line in done.stderr.splitlines())
    finally:
        locked.chmod(0o644)
    assert_nothing_written(tmp_path)


def test_non_utf8_caption_is_named_and_the_folder_tokens_are_used(tmp_path, capsys):
    concept = tmp_path / "data" / "3_thing"
    good_image(concept)
    (concept / "good.txt").write_bytes("caf\xe9 au lait".encode("latin-1"))
    run_file = tmp_path / "run.yaml"
    run_file.write_text(run_text(tmp_path / "data", tmp_path / "out"))
    code, text = cli(capsys, "validate", str(run_file))
    assert code == 0
    line = next(line for line in text.splitlines() if str(concept / "good.txt") in line)
    assert line.startswith("warning:") and "not UTF-8" in line and "tokens are used" in line


@pytest.mark.slow
def test_unusual_but_valid_images_validate_and_train(tmp_path, capsys, tiny_config):
    from PIL.TiffImagePlugin import IFDRational  # noqa: F401 - PIL's EXIF support is loaded

    concept = tmp_path / "data" / "1_odd"
    concept.mkdir(parents=True)
    colour = Image.effect_noise((96, 64), 50).convert("RGB")
    colour.convert("CMYK").save(concept / "cmyk.jpg")
    Image.fromarray(__import__("numpy").arange(64 * 64, dtype="uint16").reshape(64, 64) * 16).save(concept / "deep.png")
    colour.convert("P", palette=Image.Palette.ADAPTIVE, colors=16).save(concept / "palette.png", transparency=0)
    colour.convert("RGBA").save(concept / "alpha.png")
    colour.convert("LA").save(concept / "grey-alpha.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways, shown upright
    colour.save(concept / "rotated.jpg", exif=exif)
    colour.resize((2400, 1600)).save(concept / "large.jpg", quality=80)
    run_file = tmp_path / "run.yaml"
    run_file.write_text(run_text(tmp_path / "data", tmp_path / "out"))
    code, text = cli(capsys, "validate", str(run_file))
    assert code == 0, text
    assert not [line for line in text.splitlines() if line.startswith(("error", "warning")) and str(concept) in line]

    from engine.train.entry import run_config

    result = run_config(tiny_config(folders__images=str(tmp_path / "data"), training__batch_size=1))
    assert result.status == "completed", result.message
    assert result.trainer.progress.step == 7


# -- run files ----------------------------------------------------------------------------------------

def _yaml_cases(images: Path, out: Path) -> dict[str, tuple[str | bytes, str]]:
    base = run_text(images, out)
    return {
        "wrong-type": (base.replace("batch_size: 1", "batch_size: lots"), "training.batch_size"),
        "out-of-range": (base.replace("batch_size: 1", "batch_size: -4"), "training.batch_size"),
        "unknown-key": (base.replace("batch_size: 1", "batch_sise: 1"), "batch_size"),
        "unknown-section": (base + "trainning:\n  epochs: 2\n", "trainning"),
        "tab-indent": (base.replace("  batch_size: 1", "\tbatch_size: 1"), "tab"),
        "duplicate-key": (base.replace("  epochs: 1", "  epochs: 1\n  epochs: 5"), "duplicate key 'epochs'"),
        "billion-laughs": ("a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\nb: &b [*a, *a, *a, *a, *a, *a]\n"
                           "c: &c [*b, *b, *b, *b, *b, *b]\n" + base, "anchors and aliases"),
        "huge-file": (base + "# " + "x" * 1_100_000 + "\n", "larger than"),
        "not-utf8": (base.encode() + "# caf\xe9\n".encode("latin-1"), "not UTF-8"),
        "a-list": ("- 1\n- 2\n", "must be a mapping of sections"),
        "python-tag": (base + "extra: !!python/object/apply:os.system ['touch " + str(out.parent / "code-ran") + "']\n",
                       "the YAML tag !!python/object/apply:os.system is not allowed"),
        "broken-syntax": (base + "training: [unclosed\n", "line"),
        "escaping-name-dotdot": (base.replace("folders:\n", "folders:\n  output_name: ../../evil\n"),
                                 "folders.output_name"),
        "escaping-name-absolute": (base.replace("folders:\n", "folders:\n  output_name: /tmp/evil\n"),
                                   "folders.output_name"),
        "escaping-name-separator": (base.replace("folders:\n", "folders:\n  output_name: sub/evil\n"),
                                    "folders.output_name"),
    }


YAML_CASES = list(_yaml_cases(Path("x"), Path("y")))


@pytest.mark.parametrize("case", YAML_CASES)
def test_bad_run_file_is_explained_and_nothing_is_written(tmp_path, capsys, case):
    good_image(tmp_path / "data" / "3_thing")
    text, words = _yaml_cases(tmp_path / "data", tmp_path / "out")[case]
    run_file = tmp_path / "run.yaml"
    run_file.write_bytes(text if isinstance(text, bytes) else text.encode())
    for command in ("validate", "train"):
        code, output = cli(capsys, command, str(run_file))
        assert code == 2, output
        assert words in output
        assert "error:" in output
    assert_nothing_written(tmp_path)
    assert not (tmp_path / "code-ran").exists()
    assert not list(tmp_path.rglob("evil*")) and not Path("/tmp/evil.safetensors").exists()


@pytest.mark.parametrize("run_id", ["../../evil", "/tmp/evil", "a/b", ".hidden", "from-the-environment"])
def test_run_id_cannot_escape_the_runs_folder(tmp_path, capsys, monkeypatch, run_id):
    good_image(tmp_path / "data" / "3_thing")
    run_file = tmp_path / "run.yaml"
    run_file.write_text(run_text(tmp_path / "data", tmp_path / "out"))
    if run_id == "from-the-environment":  # how the app's launcher passes it
        monkeypatch.setenv("TUI_LORA_RUN_ID", "../escape")
        code, text = cli(capsys, "train", str(run_file))
    else:
        code, text = cli(capsys, "train", str(run_file), "--run-id", run_id)
    assert code == 2 and "--run-id" in text
    assert_nothing_written(tmp_path)
    assert not list(tmp_path.rglob("evil")) and not Path("/tmp/evil").exists()


def test_missing_run_file_and_folder_instead_of_file(tmp_path, capsys):
    code, text = cli(capsys, "train", str(tmp_path / "nope.yaml"))
    assert code == 2 and "nope.yaml: file not found" in text
    code, text = cli(capsys, "validate", str(tmp_path))
    assert code == 2 and "is a folder" in text


# -- Kohya configs -------------------------------------------------------------------------------------

def test_kohya_config_with_unknown_keys_names_each_key(tmp_path, capsys):
    source = tmp_path / "kohya.json"
    source.write_text(json.dumps({"LoRA_type": "Standard", "network_dim": 16, "fancy_new_option": 3,
                                  "train_data_dir": str(tmp_path / "data")}))
    out = tmp_path / "run.yaml"
    code, text = cli(capsys, "import-kohya", str(source), "-o", str(out))
    assert code == 0
    assert "warning: fancy_new_option: is not a Kohya LoRA setting tui-lora knows; 3 was not imported" in text
    import yaml

    assert "fancy_new_option" not in json.dumps(yaml.safe_load(out.read_text()))  # a note, never a setting


@pytest.mark.parametrize("content, words", [
    (b"{\"LoRA_type\": \"Standard\",", "not valid JSON"), (b"[]", "JSON object"), (b"\xff\xfe\x00", "UTF-8"),
    (b"", "not valid JSON"), (b"{\"a\": 1, " + b"\"k\": 0, " * 700_000 + b"\"z\": 1}", "larger than"),
], ids=["cut-short", "a-list", "not-utf8", "empty", "huge"])
def test_unreadable_kohya_config_exits_2_and_writes_nothing(tmp_path, capsys, content, words):
    source = tmp_path / "kohya.json"
    source.write_bytes(content)
    out = tmp_path / "run.yaml"
    code, text = cli(capsys, "import-kohya", str(source), "-o", str(out))
    assert code == 2 and words in text and str(source) in text
    assert not out.exists()


# -- security: nothing untrusted runs --------------------------------------------------------------------

class _Planted:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_ckpt_lora_holding_code_is_refused_unrun(tmp_path):
    import pickle

    from engine.lorafile.io import read_lora_file
    from engine.problems import ProblemError

    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.ckpt"
    path.write_bytes(pickle.dumps({"lora_unet_x.alpha": _Planted(marker)}))
    with pytest.raises(ProblemError) as info:
        read_lora_file(path)
    assert "Python objects besides tensors" in info.value.errors[0].message
    assert not marker.exists()


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node, ast.unparse(node.func)


def test_source_never_unpickles_shells_out_or_loads_yaml_unsafely():
    findings = []
    for path in sorted([*REPO.glob("engine/**/*.py"), *REPO.glob("tui_lora/**/*.py")]):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for call, name in _calls(tree):
            keywords = {k.arg: k.value for k in call.keywords}
            where = f"{path.relative_to(REPO)}:{call.lineno} {name}"
            if name in ("eval", "exec", "os.system", "os.popen", "pickle.load", "pickle.loads", "marshal.loads",
                        "yaml.unsafe_load", "yaml.full_load", "shelve.open"):
                findings.append(where)
            elif name.startswith("subprocess.") and isinstance(keywords.get("shell"), ast.Constant) \
                    and keywords["shell"].value:
                findings.append(where + " shell=True")
            elif name.startswith("subprocess.") and call.args and not isinstance(call.args[0], (ast.List, ast.Name)):
                findings.append(where + " (command not an argument list)")
            elif name == "torch.load" and not (isinstance(keywords.get("weights_only"), ast.Constant)
                                               and keywords["weights_only"].value is True):
                findings.append(where + " without weights_only=True")
            elif name == "yaml.load" and ast.unparse(keywords.get("Loader", ast.Constant(None))) != "_NoAliasComposer":
                findings.append(where + " with a loader that is not the strict safe one")
    assert findings == []


def test_the_strict_yaml_loader_is_a_safe_loader():
    import yaml

    from engine.config.yamlio import _NoAliasComposer

    assert issubclass(_NoAliasComposer, yaml.SafeLoader)
