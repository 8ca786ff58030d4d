"""How fast is Rekam's encryption, next to OpenSSL's AES-256-GCM on the same machine, same run?

- field encryption/decryption of 100-byte and 4 KB values (ops/s, µs/op), data key cached;
- blob encryption and decryption of a 100 MB file on disk (MB/s, peak Python memory), with the
  ratio to ``openssl speed -evp aes-256-gcm`` on 16 KB blocks, and the peak memory for a 10 MB
  file to show it does not grow with the file;
- rewrap of N data keys (keys/s) stored in SQLite, with the local keyring and with a SoftHSM2
  token (when SoftHSM2 is installed).

Run: ``.venv/bin/python bench/crypto_throughput.py [--keys 100000]``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable
from pathlib import Path

from bench_support import machine, write_result
from rekam.crypto import (
    BlobCipher,
    DataKeyManager,
    FieldCipher,
    FieldContext,
    Keyring,
    LocalKeyring,
)
from rekam.crypto.data_keys import wrapping_context
from rekam.store import Database, upgrade_to_latest
from rekam.store.data_key_store import SqlDataKeyStore
from rekam.store.models import DataKey

PASSPHRASE = b"benchmark-passphrase-0123456789"


def openssl_gcm_mb_per_s(block: int = 16384, seconds: int = 3) -> float:
    out = subprocess.run(
        ["openssl", "speed", "-evp", "aes-256-gcm", "-seconds", str(seconds), "-bytes", str(block)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(x for x in out.splitlines() if x.upper().startswith("AES-256-GCM"))
    kbytes = float(re.findall(r"([\d.]+)k", line)[-1])
    return kbytes * 1000 / 1e6


def per_second(operation: Callable[[], object], seconds: float = 1.5) -> float:
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(100):
            operation()
        count += 100
    return count / elapsed


def field_benchmarks(keys: DataKeyManager) -> dict[str, dict[str, float]]:
    cipher = FieldCipher(keys)
    patient = str(uuid.uuid4())
    context = FieldContext("consultations", "notes", "rec-1", patient)
    results = {}
    for label, size in (("100 B", 100), ("4 KB", 4096)):
        value = os.urandom(size)
        sealed = cipher.encrypt_field(value, context)
        enc = per_second(lambda v=value: cipher.encrypt_field(v, context))
        dec = per_second(lambda s=sealed: cipher.decrypt_field(s, context))
        results[label] = {
            "encrypt_ops_s": enc,
            "decrypt_ops_s": dec,
            "encrypt_us": 1e6 / enc,
            "decrypt_us": 1e6 / dec,
        }
    return results


def timed(operation: Callable[[], None]) -> float:
    start = time.perf_counter()
    operation()
    return time.perf_counter() - start


def traced_peak(operation: Callable[[], None]) -> int:
    tracemalloc.start()
    try:
        operation()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def blob_benchmark(keys: DataKeyManager, directory: Path, megabytes: int) -> dict[str, float]:
    blobs = BlobCipher(keys)
    context = FieldContext("patient_files", "content", str(uuid.uuid4()), str(uuid.uuid4()))
    plain, sealed, back = directory / "plain", directory / "sealed", directory / "back"
    with plain.open("wb") as f:
        block = os.urandom(1024 * 1024)
        for _ in range(megabytes):
            f.write(block)
    size = megabytes * 1024 * 1024

    def encrypt() -> None:
        with plain.open("rb") as source, sealed.open("wb") as sink:
            blobs.encrypt_stream(source, sink, context)

    def decrypt() -> None:
        with sealed.open("rb") as source, back.open("wb") as sink:
            blobs.decrypt_stream(source, sink, context)

    def copy_only() -> None:  # the same file I/O without encryption, as a baseline
        with plain.open("rb") as source, back.open("wb") as sink:
            shutil.copyfileobj(source, sink, 64 * 1024)

    def in_memory() -> None:  # the encryption pipeline alone: 64 KiB blocks already in memory
        block = os.urandom(64 * 1024)
        for _ in blobs.encrypt_chunks((block for _ in range(size // len(block))), context):
            pass

    copy_s, memory_s = timed(copy_only), timed(in_memory)
    encrypt_s, decrypt_s = timed(encrypt), timed(decrypt)
    # memory in a second pass: tracing allocations slows them, so it is not timed
    encrypt_peak, decrypt_peak = traced_peak(encrypt), traced_peak(decrypt)
    assert back.stat().st_size == size
    for p in (plain, sealed, back):
        p.unlink()
    return {
        "megabytes": megabytes,
        "encrypt_mb_s": size / encrypt_s / 1e6,
        "decrypt_mb_s": size / decrypt_s / 1e6,
        "in_memory_encrypt_mb_s": size / memory_s / 1e6,
        "plain_copy_mb_s": size / copy_s / 1e6,
        "encrypt_peak_mib": encrypt_peak / 2**20,
        "decrypt_peak_mib": decrypt_peak / 2**20,
    }


def rewrap_benchmark(keyring: Keyring, directory: Path, count: int) -> dict[str, float]:
    database = Database(f"sqlite:///{directory / f'rewrap-{uuid.uuid4().hex}.db'}")
    upgrade_to_latest(database)
    version = keyring.active_version()
    rows = []
    for _ in range(count):
        key_id, owner = uuid.uuid4(), f"patient:{uuid.uuid4()}"
        wrapped = keyring.wrap(version.version, os.urandom(32), wrapping_context(key_id, owner))
        rows.append(
            {
                "key_id": str(key_id),
                "owner": owner,
                "kek_id": version.key_id,
                "kek_version": version.version,
                "wrapped": wrapped,
            }
        )
    with database.transaction(write=True) as session:
        session.bulk_insert_mappings(DataKey, rows)  # type: ignore[arg-type]
    keyring.rotate()
    manager = DataKeyManager(keyring, SqlDataKeyStore(database))
    start = time.perf_counter()
    moved = sum(manager.rewrap_all(batch=1000))
    elapsed = time.perf_counter() - start
    assert moved == count, (moved, count)
    database.dispose()
    return {"keys": count, "seconds": elapsed, "keys_per_s": count / elapsed}


def softhsm_keyring(directory: Path) -> Keyring | None:
    module = next(
        (
            p
            for p in (
                "/usr/lib/softhsm/libsofthsm2.so",
                "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
            )
            if Path(p).exists()
        ),
        None,
    )
    if module is None or shutil.which("softhsm2-util") is None:
        return None
    try:
        from rekam.crypto.pkcs11_keyring import Pkcs11Keyring
    except ImportError:
        return None
    tokens = directory / "tokens"
    tokens.mkdir()
    conf = directory / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    pin = uuid.uuid4().hex[:12]
    subprocess.run(
        [
            "softhsm2-util",
            "--init-token",
            "--free",
            "--label",
            "rekam-bench",
            "--so-pin",
            pin,
            "--pin",
            pin,
        ],
        check=True,
        capture_output=True,
    )
    keyring: Keyring = Pkcs11Keyring.initialise(module, "rekam-bench", pin)
    return keyring


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keys", type=int, default=100_000, help="data keys to rewrap")
    parser.add_argument("--megabytes", type=int, default=100, help="size of the blob test file")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp:
        directory = Path(tmp)
        local = LocalKeyring.create(directory / "keyring.json", PASSPHRASE)
        database = Database(f"sqlite:///{directory / 'fields.db'}")
        upgrade_to_latest(database)
        keys = DataKeyManager(local, SqlDataKeyStore(database))
        openssl = openssl_gcm_mb_per_s()
        fields = field_benchmarks(keys)
        small = blob_benchmark(keys, directory, 10)
        large = blob_benchmark(keys, directory, args.megabytes)
        rewrap = {"local": rewrap_benchmark(local, directory, args.keys)}
        hsm = softhsm_keyring(directory)
        if hsm is not None:
            rewrap["softhsm2"] = rewrap_benchmark(hsm, directory, args.keys)
    result = {
        "machine": machine(),
        "openssl_aes256gcm_16k_mb_s": openssl,
        "fields": fields,
        "blob_small": small,
        "blob_large": large,
        "rewrap": rewrap,
    }
    lines = [
        f"machine: {machine()}",
        "",
        "| field value | encrypt ops/s | encrypt µs | decrypt ops/s | decrypt µs |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for label, r in fields.items():
        lines.append(
            f"| {label} | {r['encrypt_ops_s']:,.0f} | {r['encrypt_us']:.1f} | "
            f"{r['decrypt_ops_s']:,.0f} | {r['decrypt_us']:.1f} |"
        )
    ratio = large["in_memory_encrypt_mb_s"] / openssl
    lines += [
        "",
        "| blob file | encrypt in memory MB/s | file→file encrypt MB/s | file→file decrypt MB/s "
        "| plain file copy MB/s | peak MiB (enc/dec) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        *(
            f"| {b['megabytes']} MB | {b['in_memory_encrypt_mb_s']:,.0f} | "
            f"{b['encrypt_mb_s']:,.0f} | {b['decrypt_mb_s']:,.0f} | {b['plain_copy_mb_s']:,.0f} | "
            f"{b['encrypt_peak_mib']:.2f} / {b['decrypt_peak_mib']:.2f} |"
            for b in (small, large)
        ),
        f"| openssl speed aes-256-gcm, 16 KB blocks | {openssl:,.0f} | | | | |",
        "",
        f"blob encryption in memory / OpenSSL: {ratio:.2f} "
        f"(goal ≥ 0.70: {'met' if ratio >= 0.7 else 'NOT met'}); "
        f"peak memory 10 MB vs {large['megabytes']} MB file: "
        f"{small['encrypt_peak_mib']:.2f} vs {large['encrypt_peak_mib']:.2f} MiB",
        "",
        "| rewrap | data keys | seconds | keys/s |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, r in rewrap.items():
        lines.append(f"| {name} | {r['keys']:,} | {r['seconds']:.1f} | {r['keys_per_s']:,.0f} |")
    if "softhsm2" not in rewrap:
        lines.append(
            "| softhsm2 | not run: SoftHSM2 or its keyring provider is not installed | | |"
        )
    text = "\n".join(lines)
    result["report"] = text
    write_result("crypto_throughput", result)
    print(text)


if __name__ == "__main__":
    main()
